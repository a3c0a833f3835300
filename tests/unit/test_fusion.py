"""Fusion against known coupling: GLM and deep-model maps, the null, resume, bad input."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from fusion_synth import brain, make_dataset
from neurofuse.errors import NeuroFuseError
from neurofuse.fusion.glm import design_dof, first_level, group_level
from neurofuse.fusion.train import TrainConfig, fit_fusion, make_folds, prepare, train_fold

torch.set_num_threads(1)  # two pytest workers share two cores: no oversubscription

BANDS = ["delta", "theta", "alpha", "beta", "gamma"]
#: The simulator's layout (alpha lowers occipital BOLD, beta raises sensorimotor BOLD) and
#: another one: theta raising frontal BOLD, alpha raising occipital BOLD.
LAYOUTS = {
    "goldman": {"alpha": (-0.03, (0, -84, 8), 20), "beta": (0.025, (-38, -24, 56), 18)},
    "other": {"theta": (0.03, (0, 40, 20), 22), "alpha": (0.03, (0, -84, 8), 20)},
}


def _glm(runs, root, **options):
    paths = {kind: {b: [] for b in BANDS} for kind in ("z", "effect", "variance")}
    dofs = []
    for r in runs:
        names = {kind: {b: str(root / f"{r.run}_{b}_{kind}.nii.gz") for b in BANDS} for kind in paths}
        design = root / f"{r.run}_design.tsv"
        first_level(r.bold, r.mask, r.bands, r.confounds, tr=r.tr, bands=BANDS, zmaps=names["z"],
                    effects=names["effect"], variances=names["variance"], design=str(design),
                    smoothing_fwhm=None, **options)
        dofs.append(design_dof(design))
        for kind in paths:
            for b in BANDS:
                paths[kind][b].append(names[kind][b])
    group = {b: str(root / f"group_{b}_z.nii.gz") for b in BANDS}
    thresholded = {b: str(root / f"group_{b}_thr.nii.gz") for b in BANDS}
    log = group_level(paths["effect"], paths["variance"], [r.subject for r in runs], runs[0].mask,
                      zmaps=group, thresholded=thresholded, dofs=dofs)
    return paths["z"], group, thresholded, log


def _fit(runs, root, **cfg):
    maps = {n: str(root / f"fusion_{n}.nii.gz") for n in ["fusion", *BANDS]}
    stacks = {n: str(root / f"fusion_{n}_subjects.nii.gz") for n in ["fusion", *BANDS]}
    log = fit_fusion(runs, BANDS, TrainConfig(n_regions=50, **cfg), maps=maps, subject_maps_out=stacks,
                     model_path=str(root / "model.pt"),
                     card_json=str(root / "card.json"), card_md=str(root / "card.md"),
                     history_tsv=str(root / "history.tsv"), checkpoint_dir=str(root / "ckpt"), log=lambda *_: None)
    return maps, log


def _load(path):
    return np.asarray(nib.load(path).dataobj, dtype=float)


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def coupled(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"fusion-{request.param}")
    runs, truth = make_dataset(root, couplings=LAYOUTS[request.param], seed=3)
    return request.param, runs, truth, root


def test_glm_finds_each_coupled_region_with_its_sign(coupled):
    layout, runs, truth, root = coupled
    zmaps, group, thresholded, _ = _glm(runs, root)
    inside = brain()
    for band, (coupling, _, _) in LAYOUTS[layout].items():
        for path in zmaps[band] + [group[band]]:
            z = _load(path)
            assert roc_auc_score(truth[band][inside], np.abs(z[inside])) >= 0.9, (band, path)
            assert np.sign(z[truth[band]].mean()) == np.sign(coupling)
        survivors = _load(thresholded[band]) != 0
        assert survivors.sum() > 20
        assert (survivors & truth[band]).sum() / survivors.sum() >= 0.8  # what survives FDR is mostly true


def test_deep_model_maps_held_out_subjects(coupled):
    layout, runs, truth, root = coupled
    maps, log = _fit(runs, root)
    assert log["scheme"] == "held-out subjects" and len(log["folds"]) == 3
    inside = brain()
    for band, (coupling, _, _) in LAYOUTS[layout].items():
        m = _load(maps[band])
        assert roc_auc_score(truth[band][inside], np.abs(m[inside])) >= 0.9, band
        assert np.sign(m[truth[band]].mean()) == np.sign(coupling)
        # Each subject's own held-out map (one volume per subject) finds the region too.
        stack = _load(str(root / f"fusion_{band}_subjects.nii.gz"))
        assert stack.shape == m.shape + (3,)
        for i in range(3):
            assert roc_auc_score(truth[band][inside], np.sign(coupling) * stack[..., i][inside]) >= 0.8, (band, i)
    card = pd.read_json(root / "card.json", typ="series")
    assert card["seed"] == 42 and card["validation"]["scheme"] == "held-out subjects"


def test_time_shuffled_eeg_maps_show_nothing(tmp_path):
    runs, truth = make_dataset(tmp_path, couplings=LAYOUTS["goldman"], seed=3, null=True)
    zmaps, group, thresholded, log = _glm(runs, tmp_path)
    maps, _ = _fit(runs, tmp_path)
    # Calibrated first level: away from the coupled regions, null z-scores are standard
    # normal (nilearn's own AR(1) gives an SD of about 1.10 here, 7.6 % beyond 1.96).
    brain_mask = _load(runs[0].mask) > 0
    outside = brain_mask & ~np.any([m for m in truth.values()], axis=0)
    z = np.concatenate([_load(p)[outside] for paths in zmaps.values() for p in paths])
    assert 0.93 < z.std() < 1.05 and np.mean(np.abs(z) > 1.96) < 0.06, (z.std(), np.mean(np.abs(z) > 1.96))
    for band in BANDS:
        assert log["bands"][band]["voxels_surviving"] == 0, band
    for band in LAYOUTS["goldman"]:
        assert abs(_load(maps[band])[truth[band]].mean()) < 0.2  # coupled data: about 0.5


def test_resumed_training_equals_uninterrupted(tmp_path):
    runs, _ = make_dataset(tmp_path, couplings=LAYOUTS["goldman"], n_subjects=2, n_volumes=60, seed=1)
    cfg = TrainConfig(n_regions=20, max_epochs=6, patience=10)
    prep = prepare(runs, BANDS, cfg, log=lambda *_: None)
    folds, _ = make_folds(prep, cfg.folds)
    whole = train_fold(prep, folds[0], cfg, tmp_path / "a.pt", log=lambda *_: None)
    part = train_fold(prep, folds[0], cfg, tmp_path / "b.pt", log=lambda *_: None, stop_after=2)
    assert len(part["history"]) == 2 and not part["finished"]
    resumed = train_fold(prep, folds[0], cfg, tmp_path / "b.pt", log=lambda *_: None)
    assert resumed["resumed_from"] == 2
    assert resumed["history"] == whole["history"]
    again = train_fold(prep, folds[0], cfg, tmp_path / "c.pt", log=lambda *_: None)
    assert len(again["epoch_seconds"]) == 6
    # Checkpoints carry no timings or file names: the same fold trained twice writes the same bytes.
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "c.pt").read_bytes()
    for (name, a), b in zip(whole["model"].state_dict().items(), resumed["model"].state_dict().values()):
        assert torch.equal(a, b), name


def test_one_subject_falls_back_to_run_halves_and_says_so(tmp_path):
    runs, _ = make_dataset(tmp_path, couplings=LAYOUTS["goldman"], n_subjects=1, n_volumes=80, seed=2)
    _, log = _fit(runs, tmp_path, max_epochs=3)
    assert "one subject, one run" in log["scheme"] and len(log["folds"]) == 2


def test_short_runs_are_excluded_with_a_warning(tmp_path):
    runs, _ = make_dataset(tmp_path / "long", couplings=LAYOUTS["goldman"], n_subjects=2, n_volumes=40, seed=2)
    short, _ = make_dataset(tmp_path / "short", couplings=LAYOUTS["goldman"], n_subjects=1, n_volumes=10, seed=2)
    messages = []
    prep = prepare(runs + short, BANDS, TrainConfig(window=8, n_regions=20), log=messages.append)
    assert len(prep.runs) == 2 and "fewer than two model windows" in prep.excluded[0]
    assert any("excluded" in m for m in messages)
    with pytest.raises(NeuroFuseError, match="shorter than two model windows"):
        prepare(short, BANDS, TrainConfig(window=8), log=messages.append)


def test_row_mismatch_and_missing_eeg_are_clear(tmp_path):
    runs, _ = make_dataset(tmp_path, couplings=LAYOUTS["goldman"], n_subjects=2, n_volumes=40, seed=2)
    table = pd.read_csv(runs[0].bands, sep="\t")
    table.iloc[:-1].to_csv(runs[0].bands, sep="\t", index=False)
    with pytest.raises(NeuroFuseError, match=r"39 rows but the BOLD run has 40 volumes") as err:
        prepare(runs, BANDS, TrainConfig(n_regions=20), log=lambda *_: None)
    assert runs[0].bands in str(err.value)
    # NaN windows (EEG not covering a volume) become the run mean, and the log says how many.
    table.loc[[0, 1], "alpha_O1"] = np.nan
    table.to_csv(runs[0].bands, sep="\t", index=False, na_rep="n/a")
    messages = []
    prep = prepare(runs, BANDS, TrainConfig(n_regions=20), log=messages.append)
    assert np.isfinite(prep.eeg[0]).all() and any("2 volumes without EEG" in m for m in messages)
    table["alpha_O1"] = np.nan
    table.to_csv(runs[0].bands, sep="\t", index=False, na_rep="n/a")
    with pytest.raises(NeuroFuseError, match="'alpha_O1' has no finite value"):
        prepare(runs, BANDS, TrainConfig(n_regions=20), log=lambda *_: None)


_PREEMPTED_TRAINING = """
import json, sys
sys.path.insert(0, sys.argv[1])
import torch
torch.set_num_threads(1)
from neurofuse.fusion.train import RunInput, TrainConfig, make_folds, prepare, train_fold
runs = [RunInput(**r) for r in json.loads(open(sys.argv[2]).read())]
cfg = TrainConfig(**json.loads(sys.argv[3]))
prep = prepare(runs, json.loads(sys.argv[4]), cfg, log=lambda *_: None)
folds, _ = make_folds(prep, cfg.folds)
train_fold(prep, folds[0], cfg, sys.argv[5], log=lambda m: print(m, flush=True))
"""


def test_sigterm_during_training_keeps_a_checkpoint_that_resumes_bit_for_bit(tmp_path):
    """What a Spot VM gets: SIGTERM in the middle of training, in a separate process."""
    import dataclasses
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    runs, _ = make_dataset(tmp_path, couplings=LAYOUTS["goldman"], n_subjects=2, n_volumes=60, seed=1)
    settings = {"n_regions": 20, "max_epochs": 40, "patience": 100}
    cfg = TrainConfig(**settings)
    (tmp_path / "runs.json").write_text(json.dumps([dataclasses.asdict(r) for r in runs]))
    ckpt = tmp_path / "preempted" / "fold-0_checkpoint.pt"
    ckpt.parent.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", _PREEMPTED_TRAINING, str(Path(__file__).parent),
                             str(tmp_path / "runs.json"), json.dumps(settings), json.dumps(BANDS), str(ckpt)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    epoch = 0
    while epoch < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        if ckpt.is_file():
            epoch = torch.load(ckpt, weights_only=False)["state"]["epoch"]
    assert proc.poll() is None, f"training ended before it could be interrupted: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, (out, err)
    assert "SIGTERM received" in out and f"{ckpt} holds the last finished epoch" in out, out
    assert [p.name for p in ckpt.parent.iterdir()] == [ckpt.name]  # no temporary file left
    saved = torch.load(ckpt, weights_only=False)  # a complete, loadable checkpoint
    stopped_at = saved["state"]["epoch"]
    assert 3 <= stopped_at < cfg.max_epochs

    prep = prepare(runs, BANDS, cfg, log=lambda *_: None)
    folds, _ = make_folds(prep, cfg.folds)
    resumed = train_fold(prep, folds[0], cfg, ckpt, log=lambda *_: None)
    whole = train_fold(prep, folds[0], cfg, tmp_path / "whole.pt", log=lambda *_: None)
    assert resumed["resumed_from"] == stopped_at and resumed["finished"]
    assert len(resumed["epoch_seconds"]) == cfg.max_epochs - stopped_at
    assert resumed["history"] == whole["history"]
    for (name, a), b in zip(whole["model"].state_dict().items(), resumed["model"].state_dict().values()):
        assert torch.equal(a, b), name
    assert ckpt.read_bytes() == (tmp_path / "whole.pt").read_bytes()


def test_a_retried_job_on_a_new_vm_resumes_from_the_checkpoint_in_the_bucket(tmp_path, gcs):
    """Cloud profiles: the checkpoint is copied to the bucket each epoch; a fresh VM fetches it."""
    runs, _ = make_dataset(tmp_path, couplings=LAYOUTS["goldman"], n_subjects=2, n_volumes=60, seed=1)
    cfg = TrainConfig(n_regions=20, max_epochs=6, patience=10)
    prep = prepare(runs, BANDS, cfg, log=lambda *_: None)
    folds, _ = make_folds(prep, cfg.folds)
    url = gcs.url("study/results/work/group/model/task-rest/fold-0_checkpoint.pt")
    first_vm = tmp_path / "vm1" / "fold-0_checkpoint.pt"
    part = train_fold(prep, folds[0], cfg, first_vm, log=lambda *_: None, stop_after=2, checkpoint_url=url)
    assert len(part["history"]) == 2
    stored = gcs.objects("study/results/work/group/model/task-rest")["fold-0_checkpoint.pt"]
    assert stored.download_as_bytes() == first_vm.read_bytes()
    messages = []
    second_vm = tmp_path / "vm2" / "fold-0_checkpoint.pt"  # preempted: the first VM's disk is gone
    resumed = train_fold(prep, folds[0], cfg, second_vm, log=messages.append, checkpoint_url=url)
    assert resumed["resumed_from"] == 2 and any("fetched the checkpoint" in m for m in messages)
    whole = train_fold(prep, folds[0], cfg, tmp_path / "whole.pt", log=lambda *_: None)
    assert resumed["history"] == whole["history"]
    for (name, a), b in zip(whole["model"].state_dict().items(), resumed["model"].state_dict().values()):
        assert torch.equal(a, b), name
    assert gcs.objects("study/results/work/group/model/task-rest")["fold-0_checkpoint.pt"].download_as_bytes() \
        == (tmp_path / "whole.pt").read_bytes()
