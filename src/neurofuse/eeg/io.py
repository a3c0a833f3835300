"""Reading, writing and small shared helpers for the EEG steps.

Every EEG step reads one recording and writes one FIF file; the helpers here keep that
plumbing (reading any MNE-supported format, naming channel types, turning markers into
times, writing JSON logs) in one place.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import mne
import numpy as np

from neurofuse.errors import NeuroFuseError
from neurofuse.io import atomic_path, save_raw

__all__ = [
    "read_raw",
    "write_raw",
    "guess_channel_types",
    "marker_onsets",
    "write_json",
    "data_picks",
    "standard_montage",
]

#: Channel-name patterns that are not scalp EEG (BrainAmp MR caps name them like this).
_TYPE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ecg", re.compile(r"^(ECG|EKG)\d*$", re.IGNORECASE)),
    ("eog", re.compile(r"^(V|H)?EOG\d*[LRUD]?$", re.IGNORECASE)),
    ("emg", re.compile(r"^EMG\d*$", re.IGNORECASE)),
    ("stim", re.compile(r"^(STI|STIM|TRIGGER)\s?\d*$", re.IGNORECASE)),
)


def guess_channel_types(raw: mne.io.BaseRaw, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """Set ECG/EOG/EMG channel types from channel names (in place) and return the changes.

    BrainVision files store every channel as EEG; a channel called ``ECG``/``EKG`` becomes
    ``ecg``, ``VEOG``/``HEOG``/``EOG`` becomes ``eog``. ``overrides`` (name -> MNE type)
    wins over the guess, e.g. ``{"ch32": "ecg"}``.
    """
    changes: dict[str, str] = {}
    current = dict(zip(raw.ch_names, raw.get_channel_types()))
    for name in raw.ch_names:
        for kind, pattern in _TYPE_PATTERNS:
            if pattern.match(name) and current[name] != kind:
                changes[name] = kind
                break
    for name, kind in (overrides or {}).items():
        if name not in current:
            raise NeuroFuseError(
                f"channel '{name}' given in channel_types is not in the recording",
                hint=f"use one of {', '.join(raw.ch_names)}",
            )
        changes[name] = kind
    if changes:
        raw.set_channel_types(changes, on_unit_change="ignore", verbose="error")
    return changes


def read_raw(path: str | PathLike, *, preload: bool = True, channel_types: Mapping[str, str] | None = None) -> mne.io.BaseRaw:
    """Read an EEG recording in any format MNE reads (BrainVision, EDF, EEGLAB, FIF …).

    Channel types are guessed from names (see :func:`guess_channel_types`).
    Raises :class:`~neurofuse.errors.NeuroFuseError` with the path when it cannot be read,
    when a BrainVision data file does not match its header (truncated, missing) and, with
    ``preload``, when samples are NaN or infinite (:mod:`neurofuse.checks`).
    """
    from neurofuse.checks import check_finite_raw, check_input_file

    path = Path(path)
    if not path.exists():
        raise NeuroFuseError("EEG file not found", path, "check the path or the BIDS index")
    check_input_file(path)  # a BrainVision data file: present, not empty, not truncated
    if path.suffix.lower() == ".vhdr":
        _check_marker_data_file(path)
    try:
        raw = mne.io.read_raw(path, preload=preload, verbose="error")
    except Exception as exc:  # noqa: BLE001 - reported as a one-line user error
        reason = (str(exc).strip().splitlines() or [""])[0]
        raise NeuroFuseError(f"cannot read EEG file ({type(exc).__name__}: {reason})", path,
                             "check that the file (and, for BrainVision, its .eeg and .vmrk) is complete; copy it "
                             "again from the source") from None
    check_finite_raw(raw, path)
    guess_channel_types(raw, channel_types)
    return raw


def _check_marker_data_file(vhdr: Path) -> None:
    """A marker file naming a data file that does not exist gets a warning (MNE reads the
    header's ``DataFile``, so the signal is still found); the data file itself is checked
    by :func:`neurofuse.checks.check_input_file`."""
    from neurofuse.bids.markers import read_vhdr

    try:
        info = read_vhdr(vhdr)
    except (OSError, ValueError) as exc:
        raise NeuroFuseError(f"cannot read the BrainVision header ({exc})", vhdr) from exc
    marker = vhdr.parent / info.marker_file if info.marker_file else vhdr.with_suffix(".vmrk")
    if marker.is_file():
        match = re.search(rb"^\s*DataFile\s*=\s*(.+?)\s*$", marker.read_bytes(), re.MULTILINE | re.IGNORECASE)
        named = match.group(1).decode("utf-8", "replace") if match else None
        if named and not (vhdr.parent / named).exists():
            logging.getLogger(__name__).warning(
                "%s: the marker file names the data file %s (DataFile=), which does not exist; the header's %s is "
                "read instead (correct DataFile= in the .vmrk if the files were renamed)",
                marker, named, info.data_file)


def write_raw(raw: mne.io.BaseRaw, path: str | PathLike) -> Path:
    """Write ``raw`` as FIF (``*_eeg.fif`` names are accepted) atomically, creating parent folders."""
    return save_raw(raw, path)


def _without_timings(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {k: _without_timings(v) for k, v in obj.items() if k != "seconds"}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


def write_json(obj: Mapping[str, Any], path: str | PathLike) -> Path:
    """Write a log dictionary as indented JSON (numpy scalars and arrays are converted).

    Wall-clock timings (``seconds`` entries) go to the Python log, not into the file: an
    output must have the same bytes on every re-run (``neurofuse audit --rerun``).
    """
    path = Path(path)
    if "seconds" in obj:
        logging.getLogger(__name__).info("%s: step timings (s): %s", path.name, obj["seconds"])
    text = json.dumps(_without_timings(obj), indent=2, default=_jsonable) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def marker_onsets(raw: mne.io.BaseRaw, description: str | Iterable[str], *, required: bool = True) -> np.ndarray:
    """Onsets (s, from the first data sample) of annotations whose description matches.

    ``description`` is an exact annotation description such as ``"Response/R128"`` (as MNE
    reads BrainVision markers) or several of them. The comparison ignores surrounding
    blanks, since BrainVision pads marker names (``"Stimulus/S  1"``).
    """
    wanted = {description} if isinstance(description, str) else set(description)
    wanted_norm = {_norm(d) for d in wanted}
    ann = raw.annotations
    mask = np.array([_norm(d) in wanted_norm for d in ann.description], dtype=bool)
    if not mask.any():
        if not required:
            return np.zeros(0)
        found = sorted(set(ann.description))
        shown = ", ".join(found[:12]) + (" …" if len(found) > 12 else "") if found else "none"
        raise NeuroFuseError(
            f"no '{' / '.join(sorted(wanted))}' markers in the EEG recording (markers present: {shown})",
            raw.filenames[0] if raw.filenames and raw.filenames[0] else None,
            "set the volume marker name in the config (e.g. 'Response/R128') or mark the run as recorded outside the scanner",
        )
    onsets = np.sort(ann.onset[mask] - raw.first_time)
    return onsets


def standard_montage(name: str = "standard_1020") -> mne.channels.DigMontage:
    """A built-in montage; ``standard_1020`` resolves to its new MNE name (``colin27_1020``)
    where MNE deprecated the old one."""
    available = mne.channels.get_builtin_montages()
    if name == "standard_1020" and "colin27_1020" in available:
        name = "colin27_1020"
    return mne.channels.make_standard_montage(name)


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", str(text)).lower()


def data_picks(raw: mne.io.BaseRaw, types: Iterable[str] = ("eeg", "eog", "ecg", "emg", "misc")) -> np.ndarray:
    """Indices of channels of the given types (everything but stimulus channels by default)."""
    kinds = set(types)
    return np.array([i for i, t in enumerate(raw.get_channel_types()) if t in kinds], dtype=int)
