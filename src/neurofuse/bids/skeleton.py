"""Write dry BIDS skeletons: the folder layout of a dataset with empty or tiny files.

Used by the tests (specs in ``tests/unit/data/skeletons/*.yaml``) and by the index
benchmark (1,000 subjects). A *spec* is a plain dict::

    subjects: ["01", "02"]          # expands {sub} in paths
    sessions: ["1", "2"]            # expands {ses}; omit for a dataset without sessions
    dataset_description: {...}      # optional; a minimal valid one is written by default
    files:
      task-rest_bold.json: {RepetitionTime: 2.0}           # dict/list -> JSON
      sub-{sub}/ses-{ses}/func/sub-{sub}_ses-{ses}_task-rest_bold.nii.gz: null   # empty file
      sub-{sub}/ses-{ses}/sub-{sub}_ses-{ses}_scans.tsv: "filename\\tacq_time\\n..."   # text
      sub-01/func/sub-01_task-rest_bold.nii.gz: {nifti: {shape: [4, 4, 3, 10]}}   # a real image

Values: ``None`` writes an empty file; a string is written as UTF-8 text (``{sub}``
and ``{ses}`` are substituted in it too); a dict or list is written as JSON, except
for ``.nii``/``.nii.gz`` paths where ``{"nifti": {...}}`` writes a real NIfTI-1
image (keys ``shape``, ``zooms``, ``dtype``, ``truncate`` = bytes to cut off the end)
for ``.vmrk`` paths where ``{"markers": [[type, description, sample0], ...]}`` and/or
``{"volumes": {"n": 10, "interval": 10000, "start": 500, "name": "Response/R128"}}``
(samples) write a BrainVision marker file, and for ``.vhdr`` paths where
``{"vhdr": {"sfreq": 5000}}`` writes a BrainVision header. Other keys of the spec (``expect`` …) are ignored
here, so a test can keep its expectations beside the layout.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

__all__ = ["write_skeleton", "expand_files", "vmrk_text", "vhdr_text"]

_DEFAULT_DESCRIPTION = {"Name": "skeleton", "BIDSVersion": "1.10.0", "DatasetType": "raw"}


def expand_files(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The ``files`` of a spec with ``{sub}``/``{ses}`` expanded: relative path -> value."""
    subjects = [str(s) for s in spec.get("subjects") or []]
    sessions = [str(s) for s in spec.get("sessions") or []]
    out: dict[str, Any] = {}
    for pattern, value in (spec.get("files") or {}).items():
        subs = subjects if "{sub}" in pattern else [None]
        sess = sessions if "{ses}" in pattern else [None]
        if "{sub}" in pattern and not subjects:
            raise ValueError(f"{pattern!r} uses {{sub}} but the spec lists no subjects")
        if "{ses}" in pattern and not sessions:
            raise ValueError(f"{pattern!r} uses {{ses}} but the spec lists no sessions")
        for sub in subs:
            for ses in sess:
                path = pattern.replace("{sub}", sub or "").replace("{ses}", ses or "")
                if isinstance(value, str):
                    out[path] = value.replace("{sub}", sub or "").replace("{ses}", ses or "")
                else:
                    out[path] = value
    return out


def vmrk_text(markers: list[tuple[str, str, int]], data_file: str = "data.eeg") -> str:
    """BrainVision marker file text; ``markers`` are ``(type, description, 0-based sample)``."""
    lines = [
        "Brain Vision Data Exchange Marker File, Version 1.0",
        "",
        "[Common Infos]",
        "Codepage=UTF-8",
        f"DataFile={data_file}",
        "",
        "[Marker Infos]",
        "Mk1=New Segment,,1,1,0,20200101000000000000",
    ]
    for i, (mtype, desc, sample) in enumerate(markers, start=2):
        lines.append(f"Mk{i}={mtype.replace(',', chr(92) + '1')},{desc.replace(',', chr(92) + '1')},{int(sample) + 1},1,0")
    return "\r\n".join(lines) + "\r\n"


