"""EEG-informed GLM: BOLD regressed on HRF-convolved EEG band power (nilearn).

First level, per run: the preprocessed BOLD in template space against one regressor per
band (see :func:`neurofuse.fusion.data.band_regressors`), the configured motion
confounds and a cosine drift basis, fitted with nilearn's ``FirstLevelModel`` (AR(1)
noise, optional smoothing). One z-map per band, plus the effect and variance maps the
group level needs.

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

from neurofuse.errors import NeuroFuseError
from neurofuse.fusion.data import band_regressors, check_rows, confound_matrix, read_table
from neurofuse.io import save_nifti, save_sidecar

__all__ = ["MOTION_CONFOUNDS", "design_matrix", "first_level", "group_level", "plot_maps"]

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
                smoothing_fwhm: float | None = 6.0, high_pass: float = 0.01,
                sources: Sequence[str] = ()) -> dict[str, Any]:
    """Workflow step ``fusion_fit_glm``: one run's z-map per band (+ effect/variance maps).

    ``zmaps``, ``effects`` and ``variances`` map each band to its output path; each z-map
    gets a JSON sidecar (regressor, confounds, degrees of freedom, peak z). Returns the log.
    """
    from nilearn.glm.first_level import FirstLevelModel

    img = nib.load(str(bold))
    if img.ndim != 4:
        raise NeuroFuseError(f"expected a 4D BOLD image, got shape {img.shape}", bold)
    n_volumes = img.shape[3]
    dm, info = design_matrix(bands_tsv, confounds_tsv, n_volumes=n_volumes, tr=tr, bands=bands,
                             regressor=regressor, confounds=confounds, high_pass=high_pass)
    model = FirstLevelModel(t_r=tr, mask_img=str(mask), smoothing_fwhm=smoothing_fwhm, noise_model="ar1",
                            signal_scaling=0, minimize_memory=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # nilearn notes the design has no events: intended
        model.fit(img, design_matrices=dm)
    dof = int(n_volumes - np.linalg.matrix_rank(dm.to_numpy()))
    log: dict[str, Any] = {"step": "fusion_fit_glm", "bold": str(bold), "n_volumes": n_volumes,
                           "design_columns": list(dm.columns), "dof": dof, "bands": {}}
    for band in bands:
        out = model.compute_contrast(band, output_type="all")
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
            "SmoothingFWHM": smoothing_fwhm, "NoiseModel": "ar1", "DegreesOfFreedom": dof,
            "OtherBands": [b for b in bands if b != band], "Software": "nilearn FirstLevelModel", **stats,
        })
        log["bands"][band] = stats | {"regressor": {k: v for k, v in info[band].items() if k != "weights"}}
    if figure:
        plot_maps({band: zmaps[band] for band in bands}, figure, threshold=3.1,
                  title="EEG-informed GLM, z (|z| > 3.1 shown)")
    return log


def _as_float32(img: nib.Nifti1Image) -> nib.Nifti1Image:
    data = np.asarray(img.dataobj, dtype=np.float32)
    out = nib.Nifti1Image(data, img.affine)
    out.header.set_xyzt_units("mm")
    return out


def group_level(effects: Mapping[str, Sequence[str]], variances: Mapping[str, Sequence[str]],
                subjects: Sequence[str], mask: str | PathLike | None, *, zmaps: Mapping[str, str],
                thresholded: Mapping[str, str], figure: str | None = None, group_effects: str = "auto",
                height_control: str = "fdr", alpha: float = 0.05, cluster_threshold: int = 0,
                mask_paths: Sequence[str] = ()) -> dict[str, Any]:
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
    log: dict[str, Any] = {"step": "fusion_combine_glm", "group_effects": method, "n_subjects": len(labels),
                           "n_runs": len(subjects), "height_control": height_control, "alpha": alpha,
                           "cluster_threshold": cluster_threshold, "bands": {}}
    for band, paths in effects.items():
        var_paths = variances[band]
        per_subject = []
        for label in labels:
            idx = [i for i, s in enumerate(subjects) if s == label]
            con, var, _, _ = compute_fixed_effects([paths[i] for i in idx], [var_paths[i] for i in idx], mask=mask_img)
            per_subject.append((con, var))
        if method == "fixed":
            _, _, _, z_img = compute_fixed_effects([c for c, _ in per_subject], [v for _, v in per_subject], mask=mask_img)
        else:
            from nilearn.glm.second_level import SecondLevelModel

            design = pd.DataFrame({"intercept": np.ones(len(labels))})
            slm = SecondLevelModel(mask_img=mask_img).fit([c for c, _ in per_subject], design_matrix=design)
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
        top = vmax or max(peak, 1e-6)
        thr = threshold if threshold is not None else 1e-6
        empty = not np.any(np.abs(data) > thr)
        label = f"{name} (nothing above threshold)" if empty else name
        plotting.plot_glass_brain(img, axes=axes[row, 0], threshold=thr, vmax=top, vmin=-top, cmap=cmap,
                                  plot_abs=False, colorbar=True, title=label)
        ijk = np.unravel_index(int(np.nanargmax(np.abs(data))), data.shape) if peak > 0 else np.array(data.shape) // 2
        cut = nib.affines.apply_affine(img.affine, ijk)
        plotting.plot_stat_map(img, axes=axes[row, 1], threshold=thr, vmax=top, cmap=cmap, cut_coords=cut,
                               display_mode="ortho", colorbar=True, draw_cross=False, annotate=True,
                               title=f"{name}: peak at ({cut[0]:.0f}, {cut[1]:.0f}, {cut[2]:.0f}) mm")
    fig.suptitle(title)
    save_figure(fig, path, dpi=80)
    plt.close(fig)
