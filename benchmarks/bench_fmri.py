#!/usr/bin/env python
"""fMRI stage: head motion vs ANTsPy and nipy, the whole chain's time, memory, accuracy.

Simulates one subject of the ``demo`` preset (3 mm EPI; ``--n-volumes`` volumes, 100 by
default, and a 150-volume run for the chain) under ``benchmarks/.work/`` (git-ignored;
re-used if present), then prints, side by side in one run:

1. **Head motion on the simulated run** (raw BOLD, volume 0 as reference for all):
   ``neurofuse.fmri.motion.estimate_motion`` (one thread), ANTsPy
   ``ants.motion_correction(type_of_transform="Rigid")`` (child process,
   ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=--ants-threads``, default 2 = all cores) and nipy
   0.6.1 ``SpaceTimeRealign`` (given the true SliceTiming; it lives in its own venv,
   ``benchmarks/.work/peers-venv/nipy``, made here with uv if missing, because nipy is
   not in the project's lock). Figures: time, median / RMS absolute error (mm, degrees)
   against the truth relative to volume 0, FD correlation and mean absolute error.
2. **Head motion on a real run moved by known motion**: volume 0 of nibabel's
   ``example4d.nii.gz`` (a real oblique EPI, 2 x 2 x 2.2 mm) moved by the simulator's
   motion model (drift + 2 sudden movements, up to ~3 mm) inside a fixed slab
   (:mod:`neurofuse.simulate.moved`), same three tools, same figures.
3. **The whole chain** on the 150-volume run (:func:`neurofuse.fmri.pipeline.preprocess_run`:
   head motion, slice timing, T1w -> MNI SyN, BOLD -> T1w, one resampling to 2 mm MNI,
   confounds, QC figures) in a child process: wall time per step, peak memory (maxrss);
   normalisation accuracy against the simulator's true template -> subject mapping: mean
   and 95th-percentile displacement, Dice of the subject's brain mask carried into MNI.
4. **Peak memory of a 64x64x36x600 run**: a series made from the same subject's
   noiseless reference moved by known motion, each step (head motion, slice timing, the
   one resampling to 2 mm MNI with the chain's transforms, confounds, carpet plot) in its
   own child process, maxrss of each.
5. **Other steps** (``--details``): slice timing alone, SyN metric variants, resampling
   per volume against ``ants.apply_transforms``.

Usage: ``.venv/bin/python benchmarks/bench_fmri.py [--n-volumes N] [--skip-ants] [--skip-nipy]
[--skip-real] [--skip-chain] [--skip-memory] [--details]``
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
    from neurofuse.simulate.moved import motion_errors

    e = motion_errors(truth_params, matrices)
    return {k: e[k] for k in ("median_mm", "median_deg", "rms_mm", "rms_deg", "fd_r", "fd_mae_mm")}


NIPY_VENV = WORK.parent / "peers-venv" / "nipy"


def nipy_python() -> Path:
    """The nipy venv's python (made with the project's uv, nipy 0.6.1, if missing)."""
    py = NIPY_VENV / "bin" / "python"
    if not py.exists():
        import nibabel

        uv = str(Path(sys.executable).parent / "uv")
        subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(NIPY_VENV)], check=True)
        subprocess.run([uv, "pip", "install", "-q", "--python", str(py), "nipy==0.6.1",
                        f"nibabel=={nibabel.__version__}"], check=True)
    return py


def nipy_motion_child(bold: str, tr: str, slice_times: str, out_npz: str) -> None:
    """Child process in the nipy venv: SpaceTimeRealign, reference = volume 0 (imports only nipy)."""
    import nibabel as nib
    from nipy.algorithms.registration import SpaceTimeRealign

    img = nib.load(bold)
    times = json.loads(slice_times)
    realign = SpaceTimeRealign(img, tr=float(tr), slice_times=times, slice_info=2)
    start = time.perf_counter()
    realign.estimate(refscan=0)
    seconds = time.perf_counter() - start
    # nipy's transforms map reference world positions to the volume's (our M_t convention;
    # checked on a phantom with known motion: same sign, same axes)
    mats = np.array([t.as_affine() for t in realign._transforms[0]])
    np.savez(out_npz, matrices=mats, seconds=seconds)


def motion_table(bold: str, truth: np.ndarray, tr: float, slice_times, args) -> None:
    """Ours, ANTsPy and nipy on one 4D file, figures against ``truth`` (relative to volume 0)."""
    import nibabel as nib

    from neurofuse.fmri import motion

    img = nib.load(bold)
    data = np.asarray(img.dataobj, dtype=np.float32)
    start = time.perf_counter()
    ours = motion.estimate_motion_array(data, img.affine, reference=0)
    t_ours = time.perf_counter() - start
    row("neurofuse estimate_motion (1 thread)", t_ours, score(truth, ours.matrices))
    start = time.perf_counter()
    ours_med = motion.estimate_motion_array(data, img.affine, reference="median")
    row("neurofuse estimate_motion, median reference", time.perf_counter() - start, score(truth, ours_med.matrices))
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_ants:
            out = os.path.join(tmp, "ants.npz")
            env = dict(os.environ, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=str(args.ants_threads))
            subprocess.run([sys.executable, __file__, "--ants-motion-child", bold, out], check=True, env=env)
            res = np.load(out)
            t_ants = float(res["seconds"])
            row(f"ANTsPy motion_correction Rigid ({args.ants_threads} threads)", t_ants, score(truth, res["matrices"]))
            print(f"  -> ours is {t_ants / t_ours:.1f}x faster than ANTsPy")
        if not args.skip_nipy:
            out = os.path.join(tmp, "nipy.npz")
            env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
            subprocess.run([str(nipy_python()), __file__, "--nipy-motion-child", bold, str(tr),
                            json.dumps(slice_times), out], check=True, env=env)
            res = np.load(out)
            t_nipy = float(res["seconds"])
            row("nipy 0.6.1 SpaceTimeRealign (1 thread)", t_nipy, score(truth, res["matrices"]))
            print(f"  -> ours is {t_nipy / t_ours:.1f}x faster than nipy")


def maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def cpu_s() -> float:
    """CPU time (user + system) of this process and its finished children: on a shared
    machine a better measure of the work than wall time."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def chain_child(root: str, out_dir: str, out_json: str) -> None:
    """Child process: the whole fMRI chain of the first run of ``root``; times + peak memory."""
    from neurofuse.fmri.pipeline import preprocess_run

    run, anat, meta = truth_files(Path(root))
    start = time.perf_counter()
    res = preprocess_run(Path(root) / run["files"]["bold"], meta, out_dir, t1w_file=Path(root) / anat["files"]["T1w"])
    res["wall_s"] = time.perf_counter() - start
    res["cpu_s"] = cpu_s()
    res["maxrss_mb"] = maxrss_mb()
    Path(out_json).write_text(json.dumps(res, default=str))


