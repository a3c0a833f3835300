"""Small synthetic in-scanner EEG for unit tests and benchmarks of the EEG steps.

This is a compact stand-in, not the project simulator (:mod:`neurofuse.simulate`): it
builds just enough structure, with the truth kept, to score each EEG step quickly:

* clean EEG: a few spatially mixed sources with a 1/f background and an alpha
  (8-13 Hz) rhythm whose amplitude follows a slow envelope (kept as truth);
* gradient artifact: a band-limited (< ``grad_fmax``) slice waveform repeated for each
  slice, volume triggers with sub-sample jitter, a slow amplitude drift and a gain per
  channel; the markers ``Response/R128`` sit on the sample at or after the true onset;
* ECG with R-peaks (truth), a BCG artifact on every EEG channel locked to them;
* blinks on VEOG and (weighted by position) frontal channels; 50 Hz line noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mne
import numpy as np
from scipy.signal import butter, sosfiltfilt

from neurofuse.eeg.io import standard_montage

__all__ = ["CHANNELS_32", "SyntheticRun", "make_run"]

#: A 32-channel BrainAmp-MR-like cap (10-20 names known to the standard_1020 montage).
CHANNELS_32: tuple[str, ...] = (
    "Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8",
    "P7", "P8", "Fz", "Cz", "Pz", "Oz", "FC1", "FC2", "CP1", "CP2", "FC5", "FC6", "CP5",
    "CP6", "TP9", "TP10", "POz", "AFz",
)


@dataclass
class SyntheticRun:
    """A synthetic recording and its truth."""

    raw: mne.io.RawArray
    clean: np.ndarray  # (n_eeg, n_times) V, the brain signal alone
    gradient: np.ndarray  # (n_ch, n_times) V
    bcg: np.ndarray  # (n_eeg, n_times) V
    blinks: np.ndarray  # (n_eeg, n_times) V
    rpeaks: np.ndarray  # s
    volume_onsets: np.ndarray  # true (jittered) onsets, s
    alpha_envelope: np.ndarray  # (n_times,) amplitude of the alpha source (a.u.)
    sfreq: float
    tr: float
    n_slices: int
    eeg_names: list[str] = field(default_factory=list)


def _pink(rng: np.random.Generator, n: int, sfreq: float, fmin: float = 0.5) -> np.ndarray:
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n, 1 / sfreq)
    spec *= 1.0 / np.sqrt(np.maximum(f, fmin))
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    return x / x.std()


def _positions(names: list[str]) -> np.ndarray:
    mont = standard_montage("standard_1020")
    pos = mont.get_positions()["ch_pos"]
    return np.array([pos[n] for n in names])


def make_run(
    *,
    duration: float = 30.0,
    sfreq: float = 5000.0,
    n_eeg: int = 8,
    tr: float = 2.0,
    n_slices: int = 20,
    seed: int = 0,
    gradient_uv: float = 2000.0,
    grad_fmax: float = 1000.0,
    jitter: bool = True,
    drift: float = 0.05,
    bcg_uv: float = 40.0,
    blink_uv: float = 120.0,
    line_uv: float = 3.0,
    lead_in: float = 2.0,
    in_scanner: bool = True,
) -> SyntheticRun:
    """Build a synthetic run (all amplitudes in µV at their largest channel).

    ``lead_in`` seconds of recording precede the first volume (the recorder starts
    before the scanner); the scan then runs to the end of the recording less one TR.
    """
    rng = np.random.default_rng(seed)
    n = int(round(duration * sfreq))
    t = np.arange(n) / sfreq
    names = list(CHANNELS_32[:n_eeg])
    pos = _positions(names)

    # --- clean EEG: 1/f sources + an occipital alpha source with a slow envelope
    n_src = 5
    src = np.array([_pink(rng, n, sfreq) for _ in range(n_src)])
    sos = butter(4, [8, 12], btype="band", fs=sfreq, output="sos")
    alpha = sosfiltfilt(sos, rng.standard_normal(n))
    alpha /= alpha.std()
    env = 1.0 + 0.8 * np.sin(2 * np.pi * t / 17.0 + rng.uniform(0, 2 * np.pi))
    env += 0.5 * sosfiltfilt(butter(2, 0.15, fs=sfreq, output="sos"), rng.standard_normal(n)) * 30
    env = np.clip(env, 0.1, None)
    src[0] = 1.5 * alpha * env
    mix = rng.standard_normal((n_eeg, n_src)) * 0.5
    occ = np.exp(-np.sum((pos - np.array([0.0, -0.1, 0.02])) ** 2, axis=1) / 0.004)
    mix[:, 0] = 0.3 + 1.2 * occ
    clean = (mix @ src) * 10e-6
    clean = clean + 1e-6 * rng.standard_normal((n_eeg, n))
    clean = sosfiltfilt(butter(2, [0.5, 70], btype="band", fs=sfreq, output="sos"), clean, axis=1)

    # --- ECG and R-peaks
    rr = 0.9 + 0.05 * np.cumsum(rng.standard_normal(int(duration) * 2)) * 0.2
    rr = np.clip(rr + 0.03 * rng.standard_normal(len(rr)), 0.65, 1.3)
    rpeaks = 0.4 + np.cumsum(np.concatenate([[0], rr]))
    rpeaks = rpeaks[rpeaks < duration - 0.5]
    ecg = np.zeros(n)
    waves = ((-0.2, 0.025, 0.15), (-0.03, 0.008, -0.15), (0.0, 0.010, 1.0), (0.03, 0.008, -0.3), (0.25, 0.05, 0.3))
    for rp in rpeaks:
        for off, width, amp in waves:
            c = rp + off
            lo, hi = int((c - 5 * width) * sfreq), int((c + 5 * width) * sfreq)
            seg = slice(max(lo, 0), min(hi, n))
            ecg[seg] += amp * np.exp(-0.5 * ((t[seg] - c) / width) ** 2)
    ecg *= 1e-3

    # --- BCG: per-channel waveform 0.15-0.6 s after each R-peak, amplitude varies per beat
    bcg = np.zeros((n_eeg, n))
    if bcg_uv:
        lags = (0.18, 0.28, 0.40)
        shapes = rng.standard_normal((n_eeg, len(lags)))
        shapes /= np.abs(shapes).max()
        for rp in rpeaks:
            g = 1.0 + 0.1 * rng.standard_normal()
            for j, lag in enumerate(lags):
                c = rp + lag
                lo, hi = int((c - 0.25) * sfreq), int((c + 0.25) * sfreq)
                seg = slice(max(lo, 0), min(hi, n))
                w = np.exp(-0.5 * ((t[seg] - c) / 0.04) ** 2)
                bcg[:, seg] += g * shapes[:, j : j + 1] * w[None]
        bcg *= bcg_uv * 1e-6

    # --- blinks
    blinks = np.zeros((n_eeg, n))
    veog = np.zeros(n)
    if blink_uv:
        times = np.cumsum(rng.exponential(4.0, int(duration)))
        times = times[(times > 1) & (times < duration - 1)]
        front = np.clip((pos[:, 1] + 0.05) / 0.15, 0, 1) ** 2
        for bt in times:
            seg = slice(int((bt - 0.4) * sfreq), int((bt + 0.4) * sfreq))
            w = np.exp(-0.5 * ((t[seg] - bt) / 0.07) ** 2)
            veog[seg] += w
            blinks[:, seg] += front[:, None] * w[None]
        blinks *= blink_uv * 1e-6
        veog *= 1.3 * blink_uv * 1e-6
    veog += 3e-6 * _pink(rng, n, sfreq)

    # --- gradient artifact
    n_all = n_eeg + 2
    gradient = np.zeros((n_all, n))
    vol_true = np.zeros(0)
    markers = np.zeros(0)
    if in_scanner:
        first = lead_in
        n_vol = int((duration - lead_in - 0.5) // tr)
        vol_nominal = first + tr * np.arange(n_vol)
        u = rng.uniform(0, 1, n_vol) if jitter else np.zeros(n_vol)
        # the marker is the first sample at or after the trigger
        markers = np.ceil(vol_nominal * sfreq - 1e-9) + (u > 0) * 0  # samples
        vol_true = (markers - u) / sfreq
        spacing = tr / n_slices
        f0 = 1.0 / spacing
        h = np.arange(1, int(grad_fmax / f0) + 1)
        coef = (rng.standard_normal(len(h)) + 1j * rng.standard_normal(len(h))) / np.sqrt(h) ** 0.5
        onsets = (vol_true[:, None] + spacing * np.arange(n_slices)[None, :]).ravel()
        idx = np.searchsorted(onsets, t, side="right") - 1
        inside = (idx >= 0) & (t < onsets[-1] + spacing)
        tau = t[inside] - onsets[idx[inside]]
        wave = np.zeros(inside.sum())
        for hk, ck in zip(h, coef):
            wave += (ck * np.exp(2j * np.pi * hk * f0 * tau)).real
        wave /= np.abs(wave).max()
        amp = 1.0 + drift * np.sin(2 * np.pi * t[inside] / 23.0)
        gains = rng.uniform(0.3, 1.0, n_all) * rng.choice([-1, 1], n_all)
        gradient[:, inside] = gains[:, None] * (amp * wave)[None] * gradient_uv * 1e-6

    line = line_uv * 1e-6 * np.sin(2 * np.pi * 50 * t + rng.uniform(0, 6.28, (n_all, 1)))
    eeg = clean + bcg + blinks
    data = np.vstack([eeg, ecg[None], veog[None]]) + gradient + line
    info = mne.create_info(names + ["ECG", "VEOG"], sfreq, ["eeg"] * n_eeg + ["ecg", "eog"])
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_montage(standard_montage("standard_1020"), on_missing="ignore", verbose="error")
    if len(markers):
        raw.set_annotations(mne.Annotations(markers / sfreq, 0.0, "Response/R128"))
    return SyntheticRun(
        raw=raw, clean=clean, gradient=gradient, bcg=bcg, blinks=blinks, rpeaks=rpeaks,
        volume_onsets=vol_true, alpha_envelope=env, sfreq=sfreq, tr=tr, n_slices=n_slices,
        eeg_names=names,
    )
