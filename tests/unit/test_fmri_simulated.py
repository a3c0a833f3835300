"""The fMRI stage scored against the simulator's ground truth (small preset, one subject)."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from neurofuse.fmri.motion import estimate_motion
from neurofuse.fmri.pipeline import preprocess_run
from neurofuse.fmri.registration import load_template, load_template_mask, read_ants_affine
from neurofuse.fmri.resample import compose_transforms
from neurofuse.simulate import TRUTH_DIR, TRUTH_INDEX, simulate_dataset
from neurofuse.simulate.scoring import normalisation_errors
from neurofuse.transforms import PARAM_NAMES, framewise_displacement, rigid_matrix, rigid_params

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim") / "small"
    simulate_dataset(root, preset="small", n_subjects=1, n_volumes=20, seed=3)  # ~7 s
    truth = json.loads((root / TRUTH_DIR / TRUTH_INDEX).read_text())
    run = truth["runs"][0]
    anat = truth["anat"][0]
    metadata = json.loads((root / "task-rest_bold.json").read_text())
    return root, run, anat, metadata


def _true_motion(root, run):
    table = pd.read_csv(root / run["files"]["true_motion"], sep="\t")
    return table[list(PARAM_NAMES)].to_numpy()


def _relative_error(truth, matrices):
    t = rigid_matrix(truth)
    t_rel = np.linalg.inv(t[0]) @ t
    e_rel = np.linalg.inv(matrices[0]) @ matrices
    return rigid_params(np.linalg.inv(t_rel) @ e_rel), rigid_params(e_rel)


@pytest.mark.parametrize("reference", [0, "median"])
def test_motion_matches_truth(sim, reference):
    root, run, _, _ = sim
    truth = _true_motion(root, run)
    result = estimate_motion(root / run["files"]["bold"], reference=reference)
    err, est = _relative_error(truth, result.matrices)
    # measured (seed 3 and others): RMS 0.018 mm / 0.0004 rad, FD r = 0.9998, 6 mm voxels
    assert np.sqrt(np.mean(err[:, :3] ** 2)) < 0.05
    assert np.sqrt(np.mean(err[:, 3:] ** 2)) < 0.001
    fd_true = framewise_displacement(truth)[1:]
    fd_est = framewise_displacement(est)[1:]
    assert np.corrcoef(fd_true, fd_est)[0, 1] > 0.99
    assert np.mean(np.abs(fd_true - fd_est)) < 0.06


def test_pipeline_transforms_match_truth(sim, tmp_path):
    root, run, anat, metadata = sim
    out = preprocess_run(
        root / run["files"]["bold"], metadata, tmp_path, t1w_file=root / anat["files"]["T1w"],
        resolution=3.0, registration_resolution=3.0, figures=False, reference=0,
    )
    files = out["files"]
    assert out["metadata"]["SliceTimingCorrected"] is True
    assert out["metadata"]["StartTime"] == pytest.approx(
        (min(metadata["SliceTiming"]) + max(metadata["SliceTiming"])) / 2
    )

    # BOLD reference (volume 0) -> T1w: volume 0 is in the T1w pose (truth = identity)
    bold_to_t1w = read_ants_affine(files["bold_affine"])
    pts = np.random.default_rng(0).normal(size=(500, 3)) * 30 + [0.0, -18.0, 10.0]
    shift = np.linalg.norm(pts @ bold_to_t1w[:3, :3].T + bold_to_t1w[:3, 3] - pts, axis=1)
    assert shift.max() < 1.2  # measured 0.4-0.7 mm on seed-1 subjects (6 mm EPI, T1w at 3 mm)

    # template -> BOLD reference, composed, against the true p = A^-1 (q + v(q)) inside the brain
    template = load_template(2)
    brain = np.asarray(load_template_mask(2).dataobj)
    mask_epi = root / run["files"]["brain_mask_epi"]
    tmap = compose_transforms(files["transforms"], files["boldref"], template)
    chain = normalisation_errors(tmap.points, root, anat, template, brain, mask_epi)
    ijk = np.indices(template.shape).reshape(3, -1)
    q = template.affine[:3, :3] @ ijk + template.affine[:3, 3:4]
    no_registration = normalisation_errors(q, root, anat, template, brain)
    # measured at 3 mm: mean 0.7, p95 1.3 mm (2 mm, the default: 0.34 / 0.71 mm)
    assert chain["mean_mm"] < 1.2 and chain["p95_mm"] < 2.5
    assert chain["mean_mm"] < no_registration["mean_mm"] / 4

    # normalisation alone (T1w -> MNI, affine + SyN): the figures, mean displacement
    # <= 1.5 mm and Dice of the brain mask in MNI >= 0.95 (measured at 3 mm: 0.82 mm, Dice 0.994)
    t1w_map = compose_transforms([files["t1w_warp"], files["t1w_affine"]], root / anat["files"]["T1w"], template)
    norm = normalisation_errors(t1w_map.points, root, anat, template, brain, mask_epi)
    assert norm["mean_mm"] <= 1.5 and norm["dice"] >= 0.95, norm

    preproc = nib.load(files["preproc"])
    assert preproc.shape[3] == run["figures"]["n_volumes"]
    assert np.allclose(np.diag(preproc.affine)[:3], 3.0)
    table = pd.read_csv(files["confounds"], sep="\t", na_values="n/a")
    assert {"framewise_displacement", "dvars", "std_dvars", *PARAM_NAMES} <= set(table.columns)
    spikes = run["figures"]["spike_volumes"]
    flagged = {int(np.flatnonzero(table[c])[0]) for c in table if c.startswith("motion_outlier")}
    assert set(spikes) <= flagged  # the simulated sudden movements are flagged
