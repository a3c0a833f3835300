"""Presets of ``neurofuse simulate`` and the resolved configuration of one simulation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from neurofuse.errors import NeuroFuseError

#: Named parameter sets. ``simulate_dataset`` arguments left as ``None`` come from here.
#: Keys: dataset size (``n_subjects``, ``n_sessions``, ``n_runs``, ``n_volumes``),
#: timing (``tr`` in s, ``eeg_sfreq`` in Hz), grids (``epi_voxel``, ``t1w_voxel`` in mm,
#: ``epi_margin`` mm of field of view around the brain) and ``n_spikes`` (sudden head
#: movements per run).
PRESETS: dict[str, dict] = {
    "demo": {
        "n_subjects": 2,
        "n_sessions": 1,
        "n_runs": 1,
        "n_volumes": 150,
        "tr": 2.0,
        "eeg_sfreq": 5000.0,
        "epi_voxel": 3.0,
        "epi_margin": 6.0,
        "t1w_voxel": 1.0,
        "n_spikes": 3,
    },
    "small": {
        "n_subjects": 2,
        "n_sessions": 1,
        "n_runs": 1,
        "n_volumes": 32,
        "tr": 1.5,
        "eeg_sfreq": 2000.0,
        "epi_voxel": 6.0,
        "epi_margin": 12.0,
        "t1w_voxel": 2.0,
        "n_spikes": 2,
    },
}

#: Task label of every simulated run.
TASK = "rest"


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that decides the content of a simulated dataset (plus the seed)."""

    preset: str
    n_subjects: int
    n_sessions: int
    n_runs: int
    n_volumes: int
    tr: float
    eeg_sfreq: float
    epi_voxel: float
    epi_margin: float
    t1w_voxel: float
    n_spikes: int
    seed: int

    def as_dict(self) -> dict:
        """Plain dictionary (for JSON)."""
        return asdict(self)


def resolve_config(preset: str, seed: int, **overrides: float | int | None) -> SimulationConfig:
    """Merge a preset with the non-``None`` overrides and check the result.

    Raises
    ------
    NeuroFuseError
        Unknown preset or a value out of range (the message says which and why).
    """
    if preset not in PRESETS:
        raise NeuroFuseError(
            f"unknown simulation preset {preset!r}", hint=f"use one of: {', '.join(sorted(PRESETS))}"
        )
    values = dict(PRESETS[preset])
    for key, value in overrides.items():
        if key not in values:
            raise TypeError(f"unknown simulation parameter {key!r}")
        if value is not None:
            values[key] = value
    cfg = SimulationConfig(preset=preset, seed=int(seed), **{
        k: (int(v) if k.startswith("n_") else float(v)) for k, v in values.items()
    })
    _check(cfg)
    return cfg


def _check(cfg: SimulationConfig) -> None:
    def bad(what: str, hint: str) -> NeuroFuseError:
        return NeuroFuseError(what, hint=hint)

    if not 1 <= cfg.n_subjects <= 999:
        raise bad(f"n_subjects must be between 1 and 999, got {cfg.n_subjects}", "pass a smaller number of subjects")
    if not 1 <= cfg.n_sessions <= 99:
        raise bad(f"n_sessions must be between 1 and 99, got {cfg.n_sessions}", "pass 1 to 99 sessions")
    if not 1 <= cfg.n_runs <= 99:
        raise bad(f"n_runs must be between 1 and 99, got {cfg.n_runs}", "pass 1 to 99 runs")
    if not 8 <= cfg.n_volumes <= 5000:
        raise bad(f"n_volumes must be between 8 and 5000, got {cfg.n_volumes}", "pass at least 8 volumes")
    if not (0.3 <= cfg.tr <= 10.0) or not math.isfinite(cfg.tr):
        raise bad(f"tr must be between 0.3 and 10 s, got {cfg.tr}", "pass the repetition time in seconds")
    if not 250.0 <= cfg.eeg_sfreq <= 20000.0:
        raise bad(f"eeg_sfreq must be between 250 and 20000 Hz, got {cfg.eeg_sfreq}", "pass e.g. 5000")
    if cfg.seed < 0:
        raise bad(f"seed must be >= 0, got {cfg.seed}", "pass a non-negative integer seed")
