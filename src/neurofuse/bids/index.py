"""The one BIDS index of a dataset: every BOLD and EEG run, paired, with merged metadata.

:func:`build_index` walks the dataset once and returns a :class:`DatasetIndex` — plain
data that every Snakemake job (and ``snakemake -n``) reads back with
:meth:`DatasetIndex.from_json` instead of indexing the dataset again.

How it is fast
--------------
Discovery is a fixed-depth ``os.scandir`` walk (root -> ``sub-*`` -> [``ses-*``] ->
``func``/``eeg``/``anat``), never descending into ``derivatives/``, ``sourcedata/``,
``code/``, dot folders or datatype folders we do not use, and skipping whole subject
and session folders that the filters exclude. File names are split with
:func:`neurofuse.naming.parse_name`. Sidecars are parsed once per path (the top-level
``task-rest_bold.json`` that thousands of runs inherit is read once). No pybids.
BrainVision headers and markers are read with the fast text parser of
:mod:`neurofuse.bids.markers`; only EDF/BDF/EEGLAB/FIF go through MNE. With
``check_images=True`` each NIfTI header is read with nibabel and truncation is detected
from the file size (``.nii``) or the gzip ISIZE trailer (``.nii.gz``), decompressing
fully only when the trailer disagrees; voxel types must be real numbers (no complex or
RGB), and the T1w images the runs use are checked the same way. BrainVision data files
are checked against their header (present, a format MNE reads, a whole number of
samples, not shorter than ``DataPoints``) with one ``stat``, and volume markers after
the end of a recording (a truncated ``.eeg``) are an error. Voxel and
sample *values* (NaN/Inf) are checked by the steps that read the data
(:mod:`neurofuse.checks`), not here: the index reads headers only.

Metadata inheritance
--------------------
The BIDS inheritance principle: a JSON sidecar applies to a data file if it sits in the
dataset root, the subject folder, the session folder or the file's own folder, has the
same suffix (``bold``, ``eeg``) and its entities are a subset of the file's. They are
merged from the root down (deeper overrides); within one folder, fewer entities first.

EEG <-> BOLD pairing
--------------------
1. Same entities (``sub``, ``ses``, ``task``, ``acq``, ``run`` …; run indices compared as
   integers, so ``run-01`` pairs with ``run-1``): ``pairing="entities"``.
2. Otherwise, by ``acq_time`` in ``sub-<l>[_ses-<s>]_scans.tsv``: an EEG pairs with the
   BOLD run of the same subject, session and task whose acquisition started within one
   BOLD duration (``n_volumes x TR``; when the image was not read, the number of EEG
   volume markers x TR; else :data:`DEFAULT_PAIRING_WINDOW_S`; at least 60 s) of the
   EEG's. Exactly one candidate is required and no other EEG may claim it; anything
   else is ambiguous. ``pairing="acq_time"``.
3. An EEG still without a partner is kept as an EEG-only run (``bold=None``) with a
   warning (``unpaired_eeg="warn"``), or is an error (``"error"``). In a dataset
   without any BOLD run (after filters) EEG-only runs are expected: no warning.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from neurofuse.errors import BIDSError
from neurofuse.io import atomic_write_text
from neurofuse.naming import parse_name, run_prefix, subject_dir

from .markers import EEG_FORMATS, implied_tr, marker_counts, read_eeg_header, read_vhdr, scan_eeg, tr_tolerance

__all__ = ["build_index", "DatasetIndex", "Run", "BoldInfo", "EegInfo", "INDEX_FORMAT", "DEFAULT_PAIRING_WINDOW_S"]

#: Identifies the JSON written by :meth:`DatasetIndex.to_json` (bumped on incompatible changes).
INDEX_FORMAT = "neurofuse-bids-index/1"

#: Pairing window (s) for ``acq_time`` pairing when no BOLD duration is known.
DEFAULT_PAIRING_WINDOW_S = 600.0
_MIN_PAIRING_WINDOW_S = 60.0
_CLOCK_DRIFT = 1e-4
#: A RepetitionTime above this (s) is taken for milliseconds (sparse designs stay well below).
_MAX_TR_S = 100.0

_DATATYPES = ("anat", "func", "eeg")
_LABEL = re.compile(r"^[A-Za-z0-9]+$")
_UNPAIRED_POLICIES = ("warn", "error", "ignore")


# --------------------------------------------------------------------------- data


@dataclass(slots=True)
class BoldInfo:
    """A BOLD series. ``path`` and ``sidecars`` are relative to the dataset root.

    ``metadata`` is the sidecar chain merged by inheritance (``sidecars``, root first).
    ``n_volumes``, ``shape`` and ``zooms`` are ``None`` unless the index was built with
    ``check_images=True``.
    """

    path: str
    metadata: dict[str, Any]
    repetition_time: float
    slice_timing: list[float] | None = None
    n_volumes: int | None = None
    shape: list[int] | None = None
    zooms: list[float] | None = None
    sidecars: list[str] = field(default_factory=list)

    @property
    def n_slices(self) -> int | None:
        """Slices per volume: the image's size along SliceEncodingDirection, else len(SliceTiming)."""
        if self.shape is not None and len(self.shape) >= 3:
            axis = {"i": 0, "j": 1, "k": 2}.get(str(self.metadata.get("SliceEncodingDirection", "k")).rstrip("-"), 2)
            return int(self.shape[axis])
        return len(self.slice_timing) if self.slice_timing else None

    @property
    def duration(self) -> float | None:
        """``n_volumes x RepetitionTime`` in seconds (``None`` unless the image was read)."""
        return self.n_volumes * self.repetition_time if self.n_volumes is not None else None


@dataclass(slots=True)
class EegInfo:
    """An EEG recording. ``path`` (the ``.vhdr``/``.edf``/… file) is relative to the root.

    ``n_volume_markers`` counts the markers named ``volume_marker`` (``None``: not
    counted, because no marker name was asked for or the recording has no marker
    file); ``tr_from_markers`` is their mean interval in seconds (``None`` with fewer
    than two). ``pairing`` says how the BOLD partner was found (``None``: EEG-only).
    ``n_samples`` is the number of samples per channel (``.vhdr`` DataPoints or data file
    size; MNE for other formats; ``None`` if unknown).
    """

    path: str
    format: str
    sampling_frequency: float
    metadata: dict[str, Any]
    sidecars: list[str] = field(default_factory=list)
    marker_file: str | None = None
    volume_marker: str | None = None
    n_volume_markers: int | None = None
    tr_from_markers: float | None = None
    pairing: str | None = None
    n_samples: int | None = None

    @property
    def duration(self) -> float | None:
        """Recording length in seconds: samples / rate, else the sidecar's RecordingDuration."""
        if self.n_samples is not None:
            return self.n_samples / self.sampling_frequency
        value = self.metadata.get("RecordingDuration")
        return float(value) if _is_number(value) else None