def vhdr_text(stem: str, sfreq: float, n_channels: int = 1) -> str:
    """Minimal BrainVision header text for ``<stem>.eeg``/``<stem>.vmrk`` at ``sfreq`` Hz."""
    lines = [
        "Brain Vision Data Exchange Header File Version 1.0",
        "",
        "[Common Infos]",
        "Codepage=UTF-8",
        f"DataFile={stem}.eeg",
        f"MarkerFile={stem}.vmrk",
        "DataFormat=BINARY",
        "DataOrientation=MULTIPLEXED",
        f"NumberOfChannels={n_channels}",
        f"SamplingInterval={1e6 / sfreq:g}",
        "",
        "[Binary Infos]",
        "BinaryFormat=INT_16",
        "",
        "[Channel Infos]",
    ]
    lines += [f"Ch{i}=Ch{i},,0.1,µV" for i in range(1, n_channels + 1)]
    return "\r\n".join(lines) + "\r\n"


def _write_nifti(path: Path, params: Mapping[str, Any]) -> None:
    import nibabel as nib
    import numpy as np

    shape = tuple(int(n) for n in params.get("shape", (4, 4, 3, 5)))
    zooms = tuple(float(z) for z in params.get("zooms", (3.0, 3.0, 3.0, 2.0)[: len(shape)]))
    data = np.zeros(shape, dtype=params.get("dtype", "int16"))
    img = nib.Nifti1Image(data, np.diag([*zooms[:3], 1.0]))
    img.header.set_zooms(zooms[: len(shape)])
    nib.save(img, str(path))
    cut = int(params.get("truncate", 0))
    if cut:
        with open(path, "r+b") as fh:
            fh.truncate(max(path.stat().st_size - cut, 0))


def _write_one(path: Path, value: Any) -> None:
    name = path.name
    if value is None:
        path.touch()
    elif isinstance(value, str):
        path.write_text(value, encoding="utf-8")
    elif isinstance(value, Mapping) and "nifti" in value and name.endswith((".nii", ".nii.gz")):
        _write_nifti(path, value["nifti"] or {})
    elif isinstance(value, Mapping) and name.endswith(".vmrk") and ("markers" in value or "volumes" in value):
        markers = [tuple(m) for m in value.get("markers") or []]
        vol = value.get("volumes")
        if vol:
            mtype, _, desc = str(vol.get("name", "Response/R128")).partition("/")
            start, step = int(vol.get("start", 0)), int(vol["interval"])
            markers += [(mtype, desc, start + i * step) for i in range(int(vol["n"]))]
            markers.sort(key=lambda m: m[2])
        path.write_text(vmrk_text(markers, path.with_suffix(".eeg").name), encoding="utf-8")
    elif isinstance(value, Mapping) and "vhdr" in value and name.endswith(".vhdr"):
        params = value["vhdr"] or {}
        stem = name[: -len(".vhdr")]
        path.write_text(vhdr_text(stem, float(params.get("sfreq", 5000)), int(params.get("channels", 1))),
                        encoding="utf-8")
    elif isinstance(value, (Mapping, list)):
        path.write_text(json.dumps(value, indent=1), encoding="utf-8")
    elif isinstance(value, bytes) and name.endswith(".gz"):
        path.write_bytes(gzip.compress(value))
    else:
        raise ValueError(f"cannot write {value!r} to {name}")


def write_skeleton(root: str | PathLike, spec: Mapping[str, Any]) -> list[Path]:
    """Create the dataset described by ``spec`` under ``root``; return the files written.

    ``dataset_description.json`` is written unless the spec sets
    ``dataset_description: null`` explicitly (to build a "not a BIDS dataset" case).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    files = expand_files(spec)
    if "dataset_description" not in spec:
        files.setdefault("dataset_description.json", dict(_DEFAULT_DESCRIPTION))
    elif spec["dataset_description"] is not None:
        files.setdefault("dataset_description.json", dict(spec["dataset_description"]))
    written: list[Path] = []
    made: set[str] = set()
    for rel, value in files.items():
        path = root / rel
        parent = os.path.dirname(str(path))
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        _write_one(path, value)
        written.append(path)
    return written
