"""In-scanner EEG: clean brain signal plus gradient, BCG, ocular and line-noise artifacts.

Time axes
---------
EEG sample ``n`` (0-based, as in MNE) lies at EEG time ``n / sfreq`` s; BOLD time (0 =
start of BOLD volume 0) is ``EEG time - lead``. The recorder starts ``lead`` s before
the first volume and stops a few seconds after the last.

Signal model (µV)
-----------------
``raw = upsample(clean) + gradient + bcg + ecg + blink + line`` per channel, where

* ``clean`` (32 EEG channels, plus a small background on ECG/VEOG) is generated at the
  *truth rate* ``truth_sfreq`` (the largest divisor of ``sfreq`` not above 250 Hz) and
  upsampled by an integer factor ``L`` with band-limited (FFT) interpolation, which keeps
  every original sample: ``upsample(clean)[:, L*m] == clean[:, m]``. It is a 1/f
  background from a few spatially smooth sources, plus an alpha rhythm (posterior) and a
  beta rhythm (bilateral central) whose envelopes are ``A * exp(0.4 * driver)``,
  plus 1 µV sensor noise; potentials are referenced to FCz.
* ``gradient``: one waveform per slice period ``TR / n_slices``, a band-limited Fourier
  series (harmonics of the slice frequency up to the amplifier's low-pass) of the
  dB/dt of three gradient axes, mixed per channel, starting at each (jittered) slice
  onset, with a slow amplitude drift.
* ``bcg``: three Gaussian lobes 0.2-0.45 s after each R-peak, channel-specific gains,
  per-beat amplitude and delay jitter. ``ecg``: PQRST waveform on the ECG channel.
* ``blink``: sin² pulses (0.3-0.45 s) every 3-6 s, strong on VEOG, weak frontally.
* ``line``: 50 Hz and 150 Hz sinusoids.

Every parameter is kept in an :class:`ArtifactModel` (saved as ``.npz``) so that
:func:`artifact_components` recomputes each artifact exactly at any samples.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from scipy import ndimage

from neurofuse.simulate.drivers import ENVELOPE_GAIN, Drivers

#: The 32 scalp channels (BrainCap MR 32 layout, plus CPz), reference FCz, ground AFz.
EEG_CHANNELS: tuple[str, ...] = (
    "Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T7", "T8",
    "P7", "P8", "Fz", "Cz", "Pz", "Oz", "FC1", "FC2", "CP1", "CP2", "FC5", "FC6", "CP5",
    "CP6", "TP9", "TP10", "POz", "CPz",
)
ECG_CHANNEL = "ECG"
EOG_CHANNEL = "VEOG"
ALL_CHANNELS: tuple[str, ...] = EEG_CHANNELS + (ECG_CHANNEL, EOG_CHANNEL)
REFERENCE = "FCz"
GROUND = "AFz"
LINE_FREQ = 50.0
#: Low-pass (Hz) of the simulated amplifier: gradient harmonics above it are removed.
AMP_LOWPASS = 1000.0

_CHUNK = 200_000


#: Highest rate (Hz) of the stored clean EEG (its content is band-limited to half of it).
TRUTH_MAX_SFREQ = 250


def truth_sfreq(sfreq: float) -> float:
    """Rate of the stored clean EEG: the largest divisor of ``sfreq`` <= 250 Hz and >= 100 Hz,
    or ``sfreq`` itself when there is none (non-integer rates, rates <= 250 Hz)."""
    if sfreq <= TRUTH_MAX_SFREQ or abs(sfreq - round(sfreq)) > 1e-9:
        return float(sfreq)
    s = int(round(sfreq))
    for d in range(TRUTH_MAX_SFREQ, 99, -1):
        if s % d == 0:
            return float(d)
    return float(sfreq)


def channel_directions() -> dict[str, np.ndarray]:
    """Unit vectors (head frame, x right, y front, z up) of the electrodes, from MNE's
    ``easycap-M1`` montage (positions on a 95 mm sphere); includes FCz and Fpz."""
    import mne

    pos = mne.channels.make_standard_montage("easycap-M1").get_positions()["ch_pos"]
    names = EEG_CHANNELS + (REFERENCE, "Fpz")
    return {n: np.asarray(pos[n], float) / np.linalg.norm(pos[n]) for n in names}


def _angles(dirs: np.ndarray, centre: np.ndarray) -> np.ndarray:
    c = np.asarray(centre, float) / np.linalg.norm(centre)
    return np.arccos(np.clip(dirs @ c, -1.0, 1.0))


def _pink_noise(n: int, fs: float, rng: np.random.Generator, exponent: float = 1.6) -> np.ndarray:
    """Unit-SD noise with power ∝ 1 / (1 + f)^exponent above 0.3 Hz."""
    f = np.fft.rfftfreq(n, 1.0 / fs)
    spec = (rng.standard_normal(f.size) + 1j * rng.standard_normal(f.size)) / np.sqrt((1.0 + f) ** exponent)
    spec[f < 0.3] = 0.0
    x = np.fft.irfft(spec, n)
    return x / x.std()


def _carrier(n: int, fs: float, f0: float, rng: np.random.Generator) -> np.ndarray:
    """cos of a phase whose frequency wanders ±~0.3 Hz around ``f0`` (narrow-band rhythm)."""
    wander = ndimage.gaussian_filter1d(rng.standard_normal(n), 0.5 * fs, mode="reflect")
    wander *= 0.3 / (wander.std() or 1.0)
    phase = 2 * np.pi * np.cumsum(f0 + wander) / fs + rng.uniform(0, 2 * np.pi)
    return np.cos(phase)


@dataclass
class CleanEEG:
    """Clean EEG at the truth rate (µV) and what it was made of."""

    data: np.ndarray  # (32, n) EEG channels
    aux: np.ndarray  # (2, n) ECG / VEOG background
    sfreq: float
    info: dict


#: Approximate centre (MNI mm) of the scalp sphere: the electrode direction of a cortical point
#: is the direction from here (the head frame's origin lies between the ears, below the brain).
HEAD_CENTRE_MNI = (0.0, -20.0, -30.0)
#: Angular SD (rad) of the topography of a rhythm placed over a coupled region.
REGION_TOPOGRAPHY_SD = 0.45


def scalp_direction(centre_mni) -> np.ndarray:
    """Unit vector (head frame: x right, y front, z up) from :data:`HEAD_CENTRE_MNI` to ``centre_mni``."""
    d = np.asarray(centre_mni, float) - np.asarray(HEAD_CENTRE_MNI)
    return d / np.linalg.norm(d)


@dataclass(frozen=True)
class RegionRhythm:
    """A rhythm of ``band`` (edges in Hz) with one generator over each MNI ``centres`` point."""

    band: str
    edges: tuple[float, float]
    centres: tuple


def synthesize_clean(n: int, fs: float, lead: float, drivers: Drivers, rng: np.random.Generator,
                     extra: tuple[RegionRhythm, ...] = ()) -> CleanEEG:
    """Clean EEG of ``n`` samples at ``fs`` Hz (EEG time 0 = BOLD time ``-lead``).

    ``extra`` adds rhythms of other bands (a custom coupling layout); their random draws
    come after all the others, so the alpha/beta/background part is unchanged.
    """
    dirs_map = channel_directions()
    sites = EEG_CHANNELS + (REFERENCE,)
    dirs = np.array([dirs_map[s] for s in sites])
    t_bold = np.arange(n) / fs - lead

    # 1/f background from spatially smooth sources
    n_src = 8
    pot = np.zeros((len(sites), n))
    for _ in range(n_src):
        centre = rng.standard_normal(3)
        centre[2] = abs(centre[2]) + 0.3
        width = rng.uniform(0.5, 0.9)
        topo = rng.choice([-1.0, 1.0]) * np.exp(-_angles(dirs, centre) ** 2 / (2 * width**2))
        pot += np.outer(topo, _pink_noise(n, fs, rng))
    pot -= pot[-1]  # reference FCz
    pot = pot[:-1]
    pot *= 10.0 / np.median(pot.std(axis=1))

    # alpha: one posterior generator; beta: left and right central generators
    alpha_f = rng.uniform(9.5, 11.0)
    beta_f = rng.uniform(18.0, 22.0)
    alpha_amp = rng.uniform(10.0, 14.0)
    beta_amp = rng.uniform(3.0, 5.0)
    alpha_env = alpha_amp * np.exp(ENVELOPE_GAIN * drivers.driver_at("alpha", t_bold))
    beta_env = beta_amp * np.exp(ENVELOPE_GAIN * drivers.driver_at("beta", t_bold))
    rhythm_sites = np.zeros((len(sites), n))
    posterior = dirs_map["Oz"] + dirs_map["POz"]
    topo_alpha = np.exp(-_angles(dirs, posterior) ** 2 / (2 * 0.55**2))
    rhythm_sites += np.outer(topo_alpha, alpha_env * _carrier(n, fs, alpha_f, rng))
    for site in ("C3", "C4"):
        topo_beta = np.exp(-_angles(dirs, dirs_map[site]) ** 2 / (2 * 0.35**2))
        rhythm_sites += np.outer(topo_beta, beta_env * _carrier(n, fs, beta_f + rng.uniform(-1, 1), rng))
    rhythm = rhythm_sites[:-1] - rhythm_sites[-1]

    sensor = rng.standard_normal((len(EEG_CHANNELS), n))
    aux = np.stack([2.0 * rng.standard_normal(n), 5.0 * _pink_noise(n, fs, rng) + rng.standard_normal(n)])
    extra_info: dict = {}
    for r in extra:
        extra_sites, extra_info_r = _region_rhythm(r, dirs, t_bold, fs, drivers, rng)
        rhythm += extra_sites[:-1] - extra_sites[-1]
        extra_info.update(extra_info_r)
    data = (pot + rhythm + sensor).astype(np.float32)
    info = {
        "alpha_frequency_hz": alpha_f,
        "beta_frequency_hz": beta_f,
        "alpha_amplitude_uv": alpha_amp,
        "beta_amplitude_uv": beta_amp,
        "envelope": f"amplitude_uv * exp({ENVELOPE_GAIN} * driver) at the generator (topography peak 1)",
        "alpha_topography": "Gaussian (SD 0.55 rad) around the Oz+POz direction",
        "beta_topography": "Gaussians (SD 0.35 rad) around C3 and C4",
        "background": f"{n_src} sources with 1/(1+f)^1.6 power and Gaussian topographies; median channel SD 10 µV",
        "sensor_noise_uv": 1.0,
        "reference": REFERENCE,
        **extra_info,
    }
    return CleanEEG(data=data, aux=aux.astype(np.float32), sfreq=fs, info=info)


def _region_rhythm(r: RegionRhythm, dirs: np.ndarray, t_bold: np.ndarray, fs: float, drivers: Drivers,
                   rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Potentials at the sites (reference last) of a rhythm over a coupled region, and its info.

    Carrier frequency drawn in the middle 40 % of the band; amplitude 8-12 µV (close to
    alpha's); envelope ``A * exp(ENVELOPE_GAIN * driver)``; one generator (own
    phase) per centre, Gaussian topography around the centre's scalp direction.
    """
    lo, hi = r.edges
    f0 = rng.uniform(lo + 0.3 * (hi - lo), hi - 0.3 * (hi - lo))
    amp = rng.uniform(8.0, 12.0)
    env = amp * np.exp(ENVELOPE_GAIN * drivers.driver_at(r.band, t_bold))
    sites = np.zeros((dirs.shape[0], t_bold.size))
    for centre in r.centres:
        topo = np.exp(-_angles(dirs, scalp_direction(centre)) ** 2 / (2 * REGION_TOPOGRAPHY_SD**2))
        sites += np.outer(topo, env * _carrier(t_bold.size, fs, f0, rng))
    info = {
        f"{r.band}_frequency_hz": f0,
        f"{r.band}_amplitude_uv": amp,
        f"{r.band}_topography": (f"Gaussians (SD {REGION_TOPOGRAPHY_SD} rad) around the scalp directions of the "
                                 f"region centres {[list(c) for c in r.centres]} (MNI mm, seen from {HEAD_CENTRE_MNI})"),
    }
    return sites, info