@dataclass(slots=True)
class Run:
    """One acquisition: a BOLD run with or without its EEG, or an EEG-only run.

    ``id`` is the run prefix (``sub-01_ses-1_task-rest_run-1``) of the BOLD file, or of
    the EEG file for EEG-only runs; ``subdir`` is ``sub-01/ses-1``; ``t1w`` is the
    subject's T1w of the same session, else of any session (relative path or ``None``).
    """

    id: str
    subdir: str
    entities: dict[str, str]
    bold: BoldInfo | None = None
    eeg: EegInfo | None = None
    t1w: str | None = None

    @property
    def subject(self) -> str:
        return self.entities["sub"]

    @property
    def session(self) -> str | None:
        return self.entities.get("ses")

    @property
    def task(self) -> str | None:
        return self.entities.get("task")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (nested metadata dicts are shared, not copied)."""
        return {
            "id": self.id,
            "subdir": self.subdir,
            "entities": self.entities,
            "bold": _shallow(self.bold),
            "eeg": _shallow(self.eeg),
            "t1w": self.t1w,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Run:
        return cls(
            id=data["id"],
            subdir=data["subdir"],
            entities=dict(data["entities"]),
            bold=BoldInfo(**data["bold"]) if data.get("bold") else None,
            eeg=EegInfo(**data["eeg"]) if data.get("eeg") else None,
            t1w=data.get("t1w"),
        )


@dataclass(slots=True)
class DatasetIndex:
    """Everything the workflow needs to know about a dataset, as plain JSON-able data.

    ``anat`` maps subject label -> its T1w images (relative paths); ``filters`` records
    the options :func:`build_index` was called with; ``warnings`` are one-line messages
    ("path: problem -> hint") about things that did not stop the index.
    """

    bids_dir: str
    name: str
    runs: list[Run]
    anat: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    filters: dict[str, Any] = field(default_factory=dict)

    # -- selections
    def bold_runs(self) -> list[Run]:
        """Runs with a BOLD series (paired with EEG or not)."""
        return [r for r in self.runs if r.bold is not None]

    def eeg_runs(self) -> list[Run]:
        """Runs with an EEG recording (paired with BOLD or EEG-only)."""
        return [r for r in self.runs if r.eeg is not None]

    def paired_runs(self) -> list[Run]:
        """Runs with both a BOLD series and its simultaneous EEG."""
        return [r for r in self.runs if r.bold is not None and r.eeg is not None]

    def run(self, run_id: str) -> Run:
        """The run with this id (:class:`KeyError` if none)."""
        for r in self.runs:
            if r.id == run_id:
                return r
        raise KeyError(run_id)

    @property
    def subjects(self) -> list[str]:
        return sorted({r.entities["sub"] for r in self.runs}, key=_natural)

    @property
    def sessions(self) -> list[str]:
        return sorted({r.entities["ses"] for r in self.runs if r.entities.get("ses")}, key=_natural)

    @property
    def tasks(self) -> list[str]:
        return sorted({r.entities["task"] for r in self.runs if r.entities.get("task")})

    # -- JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "bids_dir": self.bids_dir,
            "name": self.name,
            "filters": self.filters,
            "anat": self.anat,
            "warnings": self.warnings,
            "runs": [r.to_dict() for r in self.runs],
        }

    def to_bytes(self) -> bytes:
        """The exact bytes :meth:`to_json` writes: sorted keys, compact, no timestamps."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return (text + "\n").encode("utf-8")

    def to_json(self, path: str | PathLike) -> None:
        """Write the index atomically; leave the file (and its mtime) alone if unchanged."""
        atomic_write_text(path, self.to_bytes().decode("utf-8"), only_if_changed=True)

    @classmethod
    def from_json(cls, path: str | PathLike) -> DatasetIndex:
        """Read an index written by :meth:`to_json` (:class:`FileNotFoundError` if there is none)."""
        try:
            data = json.loads(Path(path).read_bytes())  # FileNotFoundError propagates: callers say what to do
        except json.JSONDecodeError as exc:
            raise BIDSError(f"the dataset index is not valid JSON (line {exc.lineno})", path,
                            "delete it and build it again") from None
        if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise BIDSError(f"not a NeuroFuse dataset index of format {INDEX_FORMAT} (found {found!r})", path,
                            "delete it and build it again with this version of NeuroFuse")
        return cls(
            bids_dir=data["bids_dir"],
            name=data["name"],
            runs=[Run.from_dict(r) for r in data["runs"]],
            anat={k: list(v) for k, v in data.get("anat", {}).items()},
            warnings=list(data.get("warnings", [])),
            filters=dict(data.get("filters", {})),
        )


# --------------------------------------------------------------------------- helpers


def _shallow(obj: Any) -> dict[str, Any] | None:
    """Fields of a slotted dataclass as a dict, without :func:`dataclasses.asdict`'s deep copy."""
    if obj is None:
        return None
    return {name: getattr(obj, name) for name in obj.__slots__}


