"""Confounds table (``desc-confounds_timeseries.tsv`` + JSON), fMRIPrep conventions.

Columns, one row per volume:

``trans_x trans_y trans_z rot_x rot_y rot_z``
    Head-motion parameters (mm, radians) in :mod:`neurofuse.transforms` convention.
``<param>_derivative1``, ``<param>_power2``, ``<param>_derivative1_power2``
    The 24-parameter expansion (Friston 1996, Satterthwaite 2013), as fMRIPrep writes it;
    backward differences, so the first row of a derivative is ``n/a``.
``framewise_displacement``
    Power et al. (2012), 50 mm sphere, via
    :func:`neurofuse.transforms.framewise_displacement`; ``n/a`` on the first row.
``dvars``, ``std_dvars``
    DVARS (Power 2012): RMS over brain voxels of the backward temporal difference, after
    scaling the data so the median over brain voxels and time is 1000 (fMRIPrep/nipype
    ``intensity_normalization=1000``); ``n/a`` on the first row. ``std_dvars`` divides by
    the value DVARS would have under the null (Nichols 2013; fMRIPrep's ``std_dvars``):
    each voxel's series is modelled as AR(1) with robust standard deviation
    ``s_v = IQR_v / 1.349`` and Yule–Walker lag-1 coefficient ``r_v`` (of the demeaned
    series), so its temporal difference has standard deviation ``s_v sqrt(2 (1 - r_v))``,
    and the expected DVARS is taken as the mean of that over voxels. Voxels with zero
    temporal variance (outside the field of view after resampling) are left out.
``global_signal``, ``csf``, ``white_matter`` (+ the same three expansions)
    Mean signal in the brain mask, in CSF and in (eroded) white matter of the template's
    tissue maps, on the MNI-space series (:func:`tissue_masks`).
``cosineNN``
    Discrete cosine basis of a 128 s high-pass filter (fMRIPrep's; nilearn's
    ``load_confounds(strategy=("high_pass", ...))`` reads them), when the TR is given.
``motion_outlierNN``
    One column per flagged volume, 1 on that volume and 0 elsewhere (spike regressors);
    a volume is flagged when ``framewise_displacement > fd_threshold`` (default 0.5 mm)
    or ``std_dvars > dvars_threshold`` (default 1.5), fMRIPrep's defaults.

Missing values are written as ``n/a`` (BIDS).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import nibabel as nib
import numpy as np
import pandas as pd

from neurofuse.errors import NeuroFuseError
from neurofuse.io import atomic_path
from neurofuse.transforms import PARAM_NAMES, framewise_displacement

#: Robust-sd constant: IQR of a standard normal.
IQR_TO_SD = 1.349

#: Descriptions of the tissue-signal columns (see :func:`tissue_masks`).
TISSUE_DESCRIPTIONS = {
    "global_signal": "Mean BOLD signal in the brain mask (MNI space)",
    "white_matter": "Mean BOLD signal in white matter (template WM probability >= 0.9, eroded 1 voxel, in the brain mask)",
    "csf": "Mean BOLD signal in CSF (template CSF probability >= 0.9, in the brain mask)",
}


def dvars(
    data: np.ndarray, *, intensity_normalization: float | None = 1000.0, chunk: int = 16384
) -> tuple[np.ndarray, np.ndarray]:
    """DVARS and standardised DVARS of ``(n_voxels, n_volumes)`` data.

    Returns two arrays of length ``n_volumes``; element 0 is NaN (no previous volume).
    See the module docstring for the definitions. ``intensity_normalization=None``
    skips the scaling to a median of 1000. Voxels are processed ``chunk`` at a time in
    float64, so memory stays near the size of ``data`` itself (a 600-volume 2 mm run).
    """
    y_all = np.asarray(data)
    if y_all.ndim != 2:
        raise ValueError(f"expected (n_voxels, n_volumes), got shape {y_all.shape}")
    n_vol = y_all.shape[1]
    out_d = np.full(n_vol, np.nan)
    out_s = np.full(n_vol, np.nan)
    if n_vol < 2:
        return out_d, out_s
    varying = np.ptp(y_all, axis=1) > 0  # constant voxels carry no signal (e.g. outside the FOV)
    n_var = int(varying.sum())
    if n_var == 0:
        raise NeuroFuseError("DVARS: no voxel in the mask varies over time")
    scale = 1.0
    if intensity_normalization:
        median = float(np.median(y_all[varying]))
        if median <= 0:
            raise NeuroFuseError("DVARS: the median intensity in the mask is not positive")
        scale = intensity_normalization / median
    sq_diff = np.zeros(n_vol - 1)
    expected_sum = 0.0
    rows = np.flatnonzero(varying)
    for start in range(0, n_var, chunk):
        y = np.asarray(y_all[rows[start:start + chunk]], dtype=np.float64) * scale
        sq_diff += np.sum(np.diff(y, axis=1) ** 2, axis=0)
        q75 = np.percentile(y, 75, axis=1, method="lower")
        q25 = np.percentile(y, 25, axis=1, method="lower")
        sd = (q75 - q25) / IQR_TO_SD
        centred = y - y.mean(axis=1, keepdims=True)
        r1 = np.sum(centred[:, 1:] * centred[:, :-1], axis=1) / np.sum(centred**2, axis=1)
        expected_sum += float(np.sum(np.sqrt(2.0 * (1.0 - r1)) * sd))
    out_d[1:] = np.sqrt(sq_diff / n_var)
    expected = expected_sum / n_var
    out_s[1:] = out_d[1:] / expected if expected > 0 else np.nan
    return out_d, out_s


def tissue_masks(mask_img: nib.Nifti1Image) -> dict[str, np.ndarray]:
    """Masks on the grid of ``mask_img`` (the run's brain mask in MNI space) for fMRIPrep's
    ``global_signal`` (the brain mask), ``white_matter`` and ``csf``.

    White matter and CSF come from the template's tissue probabilities (nilearn ships the
    MNI152 2009 grey- and white-matter maps; CSF is taken as what the brain mask holds
    beyond both): WM probability >= 0.9 eroded by one voxel (fMRIPrep also erodes its WM
    mask), CSF probability >= 0.9; both within the run's brain mask. fMRIPrep uses the
    subject's own segmentation instead; in MNI space after SyN the template's is a close
    stand-in.
    """
    from nilearn.datasets import load_mni152_gm_template, load_mni152_wm_template
    from nilearn.image import resample_to_img
    from scipy import ndimage

    from neurofuse.fmri.registration import load_template_mask

    brain = np.asarray(mask_img.dataobj) > 0

    def prob(loader):
        img = resample_to_img(loader(resolution=1), mask_img, interpolation="continuous", force_resample=True,
                              copy_header=True)
        return np.clip(np.asarray(img.dataobj, dtype=np.float32), 0, 1)

    gm, wm = prob(load_mni152_gm_template), prob(load_mni152_wm_template)
    tpl_brain = np.asarray(resample_to_img(load_template_mask(1), mask_img, interpolation="nearest",
                                           force_resample=True, copy_header=True).dataobj) > 0
    csf = np.where(tpl_brain, 1.0 - gm - wm, 0.0)
    return {
        "global_signal": brain,
        "white_matter": ndimage.binary_erosion(wm >= 0.9) & brain,
        "csf": (csf >= 0.9) & brain,
    }


def bold_signals(
    bold_file: str | os.PathLike,
    mask_file: str | os.PathLike,
    *,
    tissues: bool = True,
    intensity_normalization: float | None = 1000.0,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """DVARS, standardised DVARS and mean tissue signals (:func:`tissue_masks`) of a 4D
    NIfTI inside a 3D mask on the same grid. Reads one volume at a time, keeping only the
    brain voxels (float32), so a long run in template space fits in memory."""
    from neurofuse.io import iter_nifti_volumes

    img = nib.load(os.fspath(bold_file))
    mask_img = nib.load(os.fspath(mask_file))
    mask = np.asarray(mask_img.dataobj) > 0
    if img.ndim != 4 or mask.shape != img.shape[:3]:
        raise NeuroFuseError(
            f"BOLD {img.shape} and mask {mask.shape} do not match", path=bold_file,
            hint="use the brain mask written with this BOLD series",
        )
    if not mask.any():
        raise NeuroFuseError("the brain mask is empty: DVARS and tissue signals need brain voxels", path=mask_file,
                             hint="check the BOLD reference and its registration (the mask is the reference's brain "
                                  "carried into MNI space)")
    masks = {k: v for k, v in tissue_masks(mask_img).items() if v.any()} if tissues else {}
    n_vol = int(img.shape[3])
    data = np.empty((int(mask.sum()), n_vol), dtype=np.float32)
    signals = {k: np.empty(n_vol) for k in masks}
    for t, vol in enumerate(iter_nifti_volumes(bold_file)):
        data[:, t] = vol[mask]
        for name, m in masks.items():
            signals[name][t] = float(np.mean(vol[m], dtype=np.float64))
    dv, sd = dvars(data, intensity_normalization=intensity_normalization)
    return dv, sd, signals


def bold_dvars(
    bold_file: str | os.PathLike,
    mask_file: str | os.PathLike,
    *,
    intensity_normalization: float | None = 1000.0,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`dvars` of a 4D NIfTI inside a 3D mask on the same grid."""
    dv, sd, _ = bold_signals(bold_file, mask_file, tissues=False, intensity_normalization=intensity_normalization)
    return dv, sd