def memory_step_child(step: str, work: str, out_json: str) -> None:
    """Child process: one step on the long run in ``work``; seconds + peak memory."""
    from neurofuse.fmri import confounds, motion, qc, resample, slice_timing

    w = Path(work)
    spec = json.loads((w / "spec.json").read_text())
    start = time.perf_counter()
    if step == "head motion":
        motion.estimate_motion(w / "bold.nii.gz", w / "motion.tsv", out_reference=w / "boldref.nii.gz")
    elif step == "slice timing":
        slice_timing.correct_slice_timing(w / "bold.nii.gz", w / "stc.nii.gz", spec["slice_times"], spec["tr"])
    elif step == "resample to 2 mm MNI":
        resample.resample_bold_to_template(w / "stc.nii.gz", w / "preproc.nii.gz", reference_file=w / "boldref.nii.gz",
                                           transforms=spec["transforms"], motion=w / "motion.tsv",
                                           out_mask=w / "mask.nii.gz")
    elif step == "confounds":
        confounds.write_confounds(w / "motion.tsv", w / "conf.tsv", bold_file=w / "preproc.nii.gz",
                                  mask_file=w / "mask.nii.gz")
    elif step == "carpet plot":
        qc.plot_carpet(w / "preproc.nii.gz", w / "mask.nii.gz", w / "carpet.png", confounds=w / "conf.tsv")
    else:
        raise ValueError(step)
    Path(out_json).write_text(json.dumps({"seconds": time.perf_counter() - start, "cpu_s": cpu_s(),
                                          "maxrss_mb": maxrss_mb()}))


