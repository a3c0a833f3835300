"""Inputs of the fusion stage: band-power tables, confounds and BOLD, checked and aligned.

Every reader here checks what the fusion steps assume (one table row per BOLD volume,
numeric columns, the bands asked for present) and raises a one-line
:class:`~neurofuse.errors.NeuroFuseError` naming the file otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

import nibabel as nib
import numpy as np
import pandas as pd

from neurofuse.errors import NeuroFuseError

__all__ = [
    "read_table",
    "band_channels",
    "band_power_matrix",
    "band_regressors",
    "confound_matrix",
    "check_rows",
    "load_bold",
]


def read_table(path: str | PathLike) -> pd.DataFrame:
    """A BIDS TSV (``n/a`` = missing) with every column numeric."""
    try:
        table = pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise NeuroFuseError(f"cannot read the table ({exc})", path, hint="re-run the step that wrote it") from exc
    if table.empty:
        raise NeuroFuseError("the table has no rows", path, hint="re-run the step that wrote it")
    bad = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if bad:
        raise NeuroFuseError(f"non-numeric values in column {bad[0]!r}", path,
                             hint="every cell must be a number or n/a")
    return table.astype(float)


def band_channels(table: pd.DataFrame, band: str, path: str | PathLike = "") -> list[str]:
    """The per-channel raw power columns of ``band`` (``<band>_<channel>``, no ``mean``/``hrf``)."""
    cols = [c for c in table.columns
            if c.startswith(f"{band}_") and not c.endswith("_hrf") and c != f"{band}_mean"]
    if not cols:
        bands = sorted({c.split("_", 1)[0] for c in table.columns})
        raise NeuroFuseError(f"no power columns for band {band!r} (bands in the table: {', '.join(bands)})", path,
                             hint="use bands that eeg.bands computes, or re-run eeg_compute_band_power")
    return cols


def band_power_matrix(table: pd.DataFrame, bands: Sequence[str], path: str | PathLike = "") -> tuple[np.ndarray, list[str]]:
    """Log band power per (volume, band x channel), z-scored within the run.

    Missing windows (NaN) become 0 (the run mean) after z-scoring; a column that is
    missing entirely, or constant, is an error. Returns ``(features, column names)``.
    """
    cols = [c for band in bands for c in band_channels(table, band, path)]
    values = table[cols].to_numpy(float)
    if np.any(values[np.isfinite(values)] < 0):
        raise NeuroFuseError("negative band power", path, hint="band power is a mean squared envelope; re-run eeg_compute_band_power")
    finite = np.isfinite(values)
    if not finite.any(axis=0).all():
        col = cols[int(np.argmin(finite.any(axis=0)))]
        raise NeuroFuseError(f"column {col!r} has no finite value", path, hint="check the EEG covers the BOLD run")
    logp = np.log(np.where(finite, values, np.nan) + 1e-6)
    mean = np.nanmean(logp, axis=0)
    std = np.nanstd(logp, axis=0)
    if np.any(std == 0):
        col = cols[int(np.argmin(std))]
        raise NeuroFuseError(f"column {col!r} is constant", path, hint="a flat EEG channel: mark it bad in channels.tsv")
    z = (logp - mean) / std
    return np.where(finite, z, 0.0), cols


def band_regressors(table: pd.DataFrame, bands: Sequence[str], method: str = "pca",
                    path: str | PathLike = "") -> tuple[pd.DataFrame, dict[str, dict]]:
    """One HRF-convolved regressor per band for the EEG-informed GLM.

    ``mean``: the table's ``<band>_mean_hrf`` column. ``pca``: the channels' HRF-convolved
    columns weighted by the first principal component of the band's raw power across
    channels (z-scored per channel), with the sign that makes the weights sum positive —
    the band's dominant co-fluctuation, so a rhythm with a focal topography (beta over
    sensorimotor cortex) is not diluted by the channel average. Both are linear in the
    band power, so the convolution commutes with the weighting. Each regressor is scaled
    to unit standard deviation. Returns ``(regressors, description per band)``.
    """
    out: dict[str, np.ndarray] = {}
    info: dict[str, dict] = {}
    for band in bands:
        if method == "mean":
            col = f"{band}_mean_hrf"
            if col not in table:
                raise NeuroFuseError(f"column {col!r} is missing", path, hint="re-run eeg_compute_band_power")
            reg = table[col].to_numpy(float)
            info[band] = {"method": "mean", "column": col}
        elif method == "pca":
            chans = band_channels(table, band, path)
            hrf_cols = [f"{c}_hrf" for c in chans]
            missing = [c for c in hrf_cols if c not in table]
            if missing:
                raise NeuroFuseError(f"column {missing[0]!r} is missing", path, hint="re-run eeg_compute_band_power")
            power = table[chans].to_numpy(float)
            ok = np.isfinite(power).all(axis=1)
            if ok.sum() < 3:
                raise NeuroFuseError(f"fewer than 3 complete rows of {band} power", path,
                                     hint="check the EEG covers the BOLD run")
            sd = power[ok].std(axis=0)
            sd[sd == 0] = 1.0
            zp = (power[ok] - power[ok].mean(axis=0)) / sd
            _, s, vt = np.linalg.svd(zp, full_matrices=False)
            w = vt[0] * (1.0 if vt[0].sum() >= 0 else -1.0)
            reg = np.nan_to_num(table[hrf_cols].to_numpy(float)) @ (w / sd)
            top = np.argsort(-np.abs(w))[:5]
            info[band] = {"method": "pca", "explained_variance": float(s[0] ** 2 / np.sum(s**2)),
                          "top_channels": [chans[i].split("_", 1)[1] for i in top],
                          "weights": {chans[i].split("_", 1)[1]: float(w[i]) for i in range(len(chans))}}
        else:
            raise NeuroFuseError(f"unknown band regressor method {method!r}", hint="use 'pca' or 'mean'")
        reg = np.nan_to_num(reg)
        sd = reg.std()
        if sd == 0:
            raise NeuroFuseError(f"the {band} regressor is constant", path, hint="check the EEG band power")
        out[band] = (reg - reg.mean()) / sd
    return pd.DataFrame(out), info


def confound_matrix(table: pd.DataFrame, columns: Sequence[str], path: str | PathLike = "") -> pd.DataFrame:
    """The named confound columns, missing values (first-row derivatives) set to 0."""
    missing = [c for c in columns if c not in table]
    if missing:
        raise NeuroFuseError(f"confound column {missing[0]!r} is missing", path,
                             hint=f"fusion confounds must be columns of the confounds TSV ({', '.join(table.columns[:8])}, ...)")
    return table[list(columns)].fillna(0.0)


def check_rows(n_bold: int, n_rows: int, path: str | PathLike, what: str = "band-power table") -> None:
    """One table row per BOLD volume, or a clear error."""
    if n_bold != n_rows:
        raise NeuroFuseError(
            f"the {what} has {n_rows} rows but the BOLD run has {n_bold} volumes", path,
            hint="the EEG and BOLD runs must be paired correctly; re-run the EEG steps with the BOLD timing",
        )


def load_bold(bold_path: str | PathLike, mask: np.ndarray) -> np.ndarray:
    """BOLD time series inside ``mask``: array (T, V) float32."""
    try:
        img = nib.load(str(bold_path))
        data = np.asanyarray(img.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises many types on broken files
        raise NeuroFuseError(f"cannot read the BOLD image ({exc})", bold_path,
                             hint="re-run fmri_resample_bold_to_template") from exc
    if data.ndim != 4 or data.shape[:3] != mask.shape:
        raise NeuroFuseError(f"BOLD shape {data.shape} does not match the mask {mask.shape}", bold_path,
                             hint="every run must be resampled to the same template grid (fmri.output_resolution)")
    series = data[mask].T
    if not np.isfinite(series).all():
        raise NeuroFuseError("NaN or infinite values inside the brain mask", bold_path,
                             hint="re-run fmri_resample_bold_to_template")
    return series