def cosine_basis(n_volumes: int, tr: float, period_cut: float = 128.0) -> np.ndarray:
    """fMRIPrep's ``cosineNN`` columns: the discrete cosine (DCT-II) basis of a high-pass
    filter at ``1/period_cut`` Hz, without the constant (as nipype/nilearn count them:
    ``floor(2 n TR / period_cut) - 1`` columns), each of unit norm."""
    order = min(n_volumes - 1, int(np.floor(2 * n_volumes * tr / period_cut)))
    t = np.arange(n_volumes)
    cols = [np.sqrt(2.0 / n_volumes) * np.cos(np.pi * (t + 0.5) * k / n_volumes) for k in range(1, order)]
    return np.array(cols).T if cols else np.zeros((n_volumes, 0))


def outlier_columns(
    fd: np.ndarray, std_dvars: np.ndarray, *, fd_threshold: float = 0.5, dvars_threshold: float = 1.5
) -> pd.DataFrame:
    """One-hot ``motion_outlierNN`` columns for volumes over either threshold."""
    fd = np.nan_to_num(np.asarray(fd, dtype=float), nan=0.0)
    sd = np.nan_to_num(np.asarray(std_dvars, dtype=float), nan=0.0)
    flagged = np.flatnonzero((fd > fd_threshold) | (sd > dvars_threshold))
    width = max(2, len(str(max(len(flagged) - 1, 0))))
    cols = {}
    for k, idx in enumerate(flagged):
        col = np.zeros(len(fd), dtype=int)
        col[idx] = 1
        cols[f"motion_outlier{k:0{width}d}"] = col
    return pd.DataFrame(cols, index=range(len(fd)))


