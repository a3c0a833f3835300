"""Accuracy measures for EEG artifact correction (used by QC, tests and benchmarks)."""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfiltfilt, welch

from neurofuse.eeg._resample import resample

__all__ = ["band_correlation", "match_events", "line_power_db", "align_rate"]


def align_rate(data: np.ndarray, sfreq: float, target_sfreq: float) -> np.ndarray:
    """Bring ``data`` (..., n_times) to ``target_sfreq`` with the anti-alias resampler."""
    if sfreq == target_sfreq:
        return np.asarray(data, dtype=float)
    return resample(data, sfreq, target_sfreq)


def band_correlation(
    estimate: np.ndarray,
    truth: np.ndarray,
    sfreq: float,
    *,
    band: tuple[float, float] = (1.0, 40.0),
    trim: float = 2.0,
) -> np.ndarray:
    """Pearson correlation per channel after band-passing both signals.

    ``estimate`` and ``truth`` are (n_channels, n_times) at the same rate; ``trim``
    seconds are dropped at both ends (filter edges).
    """
    sos = butter(4, band, btype="band", fs=sfreq, output="sos")
    n = min(estimate.shape[-1], truth.shape[-1])
    a = sosfiltfilt(sos, estimate[..., :n], axis=-1)
    b = sosfiltfilt(sos, truth[..., :n], axis=-1)
    k = int(trim * sfreq)
    if k and n > 4 * k:
        a, b = a[..., k:-k], b[..., k:-k]
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    return np.sum(a * b, axis=-1) / np.sqrt(np.sum(a * a, axis=-1) * np.sum(b * b, axis=-1) + 1e-300)


def match_events(detected: np.ndarray, truth: np.ndarray, tolerance: float = 0.02) -> dict[str, float]:
    """Match detected to true event times (s) one-to-one within ``tolerance`` s.

    Returns sensitivity (recall), precision, F1, and the median absolute timing error
    of the matched pairs (s).
    """
    detected = np.sort(np.asarray(detected, dtype=float))
    truth = np.sort(np.asarray(truth, dtype=float))
    used = np.zeros(len(detected), dtype=bool)
    errors = []
    tp = 0
    for t in truth:
        i = np.searchsorted(detected, t)
        best, best_err = -1, tolerance
        for j in (i - 1, i):
            if 0 <= j < len(detected) and not used[j] and abs(detected[j] - t) <= best_err:
                best, best_err = j, abs(detected[j] - t)
        if best >= 0:
            used[best] = True
            tp += 1
            errors.append(best_err)
    sens = tp / len(truth) if len(truth) else 1.0
    prec = tp / len(detected) if len(detected) else 1.0
    f1 = 2 * sens * prec / (sens + prec) if sens + prec else 0.0
    return {
        "sensitivity": sens,
        "precision": prec,
        "f1": f1,
        "n_true": int(len(truth)),
        "n_detected": int(len(detected)),
        "median_abs_error_s": float(np.median(errors)) if errors else float("nan"),
    }


def line_power_db(
    data: np.ndarray, sfreq: float, freqs: np.ndarray | list[float], *, resolution: float = 0.25
) -> np.ndarray:
    """Power (dB, mean over channels) in narrow bins at ``freqs`` (e.g. slice harmonics).

    Welch spectrum with ``resolution`` Hz bins; returns one value per frequency.
    """
    nper = int(round(sfreq / resolution))
    nper = min(nper, data.shape[-1])
    f, p = welch(data, sfreq, nperseg=nper, axis=-1)
    p = np.atleast_2d(p).mean(axis=0)
    out = []
    for fr in np.atleast_1d(freqs):
        k = np.argmin(np.abs(f - fr))
        out.append(10 * np.log10(p[max(k - 1, 0) : k + 2].sum() + 1e-300))
    return np.array(out)