def child(flag: str, *values: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        subprocess.run([sys.executable, __file__, flag, *values, out], check=True)
        return json.loads(Path(out).read_text())


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


def registration_error(forward: list[str], moving: str, anat: dict, root: Path,
                       mask_epi: str | None = None) -> tuple[float, float, float | None]:
    """Mean / 95th-percentile distance (mm, template brain) to the simulator's true mapping,
    and the Dice of the subject's brain mask carried into MNI (see neurofuse.simulate.scoring)."""
    from neurofuse.fmri.registration import load_template, load_template_mask
    from neurofuse.fmri.resample import compose_transforms
    from neurofuse.simulate.scoring import normalisation_errors

    template = load_template(2)
    tmap = compose_transforms(forward, moving, template)
    e = normalisation_errors(tmap.points, root, anat, template, np.asarray(load_template_mask(2).dataobj), mask_epi)
    return e["mean_mm"], e["p95_mm"], e.get("dice")


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


def real_moved_run(tmp: str, n_volumes: int = 40, seed: int = 5) -> tuple[str, np.ndarray]:
    """nibabel's real ``example4d`` volume 0 moved by the simulator's motion model (fixed slab)."""
    import nibabel as nib
    from nibabel.testing import data_path

    from neurofuse.simulate.bold import random_motion
    from neurofuse.simulate.moved import move_volume

    img = nib.load(os.path.join(data_path, "example4d.nii.gz"))
    params, _ = random_motion(n_volumes, 2, np.random.default_rng(seed))
    data, affine = move_volume(np.asarray(img.dataobj[..., 0], np.float32), img.affine, params,
                               noise_sd=10.0, seed=seed, crop=(8, 8, 3))
    path = os.path.join(tmp, "example4d_moved.nii.gz")
    nib.save(nib.Nifti1Image(data, affine), path)
    return path, params


def long_run(root: str, run: dict, chain_dir: str, transforms: list[str], work: Path, n_volumes: int) -> None:
    """A 64x64x36 (3 x 3 x 3.5 mm) run of ``n_volumes`` from the subject's noiseless reference."""
    import nibabel as nib

    from neurofuse.simulate.bold import random_motion, slice_timing
    from neurofuse.simulate.moved import move_volume

    work.mkdir(parents=True, exist_ok=True)
    if (work / "spec.json").is_file():
        return
    ref = nib.load(Path(root) / run["files"]["noiseless_boldref"])
    shape, zooms = np.array([64, 64, 36]), np.array([3.0, 3.0, 3.5])
    centre = ref.affine[:3, :3] @ ((np.array(ref.shape) - 1) / 2) + ref.affine[:3, 3]
    grid = np.diag(list(zooms) + [1.0])
    grid[:3, 3] = centre - zooms * (shape - 1) / 2
    from scipy import ndimage

    inv = np.linalg.inv(ref.affine) @ grid
    on_grid = ndimage.affine_transform(np.asarray(ref.dataobj, np.float32), inv[:3, :3], inv[:3, 3],
                                       output_shape=tuple(shape), order=3)
    params, _ = random_motion(n_volumes, 6, np.random.default_rng(11))
    data, _ = move_volume(on_grid, grid, params, noise_sd=float(np.percentile(on_grid, 98)) / 80, seed=11)
    img = nib.Nifti1Image(np.clip(np.rint(data), 0, 32767).astype(np.int16), grid)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms(tuple(zooms) + (2.0,))
    nib.save(img, work / "bold.nii.gz")
    spec = {"tr": 2.0, "slice_times": slice_timing(36, 2.0).tolist(), "transforms": transforms}
    (work / "spec.json").write_text(json.dumps(spec))


# ------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--n-volumes", type=int, default=100)
    parser.add_argument("--chain-volumes", type=int, default=150)
    parser.add_argument("--memory-volumes", type=int, default=600)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ants-threads", type=int, default=2)
    for what in ("ants", "nipy", "real", "chain", "memory"):
        parser.add_argument(f"--skip-{what}", action="store_true")
    parser.add_argument("--details", action="store_true", help="slice timing alone, SyN variants, per-volume resampling")
    parser.add_argument("--ants-motion-child", nargs=2, metavar=("BOLD", "OUT_NPZ"), help=argparse.SUPPRESS)
    parser.add_argument("--nipy-motion-child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--chain-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--memory-step-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ants_motion_child:
        return ants_motion_child(*args.ants_motion_child)
    if args.nipy_motion_child:
        return nipy_motion_child(*args.nipy_motion_child)
    if args.chain_child:
        return chain_child(*args.chain_child)
    if args.memory_step_child:
        return memory_step_child(*args.memory_step_child)

    import nibabel as nib
    import pandas as pd

    from neurofuse.transforms import PARAM_NAMES

    root = simulate(args.n_volumes, args.seed)
    run, anat, meta = truth_files(root)
    bold = str(root / run["files"]["bold"])
    img = nib.load(bold)
    truth = pd.read_csv(root / run["files"]["true_motion"], sep="\t")[list(PARAM_NAMES)].to_numpy()
    print(f"\nrun: {img.shape} voxels {tuple(float(z) for z in img.header.get_zooms()[:3])} mm, "
          f"TR {meta['RepetitionTime']} s, true max FD {run['figures']['max_fd_mm']:.2f} mm; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")

    print("1. head motion, simulated run (raw BOLD, reference = volume 0; errors vs truth relative to volume 0)")
    motion_table(bold, truth, meta["RepetitionTime"], list(meta["SliceTiming"]), args)

    if not args.skip_real:
        with tempfile.TemporaryDirectory() as tmp:
            path, params = real_moved_run(tmp)
            shape = nib.load(path).shape
            print(f"\n2. head motion, real EPI (nibabel example4d volume 0, {shape}, 2 x 2 x 2.2 mm, oblique) "
                  f"moved by known motion (max {np.abs(params[:, :3]).max():.1f} mm, "
                  f"{np.rad2deg(np.abs(params[:, 3:]).max()):.2f} deg)")
            motion_table(path, params, 2.0, 0.0, args)

    chain_out = WORK / f"chain-{args.chain_volumes}-seed{args.seed}"
    if not args.skip_chain or not args.skip_memory:
        root150 = simulate(args.chain_volumes, args.seed)
        run150, anat150, _ = truth_files(root150)
        if not args.skip_chain or not (chain_out / "result.json").is_file():
            print(f"\n3. whole fMRI chain, one {args.chain_volumes}-volume run (child process; "
                  f"load average {os.getloadavg()[0]:.1f})")
            res = child("--chain-child", str(root150), str(chain_out))
            (chain_out / "result.json").write_text(json.dumps(res))
            for step, sec in res["seconds"].items():
                row(f"  {step}", sec)
            row("whole chain (wall)", res["wall_s"],
                {"cpu_s": round(res["cpu_s"], 1), "peak_memory_MB": round(res["maxrss_mb"])})
            files = res["files"]
            t1w = [f for f in files["transforms"] if "t1w_to_mni" in os.path.basename(f)]
            mean, p95, dice = registration_error(t1w, str(root150 / anat150["files"]["T1w"]), anat150, root150,
                                                 mask_epi=str(root150 / run150["files"]["brain_mask_epi"]))
            print(f"  normalisation (T1w -> MNI vs the true mapping, template brain): mean {mean:.2f} mm, "
                  f"p95 {p95:.2f} mm, Dice of the brain mask in MNI {dice:.4f}")
            mean, p95, _ = registration_error(files["transforms"], files["boldref"], anat150, root150)
            print(f"  whole chain template -> BOLD reference (median of 10 volumes) vs truth: mean {mean:.2f} mm, "
                  f"p95 {p95:.2f} mm")
        res = json.loads((chain_out / "result.json").read_text())

        if not args.skip_memory:
            work = WORK / f"long-{args.memory_volumes}"
            long_run(str(root150), run150, str(chain_out), res["files"]["transforms"], work, args.memory_volumes)
            print(f"\n4. peak memory, 64x64x36x{args.memory_volumes} run (3 x 3 x 3.5 mm, int16), one child per step")
            for step in ("head motion", "slice timing", "resample to 2 mm MNI", "confounds", "carpet plot"):
                r = child("--memory-step-child", step, str(work))
                row(f"  {step}", r["seconds"], {"cpu_s": round(r["cpu_s"], 1), "peak_memory_MB": round(r["maxrss_mb"])})

    if args.details:
        details(root, run, anat, meta, bold)


def details(root: Path, run: dict, anat: dict, meta: dict, bold: str) -> None:
    from neurofuse.fmri import confounds, motion, registration, resample, slice_timing

    t1w = str(root / anat["files"]["T1w"])
    print("\n5. other steps")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        times, axis = slice_timing.slice_times_in_index_order(meta)
        stc = os.path.join(tmp, "stc.nii.gz")
        slice_timing.correct_slice_timing(bold, stc, times, meta["RepetitionTime"], slice_axis=axis)
        row("slice timing (fft, incl. read/write .nii.gz)", time.perf_counter() - start)
        ref = os.path.join(tmp, "boldref.nii.gz")
        mtsv = os.path.join(tmp, "motion.tsv")
        motion.estimate_motion(bold, mtsv, out_reference=ref, reference=0)
        results = {}
        for label, kw in (("SyN CC r2 @2 mm (default)", {}),
                          ("SyN Mattes @2 mm (ANTsPy default)", {"syn_metric": "mattes", "syn_sampling": 32})):
            aff, warp = os.path.join(tmp, f"a{len(results)}.mat"), os.path.join(tmp, f"w{len(results)}.nii.gz")
            start = time.perf_counter()
            res = registration.register_t1w_to_template(t1w, aff, warp, **kw)
            wall = time.perf_counter() - start
            mean, p95, dice = registration_error(res.forward, t1w, anat, root,
                                                 mask_epi=str(root / run["files"]["brain_mask_epi"]))
            row(f"T1w -> MNI {label}", wall, {"ants_s": round(res.seconds, 2), "err_mean_mm": mean,
                                              "err_p95_mm": p95, "dice": dice})
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
        mean, p95, _ = registration_error(chain, ref, anat, root)
        print(f"\n  full chain template -> BOLD reference vs truth: mean {mean:.2f} mm, p95 {p95:.2f} mm")


if __name__ == "__main__":
    main()
