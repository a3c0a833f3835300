"""EEG band power per fMRI volume, raw and convolved with the canonical HRF.

Window ``k`` covers ``[onset_k, onset_k + TR)`` where ``onset_k`` is the ``k``-th volume
marker, so each row lines up with BOLD volume ``k`` even when the EEG recorder started
before the scanner. Power is the squared Hilbert envelope of the band-passed signal,
averaged over the window (µV²). The HRF-convolved columns use nilearn's
``compute_regressor`` (SPM canonical HRF) on the power with its run mean removed, sampled
at ``onset_k + slice_time_ref * TR`` (the time the slice-timing-corrected BOLD refers to).

For EEG recorded outside the scanner (no volume markers) the windows are consecutive
``window_s``-second blocks from the first sample.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import mne
import numpy as np
from scipy.signal import hilbert

from neurofuse.eeg.io import marker_onsets, read_raw, write_json
from neurofuse.config import bands_by_frequency as by_frequency
from neurofuse.errors import NeuroFuseError
from neurofuse.io import atomic_write_text

__all__ = [
    "DEFAULT_BANDS",
    "volume_windows",
    "window_band_power",
    "hrf_convolve",
    "band_power_table",
    "write_band_power",
    "band_power_file",
]

#: Default EEG bands (Hz, [low, high)).
DEFAULT_BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}


def volume_windows(
    raw: mne.io.BaseRaw,
    *,
    volume_marker: str | None = "Response/R128",
    tr: float | None = None,
    n_volumes: int | None = None,
    first_marker: int = 0,
    window_s: float = 2.0,
) -> tuple[np.ndarray, float, dict[str, Any]]:
    """Window onsets (s from the first EEG sample) and the window length.

    With volume markers: onsets are the markers from index ``first_marker`` on (skip
    markers of dummy scans that are not in the BOLD file); ``tr`` defaults to the median
    marker interval; with ``n_volumes`` the table has exactly that many rows: surplus
    markers are dropped, missing trailing ones extrapolated by ``tr`` (their windows are
    empty where the EEG has ended). Without markers (or ``volume_marker=None``):
    consecutive ``window_s`` windows.

    Returns ``(onsets, length, info)`` where ``info`` says what was done.
    """
    info: dict[str, Any] = {}
    onsets = marker_onsets(raw, volume_marker, required=False) if volume_marker else np.zeros(0)
    if len(onsets) == 0:
        length = float(tr or window_s)
        count = n_volumes if n_volumes is not None else int(math.floor(raw.times[-1] / length + 1e-9))
        info.update(mode="fixed windows (no volume markers)", window_s=length)
        return np.arange(count) * length, length, info
    onsets = onsets[first_marker:]
    if len(onsets) == 0:
        raise NeuroFuseError(f"first_marker={first_marker} skips all {first_marker} volume markers")
    if tr is None:
        if len(onsets) < 2:
            raise NeuroFuseError("one volume marker only: give tr", hint="set RepetitionTime from the BOLD sidecar")
        tr = float(np.median(np.diff(onsets)))
    info.update(mode="volume markers", volume_marker=volume_marker, n_markers=int(len(onsets)), tr=tr)
    if n_volumes is not None:
        if len(onsets) > n_volumes:
            info["markers_dropped"] = int(len(onsets) - n_volumes)
            onsets = onsets[:n_volumes]
        elif len(onsets) < n_volumes:
            extra = onsets[-1] + tr * np.arange(1, n_volumes - len(onsets) + 1)
            info["volumes_extrapolated"] = int(len(extra))
            onsets = np.concatenate([onsets, extra])
    return onsets, float(tr), info


def window_band_power(
    data: np.ndarray,
    sfreq: float,
    onsets: np.ndarray,
    length: float,
    bands: Mapping[str, tuple[float, float]],
) -> np.ndarray:
    """Mean band power in each window: array (n_windows, n_bands, n_channels), data units².

    Windows not fully inside the data are NaN.
    """
    n = data.shape[1]
    lo = np.ceil(np.asarray(onsets) * sfreq - 1e-9).astype(np.int64)
    hi = np.ceil((np.asarray(onsets) + length) * sfreq - 1e-9).astype(np.int64)
    inside = (lo >= 0) & (hi <= n) & (hi > lo)
    lo_c, hi_c = np.clip(lo, 0, n), np.clip(hi, 0, n)
    out = np.full((len(onsets), len(bands), data.shape[0]), np.nan)
    for b, (f1, f2) in enumerate(bands.values()):
        if f2 >= 0.5 * sfreq:
            raise NeuroFuseError(f"band {f1}-{f2} Hz reaches the Nyquist frequency of {sfreq} Hz data")
        filt = mne.filter.filter_data(data, sfreq, f1, f2, verbose="error")
        power = np.abs(hilbert(filt, axis=1)) ** 2
        csum = np.concatenate([np.zeros((data.shape[0], 1)), np.cumsum(power, axis=1)], axis=1)
        mean = (csum[:, hi_c] - csum[:, lo_c]) / np.maximum(hi_c - lo_c, 1)
        out[inside, b, :] = mean.T[inside]
    return out


def hrf_convolve(
    values: np.ndarray,
    onsets: np.ndarray,
    length: float,
    frame_times: np.ndarray,
    *,
    hrf_model: str = "spm",
    oversampling: int = 50,
) -> np.ndarray:
    """Convolve window values (n_windows, n_columns) with the HRF (nilearn).

    Each window is a block (onset, ``length``, value - column mean); NaN windows count as
    the mean. Returns (len(frame_times), n_columns).
    """
    from nilearn.glm.first_level import compute_regressor

    values = np.asarray(values, dtype=float)
    out = np.zeros((len(frame_times), values.shape[1]))
    for j in range(values.shape[1]):
        col = values[:, j]
        ok = np.isfinite(col)
        amp = np.where(ok, col - (col[ok].mean() if ok.any() else 0.0), 0.0)
        cond = np.vstack([onsets, np.full(len(onsets), length), amp])
        reg, _ = compute_regressor(cond, hrf_model, frame_times, oversampling=oversampling)
        out[:, j] = reg[:, 0]
    return out


def band_power_table(
    raw: mne.io.BaseRaw,
    *,
    bands: Mapping[str, tuple[float, float]] | None = None,
    volume_marker: str | None = "Response/R128",
    tr: float | None = None,
    n_volumes: int | None = None,
    first_marker: int = 0,
    window_s: float = 2.0,
    slice_time_ref: float = 0.5,
    hrf_model: str = "spm",
    picks: str | list[str] = "eeg",
) -> tuple[list[str], np.ndarray, dict[str, dict[str, str]], dict[str, Any]]:
    """Band power per volume window and channel, raw and HRF-convolved.

    Returns ``(columns, values, sidecar, info)``: column names, an array (n_rows,
    n_columns) in µV², the BIDS-style JSON sidecar describing every column, and what
    :func:`volume_windows` did.
    """
    bands = by_frequency(bands or DEFAULT_BANDS)
    for name, (f1, f2) in bands.items():
        if not (0 < f1 < f2):
            raise NeuroFuseError(f"band '{name}' must have 0 < low < high, got {f1}-{f2} Hz")
    sfreq = raw.info["sfreq"]
    names = [raw.ch_names[i] for i in mne.pick_types(raw.info, eeg=True, exclude="bads")] if picks == "eeg" else list(picks)
    if not names:
        raise NeuroFuseError("no EEG channels to compute band power on")
    onsets, length, info = volume_windows(
        raw, volume_marker=volume_marker, tr=tr, n_volumes=n_volumes, first_marker=first_marker, window_s=window_s
    )
    power = window_band_power(raw.get_data(picks=names), sfreq, onsets, length, bands) * 1e12  # V² -> µV²
    t0 = onsets[0] if len(onsets) else 0.0
    rel = onsets - t0
    frame_times = rel + slice_time_ref * length
    columns: list[str] = []
    blocks: list[np.ndarray] = []
    sidecar: dict[str, dict[str, str]] = {}
    where = (
        f"the window [onset, onset + {length:g} s) of each fMRI volume (volume markers '{volume_marker}')"
        if info["mode"] == "volume markers"
        else f"consecutive {length:g}-s windows from the start of the recording"
    )
    for b, (band, (f1, f2)) in enumerate(bands.items()):
        raw_cols = np.concatenate([power[:, b, :], power[:, b, :].mean(axis=1, keepdims=True)], axis=1)
        hrf_cols = hrf_convolve(raw_cols, rel, length, frame_times, hrf_model=hrf_model)
        labels = names + ["mean"]
        for label in labels:
            col = f"{band}_{label}"
            what = "averaged over all EEG channels" if label == "mean" else f"at channel {label}"
            columns.append(col)
            sidecar[col] = {
                "LongName": f"{band} power ({f1:g}-{f2:g} Hz) {what}",
                "Description": (
                    f"Mean squared Hilbert envelope of the EEG band-passed to {f1:g}-{f2:g} Hz, {what}, "
                    f"over {where}. One row per fMRI volume; n/a where the EEG does not cover the window."
                ),
                "Units": "uV^2",
            }
        for label in labels:
            col = f"{band}_{label}_hrf"
            what = "averaged over all EEG channels" if label == "mean" else f"at channel {label}"
            columns.append(col)
            sidecar[col] = {
                "LongName": f"{band} power {what}, convolved with the {hrf_model.upper()} canonical HRF",
                "Description": (
                    f"Column {band}_{label} minus its run mean, as blocks of {length:g} s starting at each window onset, "
                    f"convolved with the {hrf_model} hemodynamic response function (nilearn compute_regressor) and "
                    f"sampled at onset + {slice_time_ref:g} x {length:g} s (windows without EEG count as the mean). "
                    "A regressor for the BOLD volume in the same row."
                ),
                "Units": "uV^2",
            }
        blocks.extend([raw_cols, hrf_cols])
    values = np.concatenate(blocks, axis=1)
    info.update(n_rows=int(len(onsets)), window_s=length, first_onset_s=float(t0), bands=bands, channels=names)
    return columns, values, sidecar, info


def write_band_power(
    columns: list[str], values: np.ndarray, sidecar: Mapping[str, Any], tsv_path: str | PathLike, json_path: str | PathLike | None = None
) -> tuple[Path, Path]:
    """Write the table as a BIDS TSV (``n/a`` for missing) and its JSON sidecar."""
    tsv_path = Path(tsv_path)
    json_path = Path(json_path) if json_path else tsv_path.with_suffix(".json")
    tsv_path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(columns)]
    for row in values:
        lines.append("\t".join("n/a" if not np.isfinite(v) else f"{v:.6g}" for v in row))
    atomic_write_text(tsv_path, "\n".join(lines) + "\n")
    write_json(dict(sidecar), json_path)
    return tsv_path, json_path


def band_power_file(
    in_path: str | PathLike,
    out_tsv: str | PathLike,
    out_json: str | PathLike | None = None,
    *,
    log_json: str | PathLike | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Workflow step ``eeg_compute_band_power``: clean EEG FIF -> ``desc-eegbands_timeseries.tsv`` + ``.json``.

    ``params`` are those of :func:`band_power_table`. Returns the log.
    """
    raw = read_raw(in_path)
    columns, values, sidecar, info = band_power_table(raw, **params)
    tsv, js = write_band_power(columns, values, sidecar, out_tsv, out_json)
    log = {"step": "eeg_band_power", "input": str(in_path), "tsv": str(tsv), "json": str(js), **info,
           "n_columns": len(columns)}
    if log_json:
        write_json(log, log_json)
    return log
