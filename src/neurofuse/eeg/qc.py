"""Quality-control figures of the EEG steps (PNG, matplotlib Agg backend, no display)."""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mne  # noqa: E402
import numpy as np  # noqa: E402
from scipy.signal import welch  # noqa: E402

from neurofuse.io import save_figure  # noqa: E402

__all__ = ["plot_spectra", "plot_rpeaks", "plot_ica_removed", "plot_note"]


def _psd(raw: mne.io.BaseRaw, picks: str | list[str], fmax: float) -> tuple[np.ndarray, np.ndarray]:
    sfreq = raw.info["sfreq"]
    data = raw.get_data(picks=picks)
    nper = int(min(data.shape[1], 4 * sfreq))
    f, p = welch(data, sfreq, nperseg=nper, axis=-1)
    keep = f <= fmax
    return f[keep], np.median(p[:, keep], axis=0) * 1e12  # µV²/Hz


def plot_spectra(
    raws: Mapping[str, mne.io.BaseRaw],
    path: str | PathLike,
    *,
    marks: float | None = None,
    fmax: float = 125.0,
    title: str = "",
    picks: str | list[str] = "eeg",
) -> Path:
    """Median EEG power spectrum of each recording (log scale), one line per stage.

    ``marks``: a repetition frequency (e.g. the slice rate) whose harmonics below
    ``fmax`` are drawn as dotted lines, so a residual artifact stands out.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for label, raw in raws.items():
        f, p = _psd(raw, picks, fmax)
        ax.semilogy(f, p, lw=1, label=f"{label} ({raw.info['sfreq']:g} Hz)")
    if marks:
        for k in range(1, int(fmax // marks) + 1):
            ax.axvline(k * marks, color="grey", ls=":", lw=0.8, label="artifact repetition rate and harmonics" if k == 1 else None)
    ax.set_xlim(0, fmax)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("median power over channels (µV²/Hz)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def plot_rpeaks(ecg: np.ndarray, sfreq: float, rpeaks: np.ndarray, path: str | PathLike, *, span: float = 10.0) -> Path:
    """ECG with detected R-peaks (first ``span`` s) and the RR-interval series."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5), dpi=100)
    n = int(min(len(ecg), span * sfreq))
    t = np.arange(n) / sfreq
    a1.plot(t, ecg[:n] * 1e6, lw=0.7, color="k")
    shown = rpeaks[rpeaks < n / sfreq]
    idx = np.clip(np.round(shown * sfreq).astype(int), 0, n - 1)
    a1.plot(shown, ecg[idx] * 1e6, "rv", ms=6, label=f"R-peaks ({len(rpeaks)} in total)")
    a1.set_xlabel("time (s)")
    a1.set_ylabel("ECG (µV)")
    a1.legend(fontsize=8, loc="upper right")
    if len(rpeaks) > 1:
        rr = np.diff(rpeaks)
        a2.plot(rpeaks[1:], rr * 1000, ".-", lw=0.7)
        a2.set_ylabel("RR interval (ms)")
        a2.set_xlabel("time (s)")
        a2.set_title(f"heart rate {60 / np.median(rr):.0f} bpm (median)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def plot_ica_removed(ica: mne.preprocessing.ICA | None, record: Mapping[str, Any], path: str | PathLike) -> Path:
    """Topographies of the removed ICA components with their labels (or a note if none)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    exclude = list(record.get("exclude", [])) if record else []
    labels = {c["index"]: f"{c['iclabel']} {c['probability']:.2f}" for c in record.get("components", [])} if record else {}
    reasons = record.get("reasons", {}) if record else {}
    if ica is None or not exclude:
        return plot_note("no ICA components removed" if ica is not None else "ICA not run", path)
    n = len(exclude)
    cols = min(n, 5)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), dpi=100, squeeze=False)
    maps = ica.get_components()
    info = mne.pick_info(ica.info, mne.pick_types(ica.info, eeg=True))
    for ax, k in zip(axes.ravel(), exclude):
        mne.viz.plot_topomap(maps[:, k], info, axes=ax, show=False, contours=0)
        why = ", ".join(r.replace("iclabel:", "") for r in reasons.get(str(k), []))
        label = labels.get(k, "")
        ax.set_title(f"IC{k:02d} {label}\nremoved: {why}", fontsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle("ICA components removed", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def plot_note(text: str, path: str | PathLike) -> Path:
    """A small figure that only states ``text`` (a step that had nothing to show)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 2), dpi=100)
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    save_figure(fig, path)
    plt.close(fig)
    return path
