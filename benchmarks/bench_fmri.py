#!/usr/bin/env python
"""fMRI stage: our head-motion estimation vs ANTsPy, and the other steps' times.

Simulates one subject of the ``demo`` preset (3 mm EPI; ``--n-volumes`` volumes, 100 by
default) under ``benchmarks/.work/`` (git-ignored; re-used if present), then prints, side
by side, on the raw BOLD of that run with volume 0 as the reference for both:

* ``neurofuse.fmri.motion.estimate_motion`` — time, RMS error of the six parameters
  against the simulator's truth (relative to volume 0), correlation and mean absolute
  error of FD (Power, 50 mm);
* ANTsPy ``ants.motion_correction(type_of_transform="Rigid")`` — same figures; it runs in
  a child process with ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=--ants-threads`` (default 2,
  all cores of this machine; ours uses one thread);

and then the times of slice-timing correction, T1w -> MNI (SyN, CC and Mattes variants),
BOLD -> T1w, the one-shot resampling to 2 mm MNI, confounds, with the registration
error against the simulator's true template -> subject mapping.

Usage: ``.venv/bin/python benchmarks/bench_fmri.py [--n-volumes N] [--skip-ants] [--skip-registration]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work" / "fmri"


# --------------------------------------------------------------------------- helpers
def simulate(n_volumes: int, seed: int) -> Path:
    from neurofuse.simulate import simulate_dataset

    root = WORK / f"demo-{n_volumes}-seed{seed}"
    if not (root / "dataset_description.json").is_file():
        start = time.perf_counter()
        simulate_dataset(root, preset="demo", n_subjects=1, n_volumes=n_volumes, eeg_sfreq=1000.0, seed=seed)
        print(f"simulated {root} in {time.perf_counter() - start:.1f} s")
    return root


def truth_files(root: Path) -> tuple[dict, dict, dict]:
    from neurofuse.simulate import TRUTH_DIR, TRUTH_INDEX

    truth = json.loads((root / TRUTH_DIR / TRUTH_INDEX).read_text())
    meta = json.loads((root / "task-rest_bold.json").read_text())
    return truth["runs"][0], truth["anat"][0], meta


def score(truth_params: np.ndarray, matrices: np.ndarray) -> dict:
    from neurofuse.transforms import framewise_displacement, rigid_matrix, rigid_params

    t = rigid_matrix(truth_params)
    t_rel = np.linalg.inv(t[0]) @ t
    e_rel = np.linalg.inv(matrices[0]) @ matrices
    err = rigid_params(np.linalg.inv(t_rel) @ e_rel)
    fd_t = framewise_displacement(truth_params)[1:]
    fd_e = framewise_displacement(rigid_params(e_rel))[1:]
    return {
        "rms_trans_mm": float(np.sqrt(np.mean(err[:, :3] ** 2))),
        "rms_rot_rad": float(np.sqrt(np.mean(err[:, 3:] ** 2))),
        "max_trans_mm": float(np.abs(err[:, :3]).max()),
        "fd_r": float(np.corrcoef(fd_t, fd_e)[0, 1]),
        "fd_mae_mm": float(np.mean(np.abs(fd_t - fd_e))),
    }


def ants_motion_child(bold: str, out_npz: str) -> None:
    """Child process: ANTsPy motion_correction (Rigid, fixed = volume 0); save matrices + time."""
    import ants

    from neurofuse.fmri.registration import read_ants_affine

    img = ants.image_read(bold)
    fixed = ants.slice_image(img, axis=3, idx=0)
    start = time.perf_counter()
    result = ants.motion_correction(img, fixed=fixed, type_of_transform="Rigid")
    seconds = time.perf_counter() - start
    mats = np.array([read_ants_affine(tx[0]) for tx in result["motion_parameters"]])
    np.savez(out_npz, matrices=mats, seconds=seconds)


def registration_error(forward: list[str], moving: str, anat: dict, root: Path) -> tuple[float, float]:
    """Mean / 95th percentile distance (mm, template brain) to the simulator's true mapping."""
    import nibabel as nib

    from neurofuse.fmri.registration import load_template, load_template_mask
    from neurofuse.fmri.resample import compose_transforms

    a_inv = np.array(json.loads((root / anat["files"]["affine_json"]).read_text())["affine_mni_to_subject"])
    inv_warp = nib.load(root / anat["files"]["inverse_warp"]).get_fdata().reshape(-1, 3).T
    template = load_template(2)
    ijk = np.indices(template.shape).reshape(3, -1)
    q = template.affine[:3, :3] @ ijk + template.affine[:3, 3:4]
    p_true = a_inv[:3, :3] @ (q + inv_warp) + a_inv[:3, 3:4]
    brain = np.asarray(load_template_mask(2).dataobj).reshape(-1) > 0
    tmap = compose_transforms(forward, moving, template)
    dist = np.linalg.norm(tmap.points[:3, brain] - p_true[:, brain], axis=0)
    return float(dist.mean()), float(np.percentile(dist, 95))


