"""Fusion accuracy and speed on a finished demo run, with a time-shuffled null.

Usage: python benchmarks/bench_fusion.py RESULTS_DIR BIDS_DIR [--shuffles N]

RESULTS_DIR is the output of `make demo` (preprocessed BOLD, confounds and band power of
every run); BIDS_DIR the simulated dataset whose derivatives/simulation holds the true
region masks. Prints, per band with a true region: ROC-AUC of the map signed by the true
coupling direction against the mask and the mean value inside it, for the GLM group z-map
and the deep model's held-out group heatmap; training time, samples per second and epoch time; then
the same for EEG band power whose rows are permuted in time (re-convolved with the HRF), N times.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from neurofuse.eeg.bandpower import hrf_convolve
from neurofuse.fusion.glm import design_dof, first_level, group_level
from neurofuse.fusion.train import RunInput, TrainConfig, fit_fusion

BANDS = ["delta", "theta", "alpha", "beta", "gamma"]


def runs_of(results: Path) -> list[RunInput]:
    runs = []
    for bands in sorted(results.glob("sub-*/**/eeg/*_desc-eegbands_timeseries.tsv")):
        run = bands.name.split("_desc-")[0]
        func = bands.parent.parent / "func"
        bold = func / f"{run}_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
        tr = json.loads(bold.with_name(bold.name.replace(".nii.gz", ".json")).read_text())["RepetitionTime"]
        runs.append(RunInput(run, run.split("_")[0][4:], str(bold),
                             str(func / f"{run}_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz"), str(bands),
                             str(func / f"{run}_desc-confounds_timeseries.tsv"), float(tr)))
    return runs


def shuffled(runs: list[RunInput], out: Path, seed: int) -> list[RunInput]:
    rng = np.random.default_rng(seed)
    new = []
    for r in runs:
        table = pd.read_csv(r.bands, sep="\t", na_values="n/a")
        raw = [c for c in table.columns if not c.endswith("_hrf")]
        table[raw] = table[raw].to_numpy()[rng.permutation(len(table))]
        onsets = np.arange(len(table)) * r.tr
        table[[f"{c}_hrf" for c in raw]] = hrf_convolve(table[raw].to_numpy(), onsets, r.tr, onsets + r.tr / 2)
        path = out / Path(r.bands).name
        table.to_csv(path, sep="\t", index=False, na_rep="n/a")
        new.append(r.__class__(**{**r.__dict__, "bands": str(path)}))
    return new


def score(path: str, truth: np.ndarray, sign: float, inside: np.ndarray) -> tuple[float, float]:
    """ROC-AUC of the map signed by the true coupling's direction (0.5 = chance, also under the
    null: |map| would favour any region whose voxels share a chance offset), and the mean in the region."""
    m = np.asarray(nib.load(path).dataobj, float)
    return roc_auc_score(truth[inside], sign * m[inside]), float(m[truth & inside].mean())


def evaluate(runs: list[RunInput], work: Path, truth: dict[str, tuple[np.ndarray, float]]) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    kinds = ("z", "effect", "variance")
    paths = {k: {b: [] for b in BANDS} for k in kinds}
    t0 = time.perf_counter()
    dofs = []
    for r in runs:
        names = {k: {b: str(work / f"{r.run}_{b}_{k}.nii.gz") for b in BANDS} for k in kinds}
        first_level(r.bold, r.mask, r.bands, r.confounds, tr=r.tr, bands=BANDS, zmaps=names["z"],
                    effects=names["effect"], variances=names["variance"], design=str(work / f"{r.run}_design.tsv"))
        dofs.append(design_dof(work / f"{r.run}_design.tsv"))
        for k in kinds:
            for b in BANDS:
                paths[k][b].append(names[k][b])
    group = {b: str(work / f"group_{b}_z.nii.gz") for b in BANDS}
    thr = {b: str(work / f"group_{b}_thr.nii.gz") for b in BANDS}
    glog = group_level(paths["effect"], paths["variance"], [r.subject for r in runs], None, zmaps=group,
                       thresholded=thr, mask_paths=[r.mask for r in runs], dofs=dofs)
    glm_s = time.perf_counter() - t0
    maps = {n: str(work / f"fusion_{n}.nii.gz") for n in ["fusion", *BANDS]}
    flog = fit_fusion(runs, BANDS, TrainConfig(), maps=maps, model_path=str(work / "model.pt"),
                      card_json=str(work / "card.json"), card_md=str(work / "card.md"),
                      history_tsv=str(work / "history.tsv"), checkpoint_dir=str(work / "ckpt"), log=lambda *_: None)
    inside = np.asarray(nib.load(maps["fusion"]).dataobj) != 0
    out = {"glm_seconds": glm_s, "train": flog}
    for band, (mask, sign) in truth.items():
        out[band] = {"glm": score(group[band], mask, sign, inside), "deep": score(maps[band], mask, sign, inside),
                     "glm_surviving": glog["bands"][band]["voxels_surviving"]}
    out["surviving_all_bands"] = sum(glog["bands"][b]["voxels_surviving"] for b in BANDS)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path)
    ap.add_argument("bids", type=Path)
    ap.add_argument("--shuffles", type=int, default=3)
    args = ap.parse_args()
    runs = runs_of(args.results)
    sim = args.bids / "derivatives" / "simulation"
    truth = {}
    for p in sorted(sim.glob("space-MNI152NLin2009cAsym_label-*_mask.nii.gz")):
        meta = json.loads(p.with_name(p.name.replace(".nii.gz", ".json")).read_text())
        truth[meta["Band"]] = (np.asarray(nib.load(p).dataobj) > 0, float(np.sign(meta["Coupling"])))
    with tempfile.TemporaryDirectory() as tmp:
        real = evaluate(runs, Path(tmp) / "real", truth)
        nulls = [evaluate(shuffled(runs, Path(tmp), seed), Path(tmp) / f"null{seed}", truth)
                 for seed in range(args.shuffles)]
    t = real["train"]
    print(f"{len(runs)} runs, {args.shuffles} time-shuffled nulls. GLM (first + group level): {real['glm_seconds']:.1f} s. Deep model: job {t['seconds']:.1f} s, "
          f"training {t['train_seconds']:.1f} s, {t['samples_per_second']:.0f} samples/s, "
          f"median epoch {1000 * t['epoch_seconds_median']:.1f} ms, {t['epochs']} epochs ({t['scheme']})")
    print("ROC-AUC of each map signed by the true coupling's direction against the true region (0.5 = chance)")
    print(f"{'band':6} {'map':5} {'AUC':>6} {'mean in region':>15} | null: mean AUC  [each shuffle]   FDR survivors")
    for band in truth:
        for kind in ("glm", "deep"):
            auc, mean = real[band][kind]
            null = [n[band][kind][0] for n in nulls]
            each = " ".join(f"{a:.2f}" for a in null)
            surv = " ".join(str(n[band]["glm_surviving"]) for n in nulls) if kind == "glm" else ""
            print(f"{band:6} {kind:5} {auc:6.3f} {mean:15.3f} | {np.mean(null):14.3f}  [{each}]  {surv}")
    print("voxels surviving FDR in any band, per null shuffle:", [n["surviving_all_bands"] for n in nulls])


if __name__ == "__main__":
    main()