def confounds_table(
    params: np.ndarray,
    dvars_values: np.ndarray | None = None,
    std_dvars_values: np.ndarray | None = None,
    *,
    fd_threshold: float = 0.5,
    dvars_threshold: float = 1.5,
    fd_radius: float = 50.0,
    expansion: bool = True,
    signals: dict[str, np.ndarray] | None = None,
    cosine: np.ndarray | None = None,
) -> pd.DataFrame:
    """The confounds table (see the module docstring) from motion parameters and DVARS,
    plus mean tissue ``signals`` (``global_signal``, ``csf``, ``white_matter``; expanded
    like the motion parameters) and ``cosine`` high-pass columns when given."""
    params = np.asarray(params, dtype=float)
    if params.ndim != 2 or params.shape[1] != 6:
        raise ValueError(f"motion parameters must have shape (T, 6), got {params.shape}")
    n = len(params)
    table = pd.DataFrame(params + 0.0, columns=list(PARAM_NAMES))  # + 0.0: no "-0" in the TSV
    for name, values in (signals or {}).items():
        if len(values) != n:
            raise ValueError(f"{name} needs one value per volume")
        table[name] = np.asarray(values, dtype=float)
    if expansion:
        for name in [*PARAM_NAMES, *(signals or {})]:
            deriv = np.concatenate([[np.nan], np.diff(table[name].to_numpy())])
            table[f"{name}_derivative1"] = deriv
            table[f"{name}_power2"] = table[name] ** 2
            table[f"{name}_derivative1_power2"] = deriv**2
    fd = framewise_displacement(params, radius=fd_radius).astype(float)
    if n:
        fd[0] = np.nan
    table["framewise_displacement"] = fd
    if dvars_values is not None:
        if len(dvars_values) != n or std_dvars_values is None or len(std_dvars_values) != n:
            raise ValueError("dvars and std_dvars need one value per volume")
        table["dvars"] = np.asarray(dvars_values, dtype=float)
        table["std_dvars"] = np.asarray(std_dvars_values, dtype=float)
        std = table["std_dvars"].to_numpy()
    else:
        std = np.zeros(n)
    if cosine is not None:
        for k in range(cosine.shape[1]):
            table[f"cosine{k:02d}"] = cosine[:, k]
    outliers = outlier_columns(fd, std, fd_threshold=fd_threshold, dvars_threshold=dvars_threshold)
    return pd.concat([table, outliers], axis=1)