def per_volume_ants(bold: str, ref: str, chain: list[str], motion_tsv: str, tmp: str, n: int = 5, n_ours: int = 20) -> None:
    """The alternative to one-shot composition: ants.apply_transforms per volume (linear).

    Ours runs on ``n_ours`` volumes so its fixed cost (composing the warp once, writing the
    file) is spread as it is in a real run; ANTs on ``n`` volumes (its cost is per volume).
    """
    import nibabel as nib

    from neurofuse.fmri import resample
    from neurofuse.fmri.motion import motion_matrices, read_motion_tsv
    from neurofuse.fmri.registration import _ants, load_template

    ants = _ants(42, 1)
    img = nib.load(bold)
    data = np.asarray(img.dataobj, dtype=np.float32)
    sub = os.path.join(tmp, "first.nii.gz")
    nib.save(nib.Nifti1Image(data[..., :n_ours], img.affine, img.header), sub)
    mats = motion_matrices(read_motion_tsv(motion_tsv))[:n_ours]
    start = time.perf_counter()
    resample.resample_bold_to_template(sub, os.path.join(tmp, "ours.nii"), reference_file=ref, transforms=chain,
                                       motion=mats, order=1)
    ours_s = (time.perf_counter() - start) / n_ours
    nib.save(load_template(2), os.path.join(tmp, "tpl.nii.gz"))
    fixed = ants.image_read(os.path.join(tmp, "tpl.nii.gz"))
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    ours = nib.load(os.path.join(tmp, "ours.nii")).get_fdata()
    diffs = []
    start = time.perf_counter()
    for t in range(n):
        lps = flip @ mats[t] @ flip
        tx = ants.create_ants_transform(transform_type="AffineTransform", precision="double", dimension=3,
                                        matrix=lps[:3, :3], translation=lps[:3, 3], center=np.zeros(3))
        mfile = os.path.join(tmp, f"motion{t}.mat")
        ants.write_transform(tx, mfile)
        vfile = os.path.join(tmp, "vol.nii.gz")
        nib.save(nib.Nifti1Image(data[..., t], img.affine), vfile)
        out = ants.apply_transforms(fixed, ants.image_read(vfile), chain + [mfile], interpolator="linear").numpy()
        inside = out > 0.1 * out.max()
        diffs.append(np.percentile(np.abs(out[inside] - ours[..., t][inside]), 99.9) / out[inside].mean())
    ants_s = (time.perf_counter() - start) / n
    row(f"  per volume: ours trilinear ({n_ours} vols)", ours_s)
    row(f"  per volume: ants.apply_transforms linear", ants_s,
        {"p99.9_rel_diff_vs_ours": f"{max(diffs):.1e}"})


def row(name: str, seconds: float, figures: dict | None = None) -> None:
    text = f"  {name:<44s} {seconds:8.2f} s"
    if figures:
        text += "   " + "  ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
        )
    print(text, flush=True)