def upsample(x: np.ndarray, factor: int) -> np.ndarray:
    """Band-limited (FFT zero-padding) interpolation by an integer factor along the last axis.

    The result passes through every original sample: ``upsample(x, L)[..., L*m] == x[..., m]``
    (up to float rounding). Returns float64.
    """
    if factor == 1:
        return np.asarray(x, dtype=np.float64).copy()
    n = x.shape[-1]
    spec = np.fft.rfft(np.asarray(x, dtype=np.float64), axis=-1)
    if n % 2 == 0:
        spec[..., -1] *= 0.5  # the Nyquist bin becomes an ordinary bin counted twice
    padded = np.zeros(spec.shape[:-1] + (n * factor // 2 + 1,), dtype=complex)
    padded[..., : spec.shape[-1]] = spec
    return np.fft.irfft(padded, n * factor, axis=-1) * factor


# ---------------------------------------------------------------------------- artifacts
@dataclass
class ArtifactModel:
    """Every parameter of the artifacts of one run (all times in EEG seconds, µV)."""

    sfreq: float
    n_samples: int
    lead: float
    channels: np.ndarray  # names (n_ch,)
    # gradient
    slice_period: float
    slice_onsets: np.ndarray  # (n_vol * n_slices,) exact onsets, acquisition order
    grad_coefs: np.ndarray  # (3, H) complex Fourier coefficients, unit-RMS axes
    grad_gains: np.ndarray  # (n_ch, 3)
    grad_drift: np.ndarray  # (d_lin, d_sin, period_s, phase, t_first, t_last)
    # cardiac
    rpeaks: np.ndarray  # (n_beats,)
    beat_gain: np.ndarray  # (n_beats,)
    beat_delay: np.ndarray  # (n_beats,) s added to the BCG lobes
    bcg_mu: np.ndarray  # (3,) s after the R-peak
    bcg_sigma: np.ndarray  # (3,)
    bcg_gains: np.ndarray  # (n_ch, 3)
    ecg_waves: np.ndarray  # (5, 3): offset s, SD s, relative amplitude (P, Q, R, S, T)
    ecg_amp: float
    ecg_beat_gain: np.ndarray  # (n_beats,)
    # ocular
    blink_onsets: np.ndarray
    blink_widths: np.ndarray
    blink_amps: np.ndarray  # VEOG amplitude per blink
    blink_gains: np.ndarray  # (n_ch,)
    # line noise
    line_freqs: np.ndarray  # (2,) 50, 150 Hz
    line_amps: np.ndarray  # (n_ch, 2)
    line_phases: np.ndarray  # (n_ch, 2)

    def save(self, path: str | Path) -> None:
        """Write the model as an uncompressed ``.npz`` (deterministic bytes)."""
        arrays = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}
        arrays["channels"] = np.asarray(self.channels, dtype="U8")
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> ArtifactModel:
        """Read a model written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as z:
            kwargs = {}
            for f in fields(cls):
                v = z[f.name]
                kwargs[f.name] = v.item() if v.ndim == 0 and f.name != "channels" else v
        kwargs["n_samples"] = int(kwargs["n_samples"])
        return cls(**kwargs)


def _gradient_waveforms(period: float, fmax: float) -> np.ndarray:
    """Fourier coefficients (3, H) of the dB/dt of x (readout), y (phase), z (slice) gradients.

    The trapezoid waveforms of one slice period are differentiated on a fine grid; the
    harmonics ``h / period <= fmax`` are kept with a cosine taper above 0.7 ``fmax``
    (amplifier anti-alias filter) and each axis is scaled to unit RMS.
    """
    m = 8192
    u = np.arange(m) / m  # fraction of the slice period

    def trap(start: float, stop: float, ramp: float) -> np.ndarray:
        up = np.clip((u - start) / ramp, 0, 1)
        down = np.clip((stop - u) / ramp, 0, 1)
        return np.minimum(up, down)

    ramp = 0.1e-3 / period
    z = trap(0.0, 0.07, ramp) - 0.5 * trap(0.075, 0.115, ramp) + 0.8 * trap(0.92, 0.99, ramp)
    lobes = 48
    starts = 0.2 + np.arange(lobes) * (0.65 / lobes)
    x = -0.5 * trap(0.12, 0.19, ramp)
    for i, s in enumerate(starts):
        x += (-1) ** i * trap(s, s + 0.65 / lobes - ramp, ramp)
    y = -0.6 * trap(0.12, 0.19, ramp)
    for s in starts[1:]:
        y += 0.15 * trap(s - 0.004, s + 0.004, ramp / 2)
    g = np.stack([x, y, z])
    dg = np.gradient(g, axis=1)
    spec = np.fft.rfft(dg, axis=1) / m
    freqs = np.arange(spec.shape[1]) / period
    keep = (freqs > 0) & (freqs <= fmax)
    taper = np.where(freqs <= 0.7 * fmax, 1.0, 0.5 * (1 + np.cos(np.pi * (freqs - 0.7 * fmax) / (0.3 * fmax))))
    h_max = int(np.max(np.flatnonzero(keep)))
    coefs = (spec * taper)[:, 1 : h_max + 1]
    rms = np.sqrt(2.0 * np.sum(np.abs(coefs) ** 2, axis=1, keepdims=True))
    return coefs / rms


def _fourier(coefs: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """``2 Re sum_h c_h exp(i h phase)`` for each row of ``coefs``; phase (n,) -> (rows, n)."""
    z = np.exp(1j * phase)
    zh = np.ones_like(z)
    acc = np.zeros((coefs.shape[0], phase.size), dtype=complex)
    for h in range(coefs.shape[1]):
        zh *= z
        acc += coefs[:, h : h + 1] * zh
    return 2.0 * acc.real


def _locked(t: np.ndarray, events: np.ndarray, lo: float, hi: float, kernel) -> np.ndarray | None:
    """Sum of ``kernel(tau, event_index)`` over events with ``lo <= t - event < hi``."""
    first = np.searchsorted(events, t - hi, side="right")
    last = np.searchsorted(events, t - lo, side="right")
    out = None
    for m in range(int(np.max(last - first, initial=0))):
        e = first + m
        sel = np.flatnonzero(e < last)
        tau = t[sel] - events[e[sel]]
        val = kernel(tau, e[sel])
        if out is None:
            out = np.zeros((val.shape[0], t.size))
        out[:, sel] += val
    return out


def artifact_components(model: ArtifactModel, samples: np.ndarray) -> dict[str, np.ndarray]:
    """Each artifact (µV, shape ``(n_channels, len(samples))``, float64) at the given samples.

    Keys: ``gradient``, ``bcg``, ``ecg``, ``blink``, ``line``. Their sum plus the
    upsampled clean signal is the raw recording.
    """
    samples = np.asarray(samples)
    t = samples / model.sfreq
    n_ch = len(model.channels)
    out: dict[str, np.ndarray] = {}

    # gradient
    onsets = model.slice_onsets
    idx = np.searchsorted(onsets, t, side="right") - 1
    tau = t - onsets[np.clip(idx, 0, None)]
    active = (idx >= 0) & ((idx < onsets.size - 1) | (tau < model.slice_period))
    grad = np.zeros((n_ch, t.size))
    if np.any(active):
        a = np.flatnonzero(active)
        wave = _fourier(model.grad_coefs, 2 * np.pi * tau[a] / model.slice_period)
        d_lin, d_sin, period, phase, t0, t1 = model.grad_drift
        drift = 1.0 + d_lin * ((t[a] - t0) / (t1 - t0) - 0.5) + d_sin * np.sin(2 * np.pi * t[a] / period + phase)
        grad[:, a] = (model.grad_gains @ wave) * drift
    out["gradient"] = grad

    # BCG: lobes after each R-peak (+ per-beat delay), per-beat gain
    events = model.rpeaks + model.beat_delay
    mu, sd = model.bcg_mu, model.bcg_sigma

    def bcg_kernel(tau: np.ndarray, e: np.ndarray) -> np.ndarray:
        basis = np.exp(-((tau[None, :] - mu[:, None]) ** 2) / (2 * sd[:, None] ** 2))
        return (model.bcg_gains @ basis) * model.beat_gain[e]

    val = _locked(t, events, 0.0, 0.7, bcg_kernel)
    out["bcg"] = val if val is not None else np.zeros((n_ch, t.size))

    # ECG waveform on the ECG channel
    ecg = np.zeros((n_ch, t.size))
    ecg_row = list(model.channels).index(ECG_CHANNEL)
    w = model.ecg_waves

    def ecg_kernel(tau: np.ndarray, e: np.ndarray) -> np.ndarray:
        tt = tau - 0.3  # window starts 0.3 s before the R-peak
        wave = np.sum(w[:, 2:3] * np.exp(-((tt[None, :] - w[:, 0:1]) ** 2) / (2 * w[:, 1:2] ** 2)), axis=0)
        return (model.ecg_amp * model.ecg_beat_gain[e] * wave)[None, :]

    val = _locked(t, model.rpeaks - 0.3, 0.0, 0.8, ecg_kernel)
    if val is not None:
        ecg[ecg_row] = val[0]
    out["ecg"] = ecg

    # blinks
    def blink_kernel(tau: np.ndarray, e: np.ndarray) -> np.ndarray:
        width = model.blink_widths[e]
        shape = np.where(tau < width, np.sin(np.pi * tau / width) ** 2, 0.0) * model.blink_amps[e]
        return model.blink_gains[:, None] * shape[None, :]

    val = _locked(t, model.blink_onsets, 0.0, 0.5, blink_kernel)
    out["blink"] = val if val is not None else np.zeros((n_ch, t.size))

    # line noise
    line = np.zeros((n_ch, t.size))
    for j, f in enumerate(model.line_freqs):
        line += model.line_amps[:, j : j + 1] * np.sin(2 * np.pi * f * t[None, :] + model.line_phases[:, j : j + 1])
    out["line"] = line
    return out


def random_artifact_model(
    *,
    sfreq: float,
    n_samples: int,
    lead: float,
    tr: float,
    n_volumes: int,
    slice_offsets: np.ndarray,
    rng: np.random.Generator,
    heart_rate: float | None = None,
) -> ArtifactModel:
    """Draw every artifact parameter for one run (see the module docstring).

    ``slice_offsets`` are the slice start times within a volume in acquisition order
    (the sorted ``SliceTiming``); slices are assumed to fill the TR evenly.
    ``heart_rate`` (bpm) replaces the drawn mean heart rate (60-75 bpm); the random
    stream is the same either way, so ``None`` gives the same model as before.
    """
    dirs_map = channel_directions()
    n_ch = len(ALL_CHANNELS)
    duration = n_samples / sfreq
    n_slices = len(slice_offsets)

    # gradient: slice onsets in acquisition order, jittered by ~0.1 sample (not slice 0)
    period = tr / n_slices
    nominal = lead + (np.arange(n_volumes)[:, None] * tr + np.asarray(slice_offsets)[None, :]).ravel()
    jitter = np.clip(rng.normal(0.0, 0.1, nominal.size), -0.45, 0.45) / sfreq
    jitter[0] = 0.0
    onsets = nominal + jitter
    coefs = _gradient_waveforms(period, min(AMP_LOWPASS, 0.4 * sfreq))
    scale = np.exp(rng.normal(np.log(700.0), 0.4, n_ch))
    scale[ALL_CHANNELS.index(ECG_CHANNEL)] *= 2.0
    direction = rng.standard_normal((n_ch, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    grad_gains = scale[:, None] * direction
    drift = np.array([rng.uniform(-0.06, 0.06), rng.uniform(0.01, 0.03), rng.uniform(40.0, 90.0),
                      rng.uniform(0, 2 * np.pi), lead, lead + n_volumes * tr])

    # heart: RR with respiratory sinus arrhythmia and slow variability
    hr = rng.uniform(60.0, 75.0)
    if heart_rate is not None:
        hr = float(heart_rate)
    rr0 = 60.0 / hr
    resp_f = rng.uniform(0.2, 0.3)
    beats = [rng.uniform(0.1, rr0)]
    slow = ndimage.gaussian_filter1d(rng.standard_normal(int(duration / rr0) + 50), 5.0)
    slow /= slow.std() or 1.0
    i = 0
    while beats[-1] < duration + 1.0:
        rsa = 0.04 * np.sin(2 * np.pi * resp_f * beats[-1])  # respiratory sinus arrhythmia
        rr = rr0 * (1 + rsa + 0.03 * slow[i % slow.size]) + rng.normal(0, 0.01)
        beats.append(beats[-1] + rr)
        i += 1
    rpeaks = np.asarray(beats[:-1])
    n_beats = rpeaks.size
    beat_gain = np.clip(1.0 + 0.15 * rng.standard_normal(n_beats), 0.5, None)
    beat_delay = rng.normal(0.0, 0.006, n_beats)
    bcg_mu = np.array([0.21, 0.30, 0.42])
    bcg_sigma = np.array([0.025, 0.035, 0.05])
    eeg_dirs = np.array([dirs_map[c] for c in EEG_CHANNELS])
    bcg_gains = np.zeros((n_ch, 3))
    for k in range(3):
        a = rng.standard_normal(3)
        pattern = eeg_dirs @ (a * np.array([1.0, 0.5, 0.3])) + 0.3 * rng.standard_normal(len(EEG_CHANNELS))
        bcg_gains[: len(EEG_CHANNELS), k] = 60.0 * pattern * (1 if k != 1 else -1)
    bcg_gains[ALL_CHANNELS.index(ECG_CHANNEL)] = rng.normal(0, 10.0, 3)
    bcg_gains[ALL_CHANNELS.index(EOG_CHANNEL)] = rng.normal(0, 30.0, 3)
    ecg_waves = np.array([[-0.17, 0.022, 0.12], [-0.03, 0.008, -0.12], [0.0, 0.010, 1.0],
                          [0.03, 0.010, -0.25], [0.26, 0.045, 0.28]])
    ecg_amp = rng.uniform(800.0, 1500.0)
    ecg_beat_gain = 1.0 + 0.05 * rng.standard_normal(n_beats)

    # blinks every 3-6 s
    blinks = [rng.uniform(0.5, 3.0)]
    while blinks[-1] < duration - 1.0:
        blinks.append(blinks[-1] + rng.uniform(3.0, 6.0))
    blink_onsets = np.asarray(blinks[:-1])
    blink_widths = rng.uniform(0.3, 0.45, blink_onsets.size)
    blink_amps = rng.uniform(150.0, 300.0, blink_onsets.size)
    eye = dirs_map["Fpz"] + np.array([0.0, 0.0, -0.4])
    blink_gains = np.zeros(n_ch)
    blink_gains[: len(EEG_CHANNELS)] = 0.4 * np.exp(-_angles(eeg_dirs, eye) ** 2 / (2 * 0.35**2))
    blink_gains[ALL_CHANNELS.index(EOG_CHANNEL)] = 1.0

    # line noise
    line_amps = np.stack([rng.uniform(2.0, 8.0, n_ch), rng.uniform(0.3, 1.5, n_ch)], axis=1)
    line_amps[ALL_CHANNELS.index(ECG_CHANNEL)] *= 2.0
    line_phases = rng.uniform(0, 2 * np.pi, (n_ch, 2))

    return ArtifactModel(
        sfreq=float(sfreq), n_samples=int(n_samples), lead=float(lead), channels=np.asarray(ALL_CHANNELS),
        slice_period=period, slice_onsets=onsets, grad_coefs=coefs, grad_gains=grad_gains, grad_drift=drift,
        rpeaks=rpeaks, beat_gain=beat_gain, beat_delay=beat_delay, bcg_mu=bcg_mu, bcg_sigma=bcg_sigma,
        bcg_gains=bcg_gains, ecg_waves=ecg_waves, ecg_amp=float(ecg_amp), ecg_beat_gain=ecg_beat_gain,
        blink_onsets=blink_onsets, blink_widths=blink_widths, blink_amps=blink_amps, blink_gains=blink_gains,
        line_freqs=np.array([LINE_FREQ, 3 * LINE_FREQ]), line_amps=line_amps, line_phases=line_phases,
    )


def assemble_raw(clean: CleanEEG, model: ArtifactModel) -> np.ndarray:
    """The recorded signal (n_channels, n_samples) in µV, float32 (see module docstring)."""
    factor = int(round(model.sfreq / clean.sfreq))
    n = model.n_samples
    raw = np.empty((len(ALL_CHANNELS), n), dtype=np.float32)
    n_eeg = len(EEG_CHANNELS)
    for start in range(0, n_eeg, 8):  # upsample the clean part a few channels at a time
        stop = min(start + 8, n_eeg)
        raw[start:stop] = upsample(clean.data[start:stop], factor)[:, :n]
    raw[n_eeg:] = upsample(clean.aux, factor)[:, :n]
    for start in range(0, n, _CHUNK):
        samples = np.arange(start, min(start + _CHUNK, n))
        comps = artifact_components(model, samples)
        total = raw[:, start : start + samples.size].astype(np.float64)
        for value in comps.values():
            total += value
        raw[:, start : start + samples.size] = total
    return raw


def write_brainvision(raw_uv: np.ndarray, sfreq: float, markers: np.ndarray, vhdr_path: str | Path) -> None:
    """Write the recording with ``pybv`` (float32, µV) and one ``Response R128`` per volume marker."""
    import pybv

    vhdr_path = Path(vhdr_path)
    events = [{"onset": int(s), "duration": 1, "description": 128, "type": "Response", "channels": "all"}
              for s in markers]
    refs = [REFERENCE] * len(ALL_CHANNELS)
    pybv.write_brainvision(
        data=raw_uv.astype(np.float64) * 1e-6, sfreq=sfreq, ch_names=list(ALL_CHANNELS), ref_ch_names=refs,
        fname_base=vhdr_path.name[: -len(".vhdr")], folder_out=vhdr_path.parent, overwrite=False,
        events=events, resolution=1.0, unit="µV", fmt="binary_float32", meas_date=None,
    )


def write_clean_fif(clean: CleanEEG, path: str | Path) -> None:
    """Save the 32 clean EEG channels (truth rate) as a FIF file, deterministically."""
    import mne

    info = mne.create_info(list(EEG_CHANNELS), clean.sfreq, "eeg")
    raw = mne.io.RawArray(clean.data.astype(np.float64) * 1e-6, info, verbose="error")
    raw.set_meas_date(None)
    raw.set_montage("easycap-M1", on_missing="ignore", verbose="error")
    raw.save(path, overwrite=False, verbose="error")
