"""In-scanner EEG recordings the EEG chain was not tuned on, built from the simulator's parts.

``neurofuse simulate`` fixes the cap (32 EEG + ECG + VEOG), the slice count (from the EPI
grid), the heart rate (60-75 bpm) and the artifact amplitudes. To test the EEG steps on
other recordings, :func:`make_variant` assembles one run from the same generators
(:func:`neurofuse.simulate.eeg.synthesize_clean`, :func:`random_artifact_model`,
:func:`assemble_raw`) with those set by the caller: channel subset, TR, slice count, EEG
rate, heart rate, gradient and BCG amplitude scale. No BOLD is simulated, so a run takes a
second or two. The truth kept: clean EEG, blink artifact, R-peaks, alpha envelope power per
volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import mne
import numpy as np

from neurofuse.simulate import drivers as drv
from neurofuse.simulate import eeg as sim


@dataclass
class Variant:
    raw: mne.io.RawArray  # recording (V), volume markers as Response/R128 annotations
    clean: np.ndarray  # (n_eeg, n_truth) true clean EEG (V) at truth_sfreq, picked channels
    blink: np.ndarray  # (n_eeg, n_times) true blink artifact (V) at the recording rate
    truth_sfreq: float
    rpeaks: np.ndarray  # s, beats inside the recording
    alpha_power: np.ndarray  # (n_volumes,) true alpha envelope power per volume (a.u.)
    lead: float  # s from the first sample to the first volume
    tr: float
    n_slices: int
    n_volumes: int
    eeg_names: list[str]
    slice_hz: float
    model: sim.ArtifactModel  # every artifact parameter (sim.artifact_components recomputes them)
    picks: list[int]  # rows of the model's channels kept in raw


def make_variant(
    *,
    channels: list[str] | None = None,
    tr: float = 2.0,
    n_slices: int = 30,
    n_volumes: int = 30,
    sfreq: float = 5000.0,
    heart_rate: float | None = None,
    gradient_scale: float = 1.0,
    bcg_scale: float = 1.0,
    seed: int = 0,
) -> Variant:
    """One simulated in-scanner run; ``channels`` is a subset of the 32 scalp channels."""
    rng = np.random.default_rng(seed)
    names = list(channels or sim.EEG_CHANNELS)
    fs_truth = sim.truth_sfreq(sfreq)
    factor = int(round(sfreq / fs_truth))
    lead, tail = 4.0, 3.0
    n_truth = int(np.ceil((lead + n_volumes * tr + tail) * fs_truth))
    n_samples = n_truth * factor
    drivers = drv.make_drivers(-(lead + 40.0), n_samples / sfreq - lead + 1.0, rng)
    clean = sim.synthesize_clean(n_truth, fs_truth, lead, drivers, rng)
    offsets = np.arange(n_slices) * (tr / n_slices)
    model = sim.random_artifact_model(sfreq=sfreq, n_samples=n_samples, lead=lead, tr=tr, n_volumes=n_volumes,
                                      slice_offsets=offsets, rng=rng, heart_rate=heart_rate)
    model.grad_gains = model.grad_gains * gradient_scale
    model.bcg_gains = model.bcg_gains * bcg_scale
    raw_uv = sim.assemble_raw(clean, model)
    blink = sim.artifact_components(model, np.arange(n_samples))["blink"]

    keep = [sim.ALL_CHANNELS.index(n) for n in names + [sim.ECG_CHANNEL, sim.EOG_CHANNEL]]
    eeg_rows = [sim.EEG_CHANNELS.index(n) for n in names]
    info = mne.create_info(names + [sim.ECG_CHANNEL, sim.EOG_CHANNEL], sfreq, ["eeg"] * len(names) + ["ecg", "eog"])
    raw = mne.io.RawArray(raw_uv[keep].astype(np.float64) * 1e-6, info, verbose="error")
    raw.set_montage("easycap-M1", on_missing="ignore", verbose="error")
    markers = np.rint(model.slice_onsets[::n_slices] * sfreq) / sfreq
    raw.set_annotations(mne.Annotations(markers, 0.0, "Response/R128"))

    # alpha envelope power per volume: (A exp(g driver))^2 averaged over [k TR, (k+1) TR)
    t = np.arange(0.0, n_volumes * tr, drv.DRIVER_DT)
    env2 = np.exp(2 * drv.ENVELOPE_GAIN * drivers.driver_at("alpha", t))
    alpha_power = env2.reshape(n_volumes, -1).mean(axis=1) if (tr / drv.DRIVER_DT).is_integer() else np.array(
        [env2[(t >= k * tr) & (t < (k + 1) * tr)].mean() for k in range(n_volumes)])
    duration = n_samples / sfreq
    return Variant(
        raw=raw, clean=clean.data[eeg_rows].astype(np.float64) * 1e-6, blink=blink[eeg_rows] * 1e-6,
        truth_sfreq=fs_truth, rpeaks=model.rpeaks[model.rpeaks < duration], alpha_power=alpha_power, lead=lead,
        tr=tr, n_slices=n_slices, n_volumes=n_volumes, eeg_names=names, slice_hz=n_slices / tr, model=model,
        picks=keep,
    )