# ------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-volumes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ants-threads", type=int, default=2)
    parser.add_argument("--skip-ants", action="store_true")
    parser.add_argument("--skip-registration", action="store_true")
    parser.add_argument("--ants-motion-child", nargs=2, metavar=("BOLD", "OUT_NPZ"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ants_motion_child:
        ants_motion_child(*args.ants_motion_child)
        return

    import nibabel as nib
    import pandas as pd

    from neurofuse.fmri import confounds, motion, registration, resample, slice_timing
    from neurofuse.transforms import PARAM_NAMES

    root = simulate(args.n_volumes, args.seed)
    run, anat, meta = truth_files(root)
    bold = str(root / run["files"]["bold"])
    t1w = str(root / anat["files"]["T1w"])
    img = nib.load(bold)
    truth = pd.read_csv(root / run["files"]["true_motion"], sep="\t")[list(PARAM_NAMES)].to_numpy()
    print(f"\nrun: {img.shape} voxels {tuple(float(z) for z in img.header.get_zooms()[:3])} mm, "
          f"TR {meta['RepetitionTime']} s, true max FD {run['figures']['max_fd_mm']:.2f} mm; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")

    print("head motion (raw BOLD, reference = volume 0; errors vs truth relative to volume 0)")
    data = np.asarray(img.dataobj, dtype=np.float32)
    start = time.perf_counter()
    ours = motion.estimate_motion_array(data, img.affine, reference=0)
    t_ours = time.perf_counter() - start
    s_ours = score(truth, ours.matrices)
    row("neurofuse estimate_motion (1 thread)", t_ours, s_ours)
    start = time.perf_counter()
    ours_med = motion.estimate_motion_array(data, img.affine, reference="median")
    row("neurofuse estimate_motion, median reference", time.perf_counter() - start, score(truth, ours_med.matrices))

    if not args.skip_ants:
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "ants.npz")
            env = dict(os.environ, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=str(args.ants_threads))
            subprocess.run([sys.executable, __file__, "--ants-motion-child", bold, out], check=True, env=env)
            res = np.load(out)
            t_ants = float(res["seconds"])
            row(f"ANTsPy motion_correction Rigid ({args.ants_threads} threads)", t_ants, score(truth, res["matrices"]))
        print(f"  -> ours is {t_ants / t_ours:.1f}x faster")

    print("\nother steps")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        times, axis = slice_timing.slice_times_in_index_order(meta)
        stc = os.path.join(tmp, "stc.nii.gz")
        slice_timing.correct_slice_timing(bold, stc, times, meta["RepetitionTime"], slice_axis=axis)
        row("slice timing (fft, incl. read/write .nii.gz)", time.perf_counter() - start)
        ref = os.path.join(tmp, "boldref.nii.gz")
        mtsv = os.path.join(tmp, "motion.tsv")
        motion.estimate_motion(bold, mtsv, out_reference=ref, reference=0)
        if args.skip_registration:
            return
        results = {}
        for label, kw in (("SyN CC r2 @2 mm (default)", {}),
                          ("SyN Mattes @2 mm (ANTsPy default)", {"syn_metric": "mattes", "syn_sampling": 32})):
            aff, warp = os.path.join(tmp, f"a{len(results)}.mat"), os.path.join(tmp, f"w{len(results)}.nii.gz")
            start = time.perf_counter()
            res = registration.register_t1w_to_template(t1w, aff, warp, **kw)
            wall = time.perf_counter() - start
            mean, p95 = registration_error(res.forward, t1w, anat, root)
            row(f"T1w -> MNI {label}", wall, {"ants_s": round(res.seconds, 2), "err_mean_mm": mean, "err_p95_mm": p95})
            results[label] = res
        start = time.perf_counter()
        b2t = registration.register_bold_to_t1w(ref, t1w, os.path.join(tmp, "b2t.mat"))
        est = registration.read_ants_affine(b2t.forward[0])
        pts = np.random.default_rng(0).normal(size=(500, 3)) * 30 + [0.0, -18.0, 10.0]
        off = np.linalg.norm(pts @ est[:3, :3].T + est[:3, 3] - pts, axis=1).max()
        row("BOLD ref -> T1w Rigid (truth: identity)", time.perf_counter() - start, {"max_err_mm": float(off)})
        chain = results["SyN CC r2 @2 mm (default)"].forward + b2t.forward
        for region in ("fov", "brain"):
            start = time.perf_counter()
            out = os.path.join(tmp, f"preproc_{region}.nii.gz")
            resample.resample_bold_to_template(stc, out, reference_file=ref, transforms=chain, motion=mtsv,
                                               region=region, out_mask=os.path.join(tmp, "mask.nii.gz"))
            row(f"resample to 2 mm MNI, cubic, region={region}", time.perf_counter() - start)
        per_volume_ants(stc, ref, chain, mtsv, tmp)
        start = time.perf_counter()
        confounds.write_confounds(mtsv, os.path.join(tmp, "conf.tsv"), bold_file=out, mask_file=os.path.join(tmp, "mask.nii.gz"))
        row("confounds (FD, DVARS on the 2 mm MNI series)", time.perf_counter() - start)
        mean, p95 = registration_error(chain, ref, anat, root)
        print(f"\n  full chain template -> BOLD reference vs truth: mean {mean:.2f} mm, p95 {p95:.2f} mm")


if __name__ == "__main__":
    main()