def _natural(text: str) -> tuple:
    """Sort key that orders ``run-2`` before ``run-10``."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def _labels(values: str | Iterable[str] | None, prefix: str) -> tuple[str, ...]:
    """Normalise a filter: a string or list, labels with or without ``<prefix>-``."""
    if values is None:
        return ()
    if isinstance(values, (str, int)):
        values = [values]
    out: list[str] = []
    for value in values:
        label = str(value).strip()
        if label.startswith(f"{prefix}-"):
            label = label[len(prefix) + 1:]
        if not _LABEL.match(label):
            raise BIDSError(f"invalid {prefix} label {value!r} in the filters", None,
                            "BIDS labels contain only letters and digits, e.g. '01'")
        if label not in out:
            out.append(label)
    return tuple(out)


def _preview(items: Iterable[str], limit: int = 12) -> str:
    items = list(items)
    text = ", ".join(items[:limit])
    if len(items) > limit:
        text += f", ... ({len(items)} in all)"
    return text or "none"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"{value!r} (a string)"
    if isinstance(value, bool):
        return f"{json.dumps(value)} (a boolean)"
    if value is None:
        return "null"
    return json.dumps(value) if isinstance(value, (int, float, list, dict)) else repr(value)


def _run_key(entities: Mapping[str, str]) -> str:
    """Pairing/duplicate key: the run prefix with integer run indices normalised."""
    ents = dict(entities)
    run = ents.get("run")
    if run and run.isdigit():
        ents["run"] = str(int(run))
    return run_prefix(ents)


@dataclass(slots=True)
class _File:
    rel: str  # relative to root, POSIX
    entities: dict[str, str]
    suffix: str
    ext: str
    level_keys: tuple[str, ...]  # sidecar levels that apply, root first


@dataclass(slots=True)
class _Sidecar:
    rel: str
    entities: dict[str, str]
    suffix: str


class _Indexer:
    """One build: the walk, the sidecar cache and the checks."""

    def __init__(self, root: Path, *, subjects: tuple[str, ...], exclude: tuple[str, ...], tasks: tuple[str, ...],
                 sessions: tuple[str, ...], volume_marker: str | None, unpaired_eeg: str, check_images: bool,
                 eeg_recorded_in: str = "auto", dummy_scans: int = 0, volume_mismatch_tolerance: int | None = None):
        self.root = root
        self.eeg_recorded_in = eeg_recorded_in
        self.dummy_scans = int(dummy_scans)
        self.mismatch_tolerance = volume_mismatch_tolerance
        self.root_str = str(root)
        self.want_subjects = subjects
        self.exclude = exclude
        self.tasks = set(tasks)
        self.sessions = set(sessions)
        self.volume_marker = volume_marker.rstrip() if volume_marker else None
        self.unpaired_eeg = unpaired_eeg
        self.check_images = check_images
        self.warnings: list[str] = []
        self.sidecars: dict[str, dict[str, list[_Sidecar]]] = {}  # level dir -> suffix -> sidecars
        self.json_cache: dict[str, dict[str, Any]] = {}
        self.bolds: list[_File] = []
        self.eegs: list[_File] = []
        self.t1ws: list[_File] = []
        self.scans: dict[str, str] = {}  # subdir -> scans.tsv rel path
        self._scan_time_cache: dict[str, dict[str, float | None]] = {}
        self._conflicts: set[tuple[str, str]] = set()
        self._onsets: dict[str, Any] = {}  # EEG rel path -> volume-marker samples (for the checks)
        self._checked_timing: dict[int, tuple[Any, float, tuple[float, ...]]] = {}
        self._checked_t1w: set[str] = set()
        self.seen_tasks: set[str] = set()
        self.seen_sessions: set[str] = set()

    # -- small utilities
    def abspath(self, rel: str) -> str:
        return f"{self.root_str}/{rel}"

    def warn(self, problem: str, rel: str | None, hint: str | None = None) -> None:
        self.warnings.append(str(BIDSError(problem, self.abspath(rel) if rel else self.root_str, hint)))

    def load_json(self, rel: str) -> dict[str, Any]:
        cached = self.json_cache.get(rel)
        if cached is not None:
            return cached
        path = self.abspath(rel)
        try:
            with open(path, "rb") as fh:
                data = json.loads(fh.read().decode("utf-8-sig"))
        except json.JSONDecodeError as exc:
            raise BIDSError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", path,
                            "fix the JSON syntax (a trailing comma or a missing quote is the usual cause); "
                            "'python -m json.tool FILE' shows where") from None
        except UnicodeDecodeError as exc:
            raise BIDSError(f"sidecar is not UTF-8 text ({exc.reason} at byte {exc.start})", path,
                            "save the JSON file as UTF-8") from None
        except OSError as exc:
            raise BIDSError(f"cannot read the file ({exc.strerror})", path, "check that it exists and is readable") from None
        if not isinstance(data, dict):
            raise BIDSError(f"a JSON sidecar must hold an object {{...}}, this one holds a {type(data).__name__}", path,
                            "wrap the fields in {...} as key: value pairs")
        self.json_cache[rel] = data
        return data

    # -- discovery
    def _scan_dir(self, rel_dir: str) -> tuple[list[str], list[str]]:
        """Sorted (files, folders) of a folder; dot entries skipped."""
        files: list[str] = []
        dirs: list[str] = []
        with os.scandir(self.abspath(rel_dir) if rel_dir else self.root_str) as it:
            for entry in it:
                name = entry.name
                if name[0] == ".":
                    continue
                if entry.is_dir():
                    dirs.append(name)
                else:
                    files.append(name)
        files.sort()
        dirs.sort()
        return files, dirs

    def _add_sidecars(self, level: str, names: list[str]) -> None:
        table: dict[str, list[_Sidecar]] = defaultdict(list)
        prefix = f"{level}/" if level else ""
        for name in names:
            if not name.endswith(".json"):
                continue
            try:
                ents, suffix, _ = parse_name(name)
            except ValueError:
                continue
            table[suffix].append(_Sidecar(prefix + name, ents, suffix))
        for suffix in table:  # fewer entities first, then by name: deeper/more specific overrides
            table[suffix].sort(key=lambda s: (len(s.entities), s.rel))
        self.sidecars[level] = dict(table)

    def discover(self) -> list[str]:
        """Walk the dataset; return the subject labels present."""
        files, dirs = self._scan_dir("")
        self._add_sidecars("", files)
        present = [d[4:] for d in dirs if d.startswith("sub-") and _LABEL.match(d[4:])]
        for d in dirs:
            if d.startswith("sub-") and not _LABEL.match(d[4:]):
                self.warn("subject folder with an invalid label (BIDS labels are letters and digits only); skipped",
                          d, f"rename it, e.g. to sub-{re.sub(r'[^A-Za-z0-9]', '', d[4:]) or '01'}, and its files")
        wanted = self.want_subjects or tuple(present)
        missing = [s for s in self.want_subjects if s not in present]
        if missing:
            raise BIDSError(
                f"participant label(s) not in the dataset: {', '.join(missing)}", self.root_str,
                f"labels present: {_preview(present)} (with or without the 'sub-' prefix)")
        for label in self.exclude:
            if label not in present:
                self.warn(f"exclude_participant_label '{label}' is not in the dataset", None,
                          f"labels present: {_preview(present)}")
        excluded = set(self.exclude)
        for sub in sorted(wanted, key=_natural):
            if sub not in excluded:
                self._walk_subject(sub)
        return present

    def _walk_subject(self, sub: str) -> None:
        sub_rel = f"sub-{sub}"
        files, dirs = self._scan_dir(sub_rel)
        self._add_sidecars(sub_rel, files)
        self._note_scans(sub_rel, files)
        sessions = [d for d in dirs if d.startswith("ses-")]
        for ses_dir in sessions:
            ses = ses_dir[4:]
            self.seen_sessions.add(ses)
            ses_rel = f"{sub_rel}/{ses_dir}"
            selected = not self.sessions or ses in self.sessions
            s_files, s_dirs = self._scan_dir(ses_rel)
            if selected:
                self._add_sidecars(ses_rel, s_files)
                self._note_scans(ses_rel, s_files)
            for dt in s_dirs:
                if dt in _DATATYPES and (selected or dt == "anat"):  # T1w of other sessions may be used
                    self._walk_datatype(ses_rel, dt, ("", sub_rel, ses_rel), sub, ses)
        for dt in dirs:
            if dt in _DATATYPES and (not self.sessions or dt == "anat"):
                self._walk_datatype(sub_rel, dt, ("", sub_rel), sub, None)

    def _note_scans(self, rel_dir: str, files: list[str]) -> None:
        for name in files:
            if name.endswith("_scans.tsv"):
                self.scans[rel_dir] = f"{rel_dir}/{name}"

    def _walk_datatype(self, parent: str, dt: str, levels: tuple[str, ...], sub: str, ses: str | None) -> None:
        rel_dir = f"{parent}/{dt}"
        files, _ = self._scan_dir(rel_dir)
        self._add_sidecars(rel_dir, files)
        levels = (*levels, rel_dir)
        for name in files:
            if name.endswith(".json"):
                continue
            if dt == "func":
                if not (name.endswith("_bold.nii.gz") or name.endswith("_bold.nii")):
                    continue
                target = self.bolds
            elif dt == "eeg":
                dot = name.rfind(".")
                if dot < 0 or name[dot:].lower() not in EEG_FORMATS or not name[:dot].endswith("_eeg"):
                    continue
                target = self.eegs
            else:
                if not (name.endswith("_T1w.nii.gz") or name.endswith("_T1w.nii")):
                    continue
                target = self.t1ws
            rel = f"{rel_dir}/{name}"
            try:
                ents, suffix, ext = parse_name(name)
            except ValueError:
                self.warn("file name is not a valid BIDS name; skipped", rel,
                          "use sub-<label>[_ses-<label>]_<key>-<value>..._<suffix>.<ext>")
                continue
            expected = f"sub-{sub}" + (f"_ses-{ses}" if ses else "")
            if ents.get("sub") != sub or ents.get("ses") != ses:
                raise BIDSError(f"the file name does not match its folder (expected it to start with {expected}_)",
                                self.abspath(rel), "rename the file or move it to the folder of its subject/session")
            if target is not self.t1ws:
                task = ents.get("task")
                if not task:
                    raise BIDSError(f"a _{suffix} file needs a task- entity", self.abspath(rel),
                                    f"rename it to {expected}_task-<label>_..._{suffix}{ext}")
                self.seen_tasks.add(task)
                if self.tasks and task not in self.tasks:
                    continue
                if target is self.bolds and ents.get("part", "mag") != "mag":
                    self.warn(f"part-{ents['part']} BOLD series are not used; only magnitude images are", rel)
                    continue
            target.append(_File(rel, ents, suffix, ext, levels))

    # -- metadata
    def metadata(self, f: _File) -> tuple[dict[str, Any], list[str]]:
        """Merged sidecar metadata of a data file and the sidecars used (root first)."""
        chain: list[str] = []
        ents = f.entities
        for level in f.level_keys:
            previous: _Sidecar | None = None
            for sc in self.sidecars.get(level, {}).get(f.suffix, ()):
                if all(ents.get(k) == v for k, v in sc.entities.items()):
                    if previous is not None and len(previous.entities) == len(sc.entities):
                        self._conflict(previous.rel, sc.rel)
                    chain.append(sc.rel)
                    previous = sc
        merged: dict[str, Any] = {}
        for rel in chain:
            merged.update(self.load_json(rel))
        return merged, chain

    def _conflict(self, first: str, second: str) -> None:
        if (first, second) not in self._conflicts:
            self._conflicts.add((first, second))
            self.warn(f"two sidecars in one folder apply to the same files with equally specific names: "
                      f"{first.rsplit('/', 1)[-1]} and {second.rsplit('/', 1)[-1]} ({second.rsplit('/', 1)[-1]} "
                      "wins)", second, "merge them into one sidecar (BIDS forbids this ambiguity)")

    def source_of(self, key: str, chain: list[str]) -> str:
        """The sidecar that set ``key`` last (relative path)."""
        for rel in reversed(chain):
            if key in self.load_json(rel):
                return rel
        return chain[-1] if chain else ""

    def scan_times(self, subdir: str) -> dict[str, float | None]:
        """``filename -> acq_time`` (POSIX seconds) from the subject/session scans.tsv (cached)."""
        if subdir in self._scan_time_cache:
            return self._scan_time_cache[subdir]
        times: dict[str, float | None] = {}
        rel = self.scans.get(subdir)
        if rel:
            path = self.abspath(rel)
            try:
                with open(path, encoding="utf-8-sig", newline="") as fh:
                    rows = fh.read().splitlines()
            except UnicodeDecodeError as exc:
                raise BIDSError(f"scans.tsv is not UTF-8 text ({exc.reason} at byte {exc.start})", path,
                                "save it as UTF-8") from None
            reader = csv.DictReader(rows, delimiter="\t")
            if not reader.fieldnames or "filename" not in reader.fieldnames:
                raise BIDSError("scans.tsv has no 'filename' column", path,
                                "the first line must be the header: filename<TAB>acq_time")
            for line, row in enumerate(reader, start=2):
                value = (row.get("acq_time") or "").strip()
                stamp = None
                if value and value != "n/a":
                    try:
                        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
                    except ValueError:
                        raise BIDSError(f"acq_time {value!r} on line {line} is not a date-time", path,
                                        "write it as YYYY-MM-DDThh:mm:ss[.ffffff]") from None
                    if when.tzinfo is None:
                        when = when.replace(tzinfo=timezone.utc)
                    stamp = when.timestamp()
                times[(row.get("filename") or "").strip()] = stamp
        self._scan_time_cache[subdir] = times
        return times

    # -- BOLD
    def bold_info(self, f: _File) -> BoldInfo:
        md, chain = self.metadata(f)
        path = self.abspath(f.rel)
        fname = f.rel.rsplit("/", 1)[-1]
        tr = md.get("RepetitionTime")
        if tr is None:
            if "VolumeTiming" in md:
                raise BIDSError("RepetitionTime is missing and VolumeTiming (sparse/clustered acquisition) is "
                                "not supported", path, "add RepetitionTime (seconds) to its JSON sidecar")
            target = chain[-1] if chain else f.rel[: -len(f.ext)] + ".json"
            top = f"task-{f.entities.get('task')}_bold.json"
            also = "" if target == top else f" (or to {top} at the dataset root for all runs of the task)"
            raise BIDSError(
                "RepetitionTime is missing (none of the JSON sidecars that apply to this file sets it: "
                f"{', '.join(chain) or 'there are none'})", path,
                f'add "RepetitionTime": <seconds> to {target}{also}')
        if not _is_number(tr) or tr <= 0:
            src = self.abspath(self.source_of("RepetitionTime", chain))
            hint = ("write it as a JSON number without quotes, e.g. \"RepetitionTime\": 2.0"
                    if isinstance(tr, str) else "set it to the time between volumes, in seconds, e.g. 2.0")
            raise BIDSError(f"RepetitionTime must be a positive number of seconds, got {_describe(tr)} "
                            f"(applies to {fname})", src, hint)
        if tr > _MAX_TR_S:
            raise BIDSError(f"RepetitionTime = {tr:g} s is implausibly long for a BOLD series (applies to {fname})",
                            self.abspath(self.source_of("RepetitionTime", chain)),
                            f"BIDS gives RepetitionTime in seconds: milliseconds? write {tr / 1000:g}")
        tr = float(tr)
        direction = md.get("SliceEncodingDirection")
        if direction is not None and direction not in ("i", "j", "k", "i-", "j-", "k-"):
            raise BIDSError(f"SliceEncodingDirection must be one of i, j, k, i-, j-, k-, got {_describe(direction)} "
                            f"(applies to {fname})", self.abspath(self.source_of("SliceEncodingDirection", chain)),
                            "give the voxel axis the slices were acquired along, e.g. \"k\"")
        st = md.get("SliceTiming")
        slice_timing: list[float] | None = None
        checked = self._checked_timing.get(id(st)) if st is not None else None
        if checked is not None and checked[0] is st and checked[1] == tr:
            slice_timing = list(checked[2])
        elif st is not None:
            src = self.abspath(self.source_of("SliceTiming", chain))
            if not isinstance(st, list) or not st or not all(_is_number(v) for v in st):
                raise BIDSError(f"SliceTiming must be a list of numbers (seconds), got {_describe(st)[:80]} "
                                f"(applies to {fname})", src, "write one onset per slice, e.g. [0, 0.5, 1.0, 1.5]")
            for i, v in enumerate(st):
                if not 0 <= v < tr:
                    raise BIDSError(
                        f"SliceTiming[{i}] = {v} s is outside [0, RepetitionTime = {tr} s) (applies to {fname})", src,
                        "SliceTiming holds each slice's onset in seconds from the volume start: check its units "
                        "(milliseconds?) and RepetitionTime")
            slice_timing = [float(v) for v in st]
            self._checked_timing[id(st)] = (st, tr, tuple(slice_timing))  # shared sidecars: check once
        info = BoldInfo(path=f.rel, metadata=md, repetition_time=tr, slice_timing=slice_timing, sidecars=chain)
        if self.check_images:
            self._check_bold_image(f, info, chain)
        return info

    def check_t1w(self, rel: str) -> None:
        """A T1w the runs will use: readable, complete, real-valued, 3D (or 4D with one volume)."""
        if rel in self._checked_t1w:
            return
        self._checked_t1w.add(rel)
        path = self.abspath(rel)
        shape, _, _ = check_nifti(path)
        if len(shape) < 3 or (len(shape) > 3 and int(np.prod(shape[3:])) != 1):
            raise BIDSError(f"a _T1w image must be 3D, this one has shape {'x'.join(map(str, shape))}", path,
                            "keep one anatomical volume per _T1w file (average repeated scans, or name them run-1, "
                            "run-2 ...)")

    def _check_bold_image(self, f: _File, info: BoldInfo, chain: list[str]) -> None:
        path = self.abspath(f.rel)
        shape, zooms, header_tr = check_nifti(path)
        if len(shape) < 4:
            raise BIDSError(
                f"a _bold image must be 4D (x, y, z, time), this one is {len(shape)}D with shape "
                f"{'x'.join(map(str, shape))}", path,
                "store a single volume as 4D with one time point; if it is not a BOLD series, rename it "
                "(e.g. _sbref) or move it out of func/")
        if len(shape) > 4 and int(np.prod(shape[4:])) != 1:
            raise BIDSError(
                f"a _bold image must be 4D (x, y, z, time), this one is {len(shape)}D with shape "
                f"{'x'.join(map(str, shape))}", path,
                "split the extra dimension into separate runs (or echoes: echo-<index>), or convert the DICOMs "
                "again")
        if shape[3] < 1:
            raise BIDSError("the BOLD series has no volumes (time dimension 0)", path,
                            "the conversion failed: convert the DICOMs again")
        info.shape = list(shape)
        info.zooms = list(zooms)
        info.n_volumes = int(shape[3])
        self._check_header_tr(f, info, header_tr, chain)
        if info.slice_timing is not None:
            direction = str(info.metadata.get("SliceEncodingDirection", "k")).rstrip("-")
            axis = {"i": 0, "j": 1, "k": 2}.get(direction, 2)
            n_slices = shape[axis]
            if len(info.slice_timing) != n_slices:
                src = self.source_of("SliceTiming", chain)
                raise BIDSError(
                    f"SliceTiming has {len(info.slice_timing)} values but the image has {n_slices} slices "
                    f"(axis {direction})", path,
                    f"fix SliceTiming in {src}: one onset per slice (or SliceEncodingDirection if the slices "
                    "are not along k)")

    def _check_header_tr(self, f: _File, info: BoldInfo, header_tr: float | None, chain: list[str]) -> None:
        """The NIfTI header's TR against RepetitionTime (BIDS: the sidecar wins). A header TR
        1000 times the sidecar's is milliseconds labelled as seconds (nibabel's example4d.nii.gz
        is such a file): explained, never used. Unset header TRs (0 or 1) are not compared."""
        tr = info.repetition_time
        if header_tr is None or header_tr in (0.0, 1.0) or abs(header_tr - tr) <= 1e-3 * tr:
            return
        src = self.source_of("RepetitionTime", chain)
        if abs(header_tr / 1000.0 - tr) <= 1e-3 * tr:
            self.warn(f"the NIfTI header gives TR = {header_tr:g} s, 1000 times RepetitionTime = {tr:g} s in {src}: "
                      "the header holds milliseconds labelled as seconds. NeuroFuse uses RepetitionTime; tools "
                      "that read the header (FSL, AFNI, nipy) would take the TR as "
                      f"{header_tr:g} s", f.rel,
                      "fix the header (e.g. nibabel: img.header.set_zooms(zooms[:3] + (TR,)) with TR in seconds) "
                      "before giving this file to other tools")
        else:
            self.warn(f"the NIfTI header gives TR = {header_tr:g} s but RepetitionTime = {tr:g} s in {src}; "
                      "NeuroFuse uses RepetitionTime (BIDS: the sidecar wins)", f.rel,
                      "check which is right; correct the sidecar or the header")

    # -- EEG
    def eeg_info(self, f: _File) -> EegInfo:
        md, chain = self.metadata(f)
        path = self.abspath(f.rel)
        fmt = EEG_FORMATS[f.ext.lower()]
        try:
            header = scan_eeg(path, self.volume_marker)
        except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BIDSError(f"cannot read the {fmt} header/markers ({reason})", path,
                            _missing_hint(path) or f"check that the file and its companions are complete {fmt} "
                            "files") from None
        side_sf = md.get("SamplingFrequency")
        if side_sf is not None and (not _is_number(side_sf) or side_sf <= 0):
            raise BIDSError(f"SamplingFrequency must be a positive number (Hz), got {_describe(side_sf)}",
                            self.abspath(self.source_of("SamplingFrequency", chain)),
                            "write it as a JSON number without quotes, e.g. 5000")
        line = md.get("PowerLineFrequency")
        if line is not None and line != "n/a" and (not _is_number(line) or line <= 0):
            raise BIDSError(f"PowerLineFrequency must be a positive number (Hz) or \"n/a\", got {_describe(line)}",
                            self.abspath(self.source_of("PowerLineFrequency", chain)),
                            "write the mains frequency as a JSON number, e.g. \"PowerLineFrequency\": 50")
        sfreq = header.sampling_frequency
        if sfreq is None:
            if side_sf is None:
                raise BIDSError("the sampling frequency is unknown: no SamplingFrequency in the JSON sidecars and "
                                "none in the file header", path, "add \"SamplingFrequency\": <Hz> to its _eeg.json")
            sfreq = float(side_sf)
        elif side_sf is not None and abs(float(side_sf) - sfreq) > 1e-6 * sfreq:
            self.warn(f"SamplingFrequency {side_sf} Hz in {self.source_of('SamplingFrequency', chain)} disagrees "
                      f"with the file header ({sfreq:g} Hz); the header is used", f.rel,
                      "correct SamplingFrequency in the sidecar")
        if self.check_images and f.ext.lower() == ".vhdr":
            check_brainvision(path)
        if (self.check_images and header.onsets is not None and header.onsets.size and header.n_samples is not None
                and int(header.onsets[-1]) >= header.n_samples):
            late = int(np.count_nonzero(header.onsets >= header.n_samples))
            raise BIDSError(
                f"{late} of the {header.onsets.size} '{self.volume_marker}' markers lie after the end of the "
                f"recording ({header.n_samples} samples = {header.n_samples / sfreq:.1f} s; the last marker is at "
                f"sample {int(header.onsets[-1])})", path,
                "the data file is incomplete (copy it again) or the marker file belongs to another recording")
        info = EegInfo(path=f.rel, format=fmt, sampling_frequency=float(sfreq), metadata=md, sidecars=chain,
                       volume_marker=self.volume_marker, n_samples=header.n_samples)
        if header.marker_file is not None:
            marker = os.path.normpath(header.marker_file)
            prefix = self.root_str + os.sep
            info.marker_file = marker[len(prefix):].replace(os.sep, "/") if marker.startswith(prefix) else marker
        if header.onsets is not None:
            self._onsets[f.rel] = header.onsets
            info.n_volume_markers = int(header.onsets.size)
            if header.onsets.size >= 2:
                info.tr_from_markers = implied_tr(header.onsets, sfreq)
        return info

    def check_in_scanner(self, run: Run) -> None:
        """An EEG run declared in-scanner (``eeg_recorded_in="scanner"``) must have volume markers."""
        eeg = run.eeg
        if eeg is None or self.eeg_recorded_in != "scanner" or eeg.n_volume_markers:
            return
        where = self.abspath(eeg.marker_file or eeg.path)
        if not self.volume_marker:
            raise BIDSError("eeg.recorded_in is 'scanner' but no volume_marker is set, so the gradient artifact cannot "
                            "be located", where, "set eeg.volume_marker to the scanner's volume trigger (e.g. "
                            "'Response/R128')")
        if eeg.marker_file is None:
            raise BIDSError("this EEG run is declared recorded in the scanner (eeg.recorded_in: scanner) but has no "
                            "marker file, so it has no volume markers", self.abspath(eeg.path),
                            "add the .vmrk marker file named in the .vhdr (MarkerFile=), or set eeg.recorded_in: auto")
        raise BIDSError(
            f"no '{self.volume_marker}' volume markers in this EEG, but the run is declared recorded in the scanner "
            f"(eeg.recorded_in: scanner); markers present: {self._names_in(eeg)}", where,
            "set eeg.volume_marker to the name of the MR volume trigger (Type/Description), or eeg.recorded_in: auto "
            "(runs without markers are then processed as recorded outside the scanner)")

    def check_tr(self, run: Run) -> None:
        """Volume markers vs RepetitionTime and volume count, and missing markers in an in-scanner EEG."""
        eeg, bold = run.eeg, run.bold
        assert eeg is not None and bold is not None
        if not self.volume_marker or self.eeg_recorded_in == "outside":
            return
        if eeg.marker_file is None:
            self.warn(f"no marker file next to this EEG although it is paired with {bold.path.rsplit('/', 1)[-1]}: "
                      "volume markers cannot be checked", eeg.path,
                      "add the .vmrk marker file (named in the .vhdr MarkerFile=) to the dataset")
            return
        if not eeg.n_volume_markers:
            found = self._names_in(eeg)
            self.warn(
                f"no '{self.volume_marker}' volume markers in this EEG although it is paired with "
                f"{bold.path.rsplit('/', 1)[-1]} (recorded outside the scanner?); markers present: {found}",
                eeg.marker_file or eeg.path,
                "set volume_marker to the name of the MR volume trigger (Type/Description), or ignore this if "
                "the EEG was recorded outside the scanner (eeg.recorded_in: outside silences this)")
            return
        tr = bold.repetition_time
        if eeg.tr_from_markers is not None:
            tol = tr_tolerance(eeg.sampling_frequency, tr, _CLOCK_DRIFT)
            if abs(eeg.tr_from_markers - tr) > tol:
                raise BIDSError(
                    f"the {eeg.n_volume_markers} '{self.volume_marker}' markers imply TR = {eeg.tr_from_markers:.6g} s "
                    f"but RepetitionTime of {bold.path.rsplit('/', 1)[-1]} is {tr:g} s (tolerance {tol:.2g} s: one "
                    f"sample at {eeg.sampling_frequency:g} Hz + clock drift)",
                    self.abspath(eeg.marker_file or eeg.path),
                    f"check RepetitionTime in {self.source_of('RepetitionTime', bold.sidecars)}, that volume_marker "
                    "names one marker per volume (not per slice), and that no markers are missing")
        onsets = self._onsets.get(eeg.path)
        if onsets is not None and onsets.size >= 2:
            gaps = np.flatnonzero(np.diff(onsets) > 1.5 * tr * eeg.sampling_frequency)
            if gaps.size:
                self.warn(f"{gaps.size} gap(s) longer than 1.5 x RepetitionTime between '{self.volume_marker}' "
                          f"markers, the first after {onsets[gaps[0]] / eeg.sampling_frequency:.2f} s",
                          eeg.marker_file or eeg.path,
                          "volume markers are missing or the recording was paused: check the marker file")
        if bold.n_volumes is not None:
            self._check_volume_count(eeg, bold)

    def _check_volume_count(self, eeg: EegInfo, bold: BoldInfo) -> None:
        """Volume markers (less the dummy scans) against the BOLD volumes, with the tolerance."""
        n_markers = int(eeg.n_volume_markers or 0)
        n_used = n_markers - self.dummy_scans
        if n_used == bold.n_volumes:
            return
        name = bold.path.rsplit("/", 1)[-1]
        dummies = f" ({self.dummy_scans} of them dummy scans, eeg.dummy_scans)" if self.dummy_scans else ""
        problem = (f"{n_markers} '{self.volume_marker}' volume markers{dummies} but {name} has {bold.n_volumes} "
                   f"volumes (difference {n_used - bold.n_volumes:+d})")
        where = eeg.marker_file or eeg.path
        if self.mismatch_tolerance is not None and abs(n_used - bold.n_volumes) > self.mismatch_tolerance:
            raise BIDSError(
                f"{problem}, more than eeg.volume_mismatch_tolerance = {self.mismatch_tolerance}", self.abspath(where),
                "check that the EEG belongs to this BOLD run and that no markers are missing; set eeg.dummy_scans to "
                "the number of leading markers sent for volumes the BOLD file does not hold, or raise "
                "eeg.volume_mismatch_tolerance to accept the difference")
        self.warn(problem, where, "dummy scans or an EEG recording that stopped early: the EEG pipeline aligns on "
                  "the markers (set eeg.dummy_scans if the first markers belong to dummy scans)")

    def _names_in(self, eeg: EegInfo) -> str:
        """The marker names a recording does have (read in full only for this message)."""
        try:
            names = marker_counts(read_eeg_header(self.abspath(eeg.path)).markers or [])
        except Exception:  # noqa: BLE001 - the message is a courtesy
            return "unknown"
        if not names:
            return "none"
        return _preview([f"{n} ({c})" for n, c in names.most_common()], 4)


# --------------------------------------------------------------------------- images


def _gunzip_size(path: str) -> tuple[int, bool, str | None]:
    """Decompressed size of a (multi-member) gzip file, whether it ended cleanly, and any error."""
    total = 0
    decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                while chunk:
                    total += len(decomp.decompress(chunk))
                    chunk = decomp.unused_data if decomp.eof else b""
                    if not chunk.strip(b"\0"):  # zero padding after the last member is harmless
                        chunk = b""
                    if decomp.eof and chunk:  # next gzip member
                        decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
        total += len(decomp.flush())
    except zlib.error as exc:
        return total, False, str(exc)
    return total, decomp.eof, None


def _missing_hint(path: str) -> str | None:
    """Hint for a dangling symlink (a DataLad/git-annex file whose content was not fetched)."""
    if os.path.islink(path) and not os.path.exists(path):
        return "the file is a broken symlink (a DataLad/git-annex file not fetched?): run 'datalad get' on it"
    return None


def check_nifti(path: str) -> tuple[tuple[int, ...], tuple[float, ...], float | None]:
    """Shape, zooms and the header's TR in seconds (``None`` if it has none) of a NIfTI
    image; :class:`BIDSError` if unreadable or truncated."""
    import nibabel as nib

    try:
        img = nib.load(path)
        header = img.header
        shape = tuple(int(n) for n in img.shape)
        zooms = tuple(float(z) for z in header.get_zooms())
        header_tr = None
        if len(zooms) > 3 and zooms[3] > 0 and hasattr(header, "get_xyzt_units"):
            header_tr = zooms[3] * {"msec": 1e-3, "usec": 1e-6}.get(header.get_xyzt_units()[1], 1.0)  # -> s
        # the offset nibabel really uses (vox_offset 0 in old single files means 352)
        offset = int(getattr(img.dataobj, "offset", header.get_data_offset()))
        itemsize = header.get_data_dtype().itemsize
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for bad files
        size = os.path.getsize(path) if os.path.exists(path) else -1
        reason = "the file is empty" if size == 0 else (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BIDSError(f"cannot read the NIfTI header ({reason})", path,
                        _missing_hint(path) or "copy the file again from the source; it is damaged or not a NIfTI "
                        "image") from None
    spatial = zooms[:3]
    if len(spatial) < 3 or not all(math.isfinite(z) and z > 0 for z in spatial) \
            or not np.all(np.isfinite(img.affine)):
        raise BIDSError(f"the header has no usable voxel size or orientation (voxel size "
                        f"{' x '.join(f'{z:g}' for z in spatial)} mm, affine finite: "
                        f"{bool(np.all(np.isfinite(img.affine)))})", path,
                        "the converter wrote a broken header: convert the DICOMs again (e.g. dcm2niix) or fix "
                        "pixdim/qform/sform with nibabel")
    dtype = header.get_data_dtype()
    if dtype.kind not in "iuf" or dtype.names is not None:
        raise BIDSError(f"unsupported voxel data type {dtype.name if dtype.names is None else 'RGB/structured'} "
                        f"(NIfTI datatype code {int(header['datatype'])}): voxels must be real numbers", path,
                        "convert the image to integers or float32 (e.g. nibabel, or fslmaths IN OUT -odt float); "
                        "complex or RGB images are not magnitude data")
    expected = offset + int(np.prod(shape, dtype=np.int64)) * itemsize
    hint = "the file is incomplete (interrupted copy or download?): copy it again from the source"
    if path.endswith(".gz"):
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            if fh.tell() >= 18:
                fh.seek(-4, 2)
                isize = int.from_bytes(fh.read(4), "little")
            else:
                isize = -1
        if isize != expected % (1 << 32):  # confirm by decompressing (multi-member gzip, >4 GiB, damage)
            total, complete, error = _gunzip_size(path)
            if error or not complete:
                why = f"damaged ({error})" if error else "truncated"
                raise BIDSError(f"image is {why}: the gzip stream ends after {total} of {expected} bytes", path,
                                hint)
            if total < expected:
                raise BIDSError(f"image is truncated: it decompresses to {total} bytes, the header needs {expected}",
                                path, hint)
    else:
        size = os.path.getsize(path)
        if size < expected:
            raise BIDSError(f"image is truncated: {size} bytes on disk, the header needs {expected}", path, hint)
    return shape, zooms, header_tr


def check_brainvision(path: str) -> None:
    """The binary data file a ``.vhdr`` names: present, a supported format, whole samples, not short.

    Reads the header and ``stat``s the data file; :class:`BIDSError` names the file and the fix.
    """
    info = read_vhdr(path)
    with open(path, "rb") as fh:
        first = fh.read(64)
    if first.strip() and not first.lstrip(b"\xef\xbb\xbf").startswith(b"Brain"):
        raise BIDSError(f"not a BrainVision header (it starts with {first[:30]!r})", path,
                        "a .vhdr starts with 'Brain Vision Data Exchange Header File'; copy the file again or "
                        "export the recording again")
    if info.data_file is None:
        if info.n_channels is None and info.sampling_frequency is None:
            return  # an empty placeholder header (dry-run skeletons): nothing to check
        raise BIDSError("the BrainVision header names no DataFile", path,
                        "add DataFile=<name>.eeg to [Common Infos], or export the recording again")
    data = os.path.join(os.path.dirname(path), info.data_file)
    if not os.path.isfile(data):
        raise BIDSError(f"the data file {info.data_file} named in DataFile= does not exist", path,
                        _missing_hint(data) or "copy the .eeg file beside its .vhdr, or correct DataFile= "
                        "(BIDS renames all three files of a recording together)")
    if (info.data_format or "BINARY").upper() != "BINARY":
        return  # ASCII exports: MNE checks them when reading
    if info.bytes_per_sample is None or info.binary_format is None \
            or info.binary_format.upper() not in ("INT_16", "INT_32", "IEEE_FLOAT_32"):
        raise BIDSError(f"unsupported BinaryFormat {info.binary_format!r} in [Binary Infos]", path,
                        "export the recording as INT_16, INT_32 or IEEE_FLOAT_32 (the formats MNE reads)")
    if not info.n_channels:
        raise BIDSError("NumberOfChannels is missing or not a whole number", path,
                        "set NumberOfChannels=<n> in [Common Infos]")
    size = os.path.getsize(data)
    frame = info.n_channels * info.bytes_per_sample
    if size == 0:
        raise BIDSError(f"the data file {info.data_file} is empty", path,
                        "copy the recording again from the source")
    if info.data_points is not None and size < info.data_points * frame:
        raise BIDSError(
            f"the data file {info.data_file} is truncated: {size} bytes, DataPoints={info.data_points} x "
            f"{info.n_channels} channels x {info.bytes_per_sample} bytes needs {info.data_points * frame}",
            data, "the file is incomplete (interrupted copy or export?): copy it again from the source")
    if size % frame:
        raise BIDSError(
            f"the data file {info.data_file} is truncated or does not match its header: {size} bytes is not a "
            f"whole number of samples of {info.n_channels} channels x {info.bytes_per_sample} bytes "
            f"({info.binary_format})", data,
            "copy it again from the source, or correct NumberOfChannels/BinaryFormat in the .vhdr")


# --------------------------------------------------------------------------- build


def build_index(
    bids_dir: str | PathLike,
    *,
    participant_label: str | Iterable[str] = (),
    exclude_participant_label: str | Iterable[str] = (),
    task: str | Iterable[str] = (),
    session: str | Iterable[str] = (),
    volume_marker: str | None = "Response/R128",
    unpaired_eeg: str = "warn",
    check_images: bool = True,
    eeg_recorded_in: str = "auto",
    dummy_scans: int = 0,
    volume_mismatch_tolerance: int | None = None,
) -> DatasetIndex:
    """Index a BIDS dataset: discover, merge metadata, pair EEG with BOLD, check.

    Parameters
    ----------
    bids_dir:
        Root of the raw BIDS dataset (the folder with ``dataset_description.json``).
    participant_label, exclude_participant_label, task, session:
        Filters applied while walking; labels with or without their ``sub-``/``ses-``/
        ``task-`` prefix, one string or a list. Unknown participant labels are an error.
    volume_marker:
        Name (``Type/Description``) of the EEG marker sent at each MR volume; its count
        and mean interval are stored and checked against ``RepetitionTime``. ``None``
        skips marker checks (markers are still not needed to index).
    unpaired_eeg:
        An EEG run with no BOLD partner (in a dataset that has BOLD): ``"warn"`` keeps
        it as an EEG-only run and adds a warning, ``"error"`` raises, ``"ignore"`` keeps
        it silently.
    check_images:
        Read every BOLD and used T1w NIfTI header (shape, zooms, volumes, voxel type),
        check SliceTiming against the number of slices, detect truncated images and
        check BrainVision data files against their headers. Off: no image is opened.
    eeg_recorded_in:
        ``"auto"`` (volume markers decide: a paired EEG without them gets a warning and is
        treated as recorded outside the scanner), ``"scanner"`` (an EEG run without volume
        markers is an error) or ``"outside"`` (no marker checks).
    dummy_scans:
        Leading volume markers sent for volumes that the BOLD file does not hold; they are
        subtracted before the marker count is compared with the BOLD volumes.
    volume_mismatch_tolerance:
        Largest difference between that count and the BOLD volumes accepted (with a
        warning); beyond it a :class:`BIDSError` names both numbers. ``None``: always a
        warning.

    Raises
    ------
    BIDSError
        For every problem that makes the dataset unusable, with a one-line message
        naming the file and what to do.
    """
    if unpaired_eeg not in _UNPAIRED_POLICIES:
        raise ValueError(f"unpaired_eeg must be one of {_UNPAIRED_POLICIES}, got {unpaired_eeg!r}")
    if eeg_recorded_in not in ("auto", "scanner", "outside"):
        raise ValueError(f"eeg_recorded_in must be 'auto', 'scanner' or 'outside', got {eeg_recorded_in!r}")
    try:
        return _build_index(bids_dir, participant_label=participant_label,
                            exclude_participant_label=exclude_participant_label, task=task, session=session,
                            volume_marker=volume_marker, unpaired_eeg=unpaired_eeg, check_images=check_images,
                            eeg_recorded_in=eeg_recorded_in, dummy_scans=dummy_scans,
                            volume_mismatch_tolerance=volume_mismatch_tolerance)
    except BIDSError:
        raise
    except OSError as exc:  # a folder or file the walk could not open
        where = exc.filename or bids_dir
        raise BIDSError(f"cannot read while indexing ({exc.strerror or type(exc).__name__})", where,
                        "check that the dataset is readable by this user and fully copied") from None
    except Exception as exc:  # noqa: BLE001 - a dataset nobody anticipated: one line, traceback kept in a file
        import tempfile
        import traceback

        fd, log = tempfile.mkstemp(prefix="neurofuse-index-error-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(traceback.format_exc())
        reason = (str(exc).strip().splitlines() or [""])[0][:300]
        raise BIDSError(f"indexing failed on something this dataset has that NeuroFuse does not expect "
                        f"({type(exc).__name__}: {reason})", bids_dir,
                        f"the traceback is in {log}: it names the file being read; please report it with that "
                        "log") from None


def _build_index(bids_dir, *, participant_label, exclude_participant_label, task, session, volume_marker,
                 unpaired_eeg, check_images, eeg_recorded_in, dummy_scans, volume_mismatch_tolerance) -> DatasetIndex:
    """:func:`build_index` without its safety net."""
    root = Path(bids_dir).expanduser()
    if not root.exists():
        raise BIDSError("the BIDS folder does not exist", root, "check bids_dir (e.g. --config bids_dir=/path/to/dataset)")
    if not root.is_dir():
        raise BIDSError("bids_dir is a file, not a folder", root, "point bids_dir at the dataset's root folder")
    root = root.resolve()
    if not (root / "dataset_description.json").is_file():
        raise BIDSError("not a BIDS dataset: dataset_description.json is missing", root,
                        "point bids_dir at the dataset root (the folder with dataset_description.json and the "
                        "sub-* folders), or add dataset_description.json with Name and BIDSVersion")
    filters = {
        "participant_label": list(_labels(participant_label, "sub")),
        "exclude_participant_label": list(_labels(exclude_participant_label, "sub")),
        "task": list(_labels(task, "task")),
        "session": list(_labels(session, "ses")),
        "volume_marker": volume_marker,
        "unpaired_eeg": unpaired_eeg,
        "check_images": bool(check_images),
        "eeg_recorded_in": eeg_recorded_in,
        "dummy_scans": int(dummy_scans),
        "volume_mismatch_tolerance": volume_mismatch_tolerance,
    }
    ix = _Indexer(root, subjects=tuple(filters["participant_label"]), exclude=tuple(filters["exclude_participant_label"]),
                  tasks=tuple(filters["task"]), sessions=tuple(filters["session"]), volume_marker=volume_marker,
                  unpaired_eeg=unpaired_eeg, check_images=check_images, eeg_recorded_in=eeg_recorded_in,
                  dummy_scans=dummy_scans, volume_mismatch_tolerance=volume_mismatch_tolerance)
    description = ix.load_json("dataset_description.json")
    present = ix.discover()

    # --- anat: T1w per subject, and per (subject, session)
    anat: dict[str, list[str]] = defaultdict(list)
    t1_by_session: dict[tuple[str, str | None], list[_File]] = defaultdict(list)
    t1_by_subject: dict[str, list[_File]] = defaultdict(list)
    for f in ix.t1ws:
        anat[f.entities["sub"]].append(f.rel)
        t1_by_session[(f.entities["sub"], f.entities.get("ses"))].append(f)
        t1_by_subject[f.entities["sub"]].append(f)
    for sub in anat:
        anat[sub].sort(key=_natural)
    t1_choice: dict[tuple[str, str | None], str | None] = {}

    def t1w_for(sub: str, ses: str | None) -> str | None:
        """Same session first; then any session; fewest entities (no acq-/run-), then name order."""
        if (sub, ses) not in t1_choice:
            pool = t1_by_session.get((sub, ses)) or t1_by_subject.get(sub)
            t1_choice[(sub, ses)] = min(pool, key=lambda f: (len(f.entities), _natural(f.rel))).rel if pool else None
            if t1_choice[(sub, ses)] and check_images:
                ix.check_t1w(t1_choice[(sub, ses)])
        return t1_choice[(sub, ses)]

    # --- BOLD runs (duplicates are errors)
    runs: dict[str, Run] = {}
    bold_files = _unique_by_run(ix, ix.bolds, "two BOLD files for the same run",
                                "keep one of them (e.g. delete the uncompressed .nii) or give them different entities")
    for key, f in bold_files.items():
        runs[key] = Run(id=run_prefix(f.entities), subdir=subject_dir(f.entities), entities=dict(f.entities),
                        bold=ix.bold_info(f), t1w=t1w_for(f.entities["sub"], f.entities.get("ses")))

    # --- EEG
    eeg_files = _unique_by_run(ix, ix.eegs, "two EEG recordings for the same run",
                               "keep one format per recording, or give them different entities (e.g. acq-)")
    eeg_infos: dict[str, EegInfo] = {}
    for key, f in eeg_files.items():
        eeg_infos[key] = ix.eeg_info(f)

    unpaired: list[str] = []
    for key in eeg_files:
        run = runs.get(key)
        if run is not None:
            eeg_infos[key].pairing = "entities"
            run.eeg = eeg_infos[key]
        else:
            unpaired.append(key)

    have_bold = bool(runs)
    if unpaired and have_bold:
        unpaired = _pair_by_acq_time(ix, unpaired, eeg_files, eeg_infos, bold_files, runs)
    for key in unpaired:
        f = eeg_files[key]
        runs[key] = Run(id=run_prefix(f.entities), subdir=subject_dir(f.entities), entities=dict(f.entities),
                        eeg=eeg_infos[key], t1w=t1w_for(f.entities["sub"], f.entities.get("ses")))

    ordered = sorted(runs.values(), key=lambda r: _natural(r.id))
    for run in ordered:
        ix.check_in_scanner(run)
        if run.bold is not None and run.eeg is not None:
            ix.check_tr(run)

    if not ordered:
        _raise_empty(ix, present, filters)

    return DatasetIndex(
        bids_dir=str(root),
        name=str(description.get("Name", root.name)),
        runs=ordered,
        anat={k: v for k, v in sorted(anat.items(), key=lambda kv: _natural(kv[0]))},
        warnings=ix.warnings,
        filters=filters,
    )


def _unique_by_run(ix: _Indexer, files: Iterable[_File], problem: str, hint: str) -> dict[str, _File]:
    """Files keyed by run; a second file for the same run is an error naming both."""
    unique: dict[str, _File] = {}
    for f in files:
        key = _run_key(f.entities)
        if key in unique:
            first, second = unique[key].rel.rsplit("/", 1)[-1], f.rel.rsplit("/", 1)[-1]
            raise BIDSError(f"{problem}: {first} and {second}", ix.abspath(f.rel), hint)
        unique[key] = f
    return unique


def _bold_window(run: Run, eeg: EegInfo) -> float:
    bold = run.bold
    assert bold is not None
    if bold.n_volumes:
        window = bold.n_volumes * bold.repetition_time
    elif eeg.n_volume_markers:
        window = eeg.n_volume_markers * bold.repetition_time
    else:
        window = DEFAULT_PAIRING_WINDOW_S
    return max(window, _MIN_PAIRING_WINDOW_S)


def _pair_by_acq_time(ix: _Indexer, unpaired: list[str], eeg_files: dict[str, _File], eeg_infos: dict[str, EegInfo],
                      bold_files: dict[str, _File], runs: dict[str, Run]) -> list[str]:
    """Pair leftover EEG runs with leftover BOLD runs by scans.tsv acq_time; return those left."""
    free: dict[str, list[str]] = defaultdict(list)  # subdir -> BOLD keys without EEG
    for key, run in runs.items():
        if run.eeg is None:
            free[run.subdir].append(key)
    proposals: dict[str, str] = {}
    reasons: dict[str, tuple[str, str]] = {}
    for key in unpaired:
        f = eeg_files[key]
        subdir = subject_dir(f.entities)
        scans_rel = ix.scans.get(subdir)
        name = f.rel.rsplit("/", 1)[-1]
        no_scans = f"there is no {subdir}/{subdir.replace('/', '_')}_scans.tsv"
        candidates = [b for b in free.get(subdir, ()) if runs[b].entities.get("task") == f.entities.get("task")]
        if not candidates:
            reasons[key] = ("no BOLD run of the same subject, session and task to pair it with",
                            "name the EEG with the entities of its BOLD run (task, acq, run) if they were recorded "
                            "together")
            continue
        times = ix.scan_times(subdir)
        t_eeg = times.get(f.rel[len(subdir) + 1:])
        if t_eeg is None:
            reasons[key] = ("no BOLD run with the same entities and no acq_time to pair it by "
                            f"({f'{scans_rel} lists none for {name}' if scans_rel else no_scans})",
                            "name the EEG with the entities of its BOLD run, or give both acq_time in the "
                            "scans.tsv")
            continue
        near: list[tuple[float, str]] = []
        for b in candidates:
            t_bold = times.get(bold_files[b].rel[len(subdir) + 1:])
            if t_bold is not None and abs(t_eeg - t_bold) <= _bold_window(runs[b], eeg_infos[key]):
                near.append((abs(t_eeg - t_bold), b))
        if len(near) == 1:
            proposals[key] = near[0][1]
        elif not near:
            reasons[key] = (f"no BOLD run of {subdir} task-{f.entities.get('task')} started within one run duration "
                            f"of its acq_time in {scans_rel}",
                            "name the EEG with the entities of its BOLD run, or correct acq_time")
        else:
            names = ", ".join(runs[b].id for _, b in sorted(near))
            reasons[key] = (f"pairing by acq_time is ambiguous: {names} all started within one run duration",
                            "name the EEG with the entities of its BOLD run (task, acq, run)")
    claims: dict[str, list[str]] = defaultdict(list)
    for key, b in proposals.items():
        claims[b].append(key)
    left: list[str] = []
    for key in unpaired:
        b = proposals.get(key)
        if b is not None and len(claims[b]) == 1:
            eeg_infos[key].pairing = "acq_time"
            runs[b].eeg = eeg_infos[key]
            continue
        if b is not None:
            others = ", ".join(eeg_files[k].rel.rsplit("/", 1)[-1] for k in claims[b] if k != key)
            reasons[key] = (f"pairing by acq_time is ambiguous: {others} also started closest to {runs[b].id}",
                            "name the EEG with the entities of its BOLD run (task, acq, run)")
        problem, hint = reasons[key]
        path = eeg_files[key].rel
        if ix.unpaired_eeg == "error":
            raise BIDSError(f"EEG run without a BOLD partner: {problem}", ix.abspath(path), hint)
        if ix.unpaired_eeg == "warn":
            ix.warn(f"EEG run without a BOLD partner, kept as EEG-only (no fusion): {problem}", path, hint)
        left.append(key)
    return left


def _raise_empty(ix: _Indexer, present: list[str], filters: dict[str, Any]) -> None:
    used = {k: v for k, v in filters.items() if k in ("participant_label", "exclude_participant_label", "task",
                                                         "session") and v}
    if not present:
        raise BIDSError("no sub-<label> folders: the dataset is empty", ix.root_str,
                        "put each subject's data in sub-<label>/[ses-<label>/]func|eeg|anat/")
    if used:
        shown = "; ".join(f"{k}={','.join(v)}" for k, v in used.items())
        raise BIDSError(
            f"no BOLD or EEG runs left after the filters ({shown})", ix.root_str,
            f"tasks in the dataset: {_preview(sorted(ix.seen_tasks))}; sessions: "
            f"{_preview(sorted(ix.seen_sessions, key=_natural)) if ix.seen_sessions else 'none (no ses- folders)'}; "
            "change or remove the filters")
    raise BIDSError(
        "no BOLD or EEG runs found", ix.root_str,
        "expected sub-<label>/[ses-<label>/]func/*_bold.nii[.gz] or eeg/*_eeg.(vhdr|edf|bdf|set|fif)")
