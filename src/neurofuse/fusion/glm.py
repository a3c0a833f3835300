"""EEG-informed GLM: BOLD regressed on HRF-convolved EEG band power (nilearn).

First level, per run: the preprocessed BOLD in template space (optionally smoothed,
scaled to percent signal change) against one regressor per band (see
:func:`neurofuse.fusion.data.band_regressors`), the configured motion confounds and a
cosine drift basis. The fit uses nilearn's regression models and contrasts with
bias-corrected, spatially regularised AR noise (:mod:`neurofuse.fusion.arglm` says why
not nilearn's own AR estimate: its null z-scores are too wide). One z-map per band, plus
the effect and variance maps and the design matrix the group level needs.

Group level, per band: runs of one subject are combined with fixed effects; subjects
with fixed effects too (``fixed``, for small samples, inference on these subjects) or a
one-sample t-test across subjects (``random``, population inference); ``auto`` picks
``random`` from six subjects on. The z-map is thresholded with nilearn's
``threshold_stats_img`` (FDR, Bonferroni or uncorrected, optional cluster extent).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from os import PathLike
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.glm.contrasts import compute_contrast

from neurofuse.errors import NeuroFuseError
from neurofuse.fusion.data import band_regressors, check_rows, confound_matrix, read_table
from neurofuse.io import atomic_path, save_nifti, save_sidecar

__all__ = ["MOTION_CONFOUNDS", "design_dof", "design_matrix", "first_level", "group_level", "plot_maps"]

#: Default nuisance regressors: the six rigid-body parameters (fMRIPrep names).
MOTION_CONFOUNDS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")

#: Subjects from which ``group_effects: auto`` uses random effects.
RANDOM_EFFECTS_MIN_SUBJECTS = 6


def design_matrix(bands_tsv: str | PathLike, confounds_tsv: str | PathLike, *, n_volumes: int, tr: float,
                  bands: Sequence[str], regressor: str = "pca", confounds: Sequence[str] = MOTION_CONFOUNDS,
                  high_pass: float = 0.01) -> tuple[pd.DataFrame, dict[str, dict]]:
    """The first-level design: band regressors, confounds, cosine drifts and a constant."""
    from nilearn.glm.first_level import make_first_level_design_matrix

    table = read_table(bands_tsv)
    check_rows(n_volumes, len(table), bands_tsv)
    conf = read_table(confounds_tsv)
    check_rows(n_volumes, len(conf), confounds_tsv, what="confounds table")
    regs, info = band_regressors(table, bands, regressor, bands_tsv)
    nuisance = confound_matrix(conf, confounds, confounds_tsv)
    add = pd.concat([regs, nuisance.reset_index(drop=True)], axis=1)
    frame_times = np.arange(n_volumes) * tr
    dm = make_first_level_design_matrix(frame_times, drift_model="cosine", high_pass=high_pass,
                                        add_regs=add.to_numpy(), add_reg_names=list(add.columns))
    rank = np.linalg.matrix_rank(dm.to_numpy())
    if rank < dm.shape[1]:
        raise NeuroFuseError(f"the design matrix is rank-deficient ({rank} of {dm.shape[1]} columns)", bands_tsv,
                             hint="a band regressor duplicates another or a confound; drop that band from fusion.bands")
    if dm.shape[1] >= n_volumes - 2:
        raise NeuroFuseError(f"{dm.shape[1]} regressors for {n_volumes} volumes", bands_tsv,
                             hint="the run is too short for the GLM; use fewer bands or confounds, or a lower fusion.glm.high_pass")
    return dm, info


def first_level(bold: str | PathLike, mask: str | PathLike, bands_tsv: str | PathLike,
                confounds_tsv: str | PathLike, *, tr: float, bands: Sequence[str], zmaps: Mapping[str, str],
                effects: Mapping[str, str], variances: Mapping[str, str], figure: str | None = None,
                regressor: str = "pca", confounds: Sequence[str] = MOTION_CONFOUNDS,
                smoothing_fwhm: float | None = 6.0, high_pass: float = 0.01, noise_model: str = "ar1",
                ar_smoothing_fwhm: float | None = 12.0, design: str | None = None,
                sources: Sequence[str] = ()) -> dict[str, Any]:
    """Workflow step ``fusion_fit_glm``: one run's z-map per band (+ effect/variance maps).

    ``zmaps``, ``effects`` and ``variances`` map each band to its output path; each z-map
    gets a JSON sidecar (regressor, confounds, degrees of freedom, peak z). ``design``, if
    given, receives the design matrix as TSV (the group level reads its degrees of
    freedom from it). Returns the log.
    """
    img = nib.load(str(bold))
    if img.ndim != 4:
        raise NeuroFuseError(f"expected a 4D BOLD image, got shape {img.shape}", bold)
    n_volumes = img.shape[3]
    dm, info = design_matrix(bands_tsv, confounds_tsv, n_volumes=n_volumes, tr=tr, bands=bands,
                             regressor=regressor, confounds=confounds, high_pass=high_pass)
    labels, results, masker = _fit_run(img, mask, dm, smoothing_fwhm=smoothing_fwhm, noise_model=noise_model,
                                       ar_smoothing_fwhm=ar_smoothing_fwhm)
    dof = int(n_volumes - np.linalg.matrix_rank(dm.to_numpy()))
    log: dict[str, Any] = {"step": "fusion_fit_glm", "bold": str(bold), "n_volumes": n_volumes,
                           "design_columns": list(dm.columns), "dof": dof, "bands": {}}
    if design is not None:
        with atomic_path(design, suffix=".tsv") as tmp:
            dm.to_csv(tmp, sep="\t", index=False, float_format="%.10g")
    for band in bands:
        contrast = compute_contrast(labels, results, (dm.columns == band).astype(float), stat_type="t")
        out = {"z_score": contrast.z_score(), "effect_size": contrast.effect_size(),
               "effect_variance": contrast.effect_variance()}
        out = {key: masker.inverse_transform(np.ravel(value)) for key, value in out.items()}
        save_nifti(_as_float32(out["z_score"]), zmaps[band])
        save_nifti(_as_float32(out["effect_size"]), effects[band])
        save_nifti(_as_float32(out["effect_variance"]), variances[band])
        z = np.asarray(out["z_score"].dataobj)
        stats = {"peak_z": float(z.max()), "min_z": float(z.min()), "voxels_abs_z_gt_3.1": int((np.abs(z) > 3.1).sum())}
        save_sidecar(zmaps[band], {
            "Description": f"EEG-informed GLM z-map of the {band} band-power regressor (HRF-convolved)",
            "Sources": list(sources),
            "Regressor": info[band] | {"scaling": "unit standard deviation"},
            "Confounds": list(confounds), "DriftModel": "cosine", "HighPass": high_pass,
            "SmoothingFWHM": smoothing_fwhm, "NoiseModel": _noise_description(noise_model, ar_smoothing_fwhm), "DegreesOfFreedom": dof,
            "OtherBands": [b for b in bands if b != band], "Software": "nilearn OLSModel/ARModel + compute_contrast (neurofuse.fusion.arglm)", **stats,
        })
        log["bands"][band] = stats | {"regressor": {k: v for k, v in info[band].items() if k != "weights"}}
    if figure:
        plot_maps({band: zmaps[band] for band in bands}, figure, threshold=3.1,
                  title="EEG-informed GLM, z (|z| > 3.1 shown)")
    return log


def _fit_run(img: nib.Nifti1Image, mask: str | PathLike, dm: pd.DataFrame, *, smoothing_fwhm: float | None,
             noise_model: str, ar_smoothing_fwhm: float | None):
    """Mask, smooth and scale the run to percent signal change, then fit (see neurofuse.fusion.arglm)."""
    from nilearn.image import smooth_img
    from nilearn.maskers import NiftiMasker

    from neurofuse.fusion import arglm

    masker = NiftiMasker(mask_img=str(mask), smoothing_fwhm=smoothing_fwhm).fit()
    data = masker.transform(img).astype(np.float64)
    mean = data.mean(axis=0)
    data = 100.0 * (data / np.where(mean == 0, 1.0, mean) - 1.0)  # percent signal change, as nilearn's signal_scaling=0
    smooth = None
    if ar_smoothing_fwhm:
        def smooth(gamma: np.ndarray) -> np.ndarray:
            return masker.transform(smooth_img(masker.inverse_transform(gamma), ar_smoothing_fwhm))

    labels, results = arglm.fit(data, dm.to_numpy(), noise_model, smooth=smooth)
    return labels, results, masker


def _noise_description(noise_model: str, ar_smoothing_fwhm: float | None) -> str:
    if noise_model == "ols":
        return "ols (white noise)"
    where = f", autocovariances smoothed {ar_smoothing_fwhm:g} mm FWHM" if ar_smoothing_fwhm else ""
    return f"{noise_model} (bias-corrected, Worsley et al. 2002{where})"


def design_dof(path: str | PathLike) -> int:
    """Residual degrees of freedom of a first-level design written by :func:`first_level`."""
    dm = read_table(path)
    return int(len(dm) - np.linalg.matrix_rank(dm.to_numpy(dtype=float)))


def _as_float32(img: nib.Nifti1Image) -> nib.Nifti1Image:
    data = np.asarray(img.dataobj, dtype=np.float32)
    out = nib.Nifti1Image(data, img.affine)
    out.header.set_xyzt_units("mm")
    return out


def group_level(effects: Mapping[str, Sequence[str]], variances: Mapping[str, Sequence[str]],
                subjects: Sequence[str], mask: str | PathLike | None, *, zmaps: Mapping[str, str],
                thresholded: Mapping[str, str], figure: str | None = None, group_effects: str = "auto",
                height_control: str = "fdr", alpha: float = 0.05, cluster_threshold: int = 0,
                dofs: Sequence[int], mask_paths: Sequence[str] = ()) -> dict[str, Any]:
    """Workflow step ``fusion_combine_glm``: group z-map per band and its thresholded map.

    ``effects[band]``/``variances[band]`` list one map per run; ``subjects`` the subject of
    each run. ``mask`` is a brain mask (or ``None``: the intersection of ``mask_paths``).
    Returns the log (method, threshold, surviving voxels per band).
    """
    from nilearn.glm import compute_fixed_effects, threshold_stats_img

    labels = sorted(set(subjects))
    method = group_effects
    if method == "auto":
        method = "random" if len(labels) >= RANDOM_EFFECTS_MIN_SUBJECTS else "fixed"
    if method == "random" and len(labels) < 3:
        raise NeuroFuseError(f"random effects need at least 3 subjects, got {len(labels)}",
                             hint="set fusion.glm.group_effects to fixed or auto")
    mask_img = _group_mask(mask, mask_paths)
    run_dofs = [int(d) for d in dofs]
    if len(run_dofs) != len(subjects):
        raise NeuroFuseError(f"{len(run_dofs)} degrees of freedom for {len(subjects)} runs",
                             hint="pass one design matrix per run")
    log: dict[str, Any] = {"step": "fusion_combine_glm", "group_effects": method, "n_subjects": len(labels),
                           "n_runs": len(subjects), "height_control": height_control, "alpha": alpha,
                           "cluster_threshold": cluster_threshold, "bands": {}}
    for band, paths in effects.items():
        var_paths = variances[band]
        per_subject = []
        for label in labels:
            idx = [i for i, s in enumerate(subjects) if s == label]
            con, var, _, _ = compute_fixed_effects([paths[i] for i in idx], [var_paths[i] for i in idx], mask=mask_img,
                                                   dofs=[run_dofs[i] for i in idx])
            per_subject.append((con, var, sum(run_dofs[i] for i in idx)))
        if method == "fixed":
            _, _, _, z_img = compute_fixed_effects([c for c, _, _ in per_subject], [v for _, v, _ in per_subject],
                                                   mask=mask_img, dofs=[d for _, _, d in per_subject])
        else:
            from nilearn.glm.second_level import SecondLevelModel

            design = pd.DataFrame({"intercept": np.ones(len(labels))})
            slm = SecondLevelModel(mask_img=mask_img).fit([c for c, _, _ in per_subject], design_matrix=design)
            z_img = slm.compute_contrast("intercept", output_type="z_score")
        z_img = _as_float32(z_img)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            thr_img, threshold = threshold_stats_img(z_img, mask_img=mask_img, alpha=alpha, height_control=height_control,
                                                     cluster_threshold=cluster_threshold, two_sided=True)
        save_nifti(z_img, zmaps[band])
        save_nifti(_as_float32(thr_img), thresholded[band])
        surviving = int(np.count_nonzero(np.asarray(thr_img.dataobj)))
        stats = {"threshold_z": float(threshold) if np.isfinite(threshold) else None, "voxels_surviving": surviving,
                 "peak_z": float(np.asarray(z_img.dataobj).max()), "min_z": float(np.asarray(z_img.dataobj).min())}
        for path, what in ((zmaps[band], "unthresholded"), (thresholded[band], "thresholded")):
            save_sidecar(path, {
                "Description": f"Group EEG-informed GLM z-map of the {band} band ({what}), {method} effects",
                "GroupEffects": method, "Subjects": labels, "Runs": len(subjects),
                "HeightControl": height_control, "Alpha": alpha, "ClusterThreshold": cluster_threshold,
                "Software": "nilearn compute_fixed_effects / SecondLevelModel, threshold_stats_img", **stats,
            })
        log["bands"][band] = stats
    if figure:
        plot_maps(dict(thresholded), figure, threshold=None,
                  title=f"Group EEG-informed GLM ({method} effects, {height_control} {alpha:g})")
    return log


def _group_mask(mask: str | PathLike | None, mask_paths: Sequence[str]) -> nib.Nifti1Image:
    if mask is not None:
        return nib.load(str(mask))
    if not mask_paths:
        raise NeuroFuseError("no brain mask given for the group level")
    from nilearn.masking import intersect_masks

    return intersect_masks([str(p) for p in mask_paths], threshold=1.0, connected=False)


def plot_maps(maps: Mapping[str, str | nib.Nifti1Image], path: str | PathLike, *, threshold: float | None,
              title: str, vmax: float | None = None, cmap: str = "cold_hot") -> None:
    """One row per map: a glass brain and three orthogonal slices at the peak."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from nilearn import plotting

    from neurofuse.io import save_figure

    fig, axes = plt.subplots(len(maps), 2, figsize=(13, 3.0 * len(maps)), squeeze=False,
                             gridspec_kw={"width_ratios": [1.0, 1.15]})
    for row, (name, img) in enumerate(maps.items()):
        img = nib.load(str(img)) if not isinstance(img, nib.Nifti1Image) else img
        data = np.asarray(img.dataobj, dtype=float)
        peak = float(np.nanmax(np.abs(data))) if data.size else 0.0
        thr = threshold if threshold is not None else 1e-6
        empty = not np.any(np.abs(data) > thr)
        # An empty map keeps a readable scale (the threshold, or 1) and draws no colour bar:
        # a bar from -1e-06 to 1e-06 would look like a result.
        top = vmax or (max(peak, 1e-6) if not empty else (threshold or 1.0))
        label = f"{name} (nothing above threshold)" if empty else name
        plotting.plot_glass_brain(img, axes=axes[row, 0], threshold=thr, vmax=top, vmin=-top, cmap=cmap,
                                  plot_abs=False, colorbar=not empty, title=label)
        ijk = np.unravel_index(int(np.nanargmax(np.abs(data))), data.shape) if peak > 0 else np.array(data.shape) // 2
        cut = nib.affines.apply_affine(img.affine, ijk)
        plotting.plot_stat_map(img, axes=axes[row, 1], threshold=thr, vmax=top, cmap=cmap, cut_coords=cut,
                               display_mode="ortho", colorbar=not empty, draw_cross=False, annotate=True,
                               title=f"{name}: peak at ({cut[0]:.0f}, {cut[1]:.0f}, {cut[2]:.0f}) mm")
    fig.suptitle(title)
    save_figure(fig, path, dpi=80)
    plt.close(fig)
