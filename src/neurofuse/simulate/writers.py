"""Deterministic writers for JSON, TSV and NIfTI files (no timestamps, stable bytes)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np


def _plain(obj):
    """Numpy scalars/arrays -> plain Python for JSON."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | Path, obj: Mapping) -> Path:
    """Write ``obj`` as indented UTF-8 JSON (key order kept) with a final newline."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_plain(obj), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def _cell(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return "n/a" if math.isnan(v) else repr(v)
    return str(value)


def write_tsv(path: str | Path, columns: Mapping[str, Sequence]) -> Path:
    """Write a BIDS TSV (tab separated, header row, ``n/a`` for missing, floats as ``repr``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(columns)
    data = [list(columns[n]) for n in names]
    n_rows = {len(c) for c in data}
    if len(n_rows) > 1:
        raise ValueError(f"columns of {path.name} have different lengths: {sorted(n_rows)}")
    lines = ["\t".join(names)]
    for row in zip(*data):
        lines.append("\t".join(_cell(v) for v in row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_nifti(
    path: str | Path,
    data: np.ndarray,
    affine: np.ndarray,
    *,
    xform_code: int = 1,
    tr: float | None = None,
    slice_times: Sequence[float] | None = None,
    intent: str | None = None,
    slope: float | None = None,
    description: str = "neurofuse simulate",
) -> Path:
    """Save a NIfTI-1 image (gzip via nibabel: deterministic, mtime 0).

    ``xform_code`` 1 = scanner anatomical, 4 = MNI152. With ``tr`` the 4th zoom is the
    repetition time (s) and units are mm/s; with ``slice_times`` the slice axis is z and the
    slice timing fields are set. With ``slope`` (a power of two, exactly representable)
    float data are stored as int16 ``rint(data / slope)`` with that NIfTI scale factor,
    which compresses smooth fields far better than float32.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if slope is not None:
        scaled = np.rint(np.asarray(data, dtype=np.float64) / slope)
        if scaled.min() < -32768 or scaled.max() > 32767:
            raise ValueError(f"{path.name}: values do not fit int16 with slope {slope}")
        data = scaled.astype(np.int16)
    img = nib.Nifti1Image(data, affine)
    hdr = img.header
    hdr.set_data_dtype(data.dtype)
    img.set_qform(affine, code=xform_code)
    img.set_sform(affine, code=xform_code)
    if tr is not None:
        zooms = list(hdr.get_zooms())
        zooms[3] = float(tr)
        hdr.set_zooms(zooms)
        hdr.set_xyzt_units("mm", "sec")
    else:
        hdr.set_xyzt_units("mm")
    if slice_times is not None:
        hdr.set_dim_info(slice=2)
        hdr.set_slice_duration(float(tr) / len(slice_times) if tr else 0.0)
        hdr.set_slice_times(list(slice_times))
    if intent is not None:
        hdr.set_intent(intent)
    if slope is not None:
        hdr.set_slope_inter(slope, 0.0)
    hdr["descrip"] = description.encode()[:79]
    nib.save(img, path)
    return path
