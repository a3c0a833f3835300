"""Band-limited resampling with a steep, high-attenuation anti-alias filter.

In-scanner EEG carries gradient artifacts 40-60 dB above the brain signal. Decimating it
with a short default filter folds artifact energy back into the EEG band, so every
rate change here uses a Kaiser FIR designed for a given pass-band edge and 100 dB of
stop-band attenuation (linear phase, delay compensated by :func:`scipy.signal.resample_poly`).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import firwin, kaiserord, resample_poly

__all__ = ["resample", "rate_ratio"]


def rate_ratio(sfreq_in: float, sfreq_out: float, max_denominator: int = 1000) -> tuple[int, int]:
    """``(up, down)`` integers with ``sfreq_in * up / down == sfreq_out``.

    Raises ``ValueError`` when the ratio is not a simple fraction (e.g. 5000 -> 256 Hz is
    ``32/625``, fine; an irrational-looking ratio is refused rather than approximated).
    """
    ratio = Fraction(sfreq_out / sfreq_in).limit_denominator(max_denominator)
    if abs(float(ratio) * sfreq_in - sfreq_out) > 1e-6 * sfreq_out:
        raise ValueError(f"cannot resample {sfreq_in} Hz to {sfreq_out} Hz with a rational factor")
    return ratio.numerator, ratio.denominator


def resample(
    data: np.ndarray,
    sfreq_in: float,
    sfreq_out: float,
    *,
    passband: float | None = None,
    attenuation_db: float = 100.0,
) -> np.ndarray:
    """Resample ``data`` (..., n_times) from ``sfreq_in`` to ``sfreq_out`` along the last axis.

    Parameters
    ----------
    passband:
        Highest frequency (Hz) kept flat. The stop band starts at the output Nyquist
        frequency (for decimation) so nothing above it can alias. Default 80 % of the
        lower Nyquist frequency.
    attenuation_db:
        Stop-band attenuation of the Kaiser FIR.
    """
    up, down = rate_ratio(sfreq_in, sfreq_out)
    if up == down == 1:
        return np.array(data, dtype=float, copy=True)
    nyq = 0.5 * min(sfreq_in, sfreq_out)
    if passband is None:
        passband = 0.8 * nyq
    if not 0 < passband < nyq:
        raise ValueError(f"passband {passband} Hz must lie between 0 and {nyq} Hz")
    fs_up = sfreq_in * up
    width = nyq - passband
    numtaps, beta = kaiserord(attenuation_db, width / (0.5 * fs_up))
    numtaps |= 1  # odd length: integer delay, compensated by resample_poly
    taps = firwin(numtaps, passband + 0.5 * width, window=("kaiser", beta), fs=fs_up)
    return resample_poly(np.asarray(data, dtype=float), up, down, axis=-1, window=taps)