def confounds_metadata(
    columns: Sequence[str], *, fd_threshold: float = 0.5, dvars_threshold: float = 1.5, fd_radius: float = 50.0
) -> dict:
    """JSON sidecar: a ``Description`` (and ``Units``) per column."""
    meta: dict[str, dict] = {}
    units = {"trans": "mm", "rot": "rad"}
    for col in columns:
        base = col.split("_derivative1")[0].split("_power2")[0]
        if base in PARAM_NAMES:
            kind, axis = base.split("_")
            what = "translation along" if kind == "trans" else "rotation about"
            desc = f"Head-motion {what} the {axis} axis (neurofuse.transforms convention)"
            unit = units[kind]
            if "_derivative1" in col:
                desc += ", backward difference"
            if col.endswith("_power2"):
                desc += ", squared"
                unit = f"{unit}^2"
            meta[col] = {"Description": desc, "Units": unit}
        elif col == "framewise_displacement":
            meta[col] = {
                "Description": f"Framewise displacement (Power et al. 2012), rotations as arc length on a {fd_radius:g} mm sphere",
                "Units": "mm",
            }
        elif col == "dvars":
            meta[col] = {
                "Description": "DVARS: RMS over brain voxels of the temporal difference, data scaled to a median of 1000",
                "Units": "arbitrary",
            }
        elif col == "std_dvars":
            meta[col] = {
                "Description": "DVARS divided by its expected value under an AR(1) null (Nichols 2013), as fMRIPrep",
                "Units": "ratio",
            }
        elif base in TISSUE_DESCRIPTIONS:
            desc = TISSUE_DESCRIPTIONS[base]
            if "_derivative1" in col:
                desc += ", backward difference"
            if col.endswith("_power2"):
                desc += ", squared"
            meta[col] = {"Description": desc, "Units": "arbitrary"}
        elif col.startswith("cosine"):
            meta[col] = {"Description": "Discrete cosine basis regressor of a 128 s high-pass filter (as fMRIPrep)"}
        elif col.startswith("motion_outlier"):
            meta[col] = {
                "Description": (
                    f"Spike regressor: 1 on a volume with framewise_displacement > {fd_threshold:g} mm "
                    f"or std_dvars > {dvars_threshold:g}, 0 elsewhere"
                ),
            }
    return meta


def write_confounds(
    motion: np.ndarray | str | os.PathLike,
    out_tsv: str | os.PathLike,
    *,
    out_json: str | os.PathLike | None = None,
    bold_file: str | os.PathLike | None = None,
    mask_file: str | os.PathLike | None = None,
    fd_threshold: float = 0.5,
    dvars_threshold: float = 1.5,
    fd_radius: float = 50.0,
    expansion: bool = True,
    tr: float | None = None,
    tissues: bool = True,
) -> pd.DataFrame:
    """Write the confounds TSV (and JSON sidecar) of one run.

    Parameters
    ----------
    motion:
        ``(T, 6)`` motion parameters or the motion TSV written by
        :func:`neurofuse.fmri.motion.estimate_motion`.
    out_tsv, out_json:
        ``…_desc-confounds_timeseries.tsv`` and its ``.json``.
    bold_file, mask_file:
        BOLD series and brain mask for DVARS (normally the preprocessed BOLD and its
        ``desc-brain_mask``); without them the DVARS columns are omitted.
    fd_threshold, dvars_threshold:
        Outlier thresholds (mm; standardised DVARS).
    tr:
        Repetition time (s): adds fMRIPrep's ``cosineNN`` high-pass columns (128 s).
    tissues:
        Add ``global_signal``, ``csf``, ``white_matter`` (and expansions) from the BOLD
        series (:func:`tissue_masks`; the series must be in MNI space).
    """
    from neurofuse.fmri.motion import read_motion_tsv

    params = read_motion_tsv(motion) if isinstance(motion, (str, os.PathLike)) else np.asarray(motion, float)
    dv = sd = None
    signals: dict[str, np.ndarray] = {}
    if bold_file is not None:
        if mask_file is None:
            raise ValueError("DVARS needs mask_file together with bold_file")
        if nib.load(os.fspath(bold_file)).shape[3:4] != (len(params),):
            raise NeuroFuseError(f"{len(params)} motion rows but the BOLD series has another number of volumes",
                                 path=bold_file, hint="use the motion TSV estimated on this run")
        dv, sd, signals = bold_signals(bold_file, mask_file, tissues=tissues)
    cosine = cosine_basis(len(params), float(tr)) if tr else None
    table = confounds_table(
        params, dv, sd, fd_threshold=fd_threshold, dvars_threshold=dvars_threshold,
        fd_radius=fd_radius, expansion=expansion, signals=signals, cosine=cosine,
    )
    with atomic_path(out_tsv) as tmp:
        table.to_csv(tmp, sep="\t", index=False, na_rep="n/a", float_format="%.8g")
    if out_json is not None:
        meta = confounds_metadata(
            list(table.columns), fd_threshold=fd_threshold, dvars_threshold=dvars_threshold, fd_radius=fd_radius
        )
        with atomic_path(out_json) as tmp:
            tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return table
