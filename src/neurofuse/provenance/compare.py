"""Compare two versions of one output: bytes first, then numbers within a tolerance.

:func:`compare_files` returns a :class:`Comparison` whose ``status`` is

* ``identical`` — same bytes;
* ``within_tolerance`` — bytes differ but the content agrees numerically
  (``numpy.isclose(b, a, rtol, atol)`` for every number; strings equal);
* ``different`` — the content differs (``detail`` names the first difference: NIfTI
  voxel index and both values, TSV row and column, JSON key, FIF channel and sample),
  or the format has no numeric comparison (PNG, SVG, HTML, ...) and the bytes differ
  (for text formats the first differing line is quoted).

Default tolerance: ``rtol=1e-5, atol=1e-6`` — float32 rounding (≈6e-8 relative) with
room for a different summation order, far below any effect the workflow reports.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurofuse.provenance.hashing import sha256_file

DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-6

IDENTICAL = "identical"
WITHIN_TOLERANCE = "within_tolerance"
DIFFERENT = "different"


@dataclass(frozen=True)
class Comparison:
    """Outcome of comparing file ``a`` (reference) with file ``b`` (new)."""

    status: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _close(a: float, b: float, rtol: float, atol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= atol + rtol * abs(b)


def _first_byte_difference(a: Path, b: Path) -> int:
    offset = 0
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            ca, cb = fa.read(1 << 16), fb.read(1 << 16)
            if ca != cb:
                n = min(len(ca), len(cb))
                for i in range(n):
                    if ca[i] != cb[i]:
                        return offset + i
                return offset + n
            if not ca:
                return -1
            offset += len(ca)


def compare_nifti(a: str | os.PathLike, b: str | os.PathLike, *, rtol: float = DEFAULT_RTOL,
                  atol: float = DEFAULT_ATOL) -> Comparison:
    """Compare two NIfTI images: shape, affine, then voxel values (after scaling)."""
    import nibabel as nib

    img_a, img_b = nib.load(os.fspath(a)), nib.load(os.fspath(b))
    if img_a.shape != img_b.shape:
        return Comparison(DIFFERENT, f"shape {img_a.shape} vs {img_b.shape}")
    if not np.allclose(img_a.affine, img_b.affine, rtol=rtol, atol=atol):
        diff = np.abs(img_a.affine - img_b.affine).max()
        return Comparison(DIFFERENT, f"affine differs (max abs difference {diff:.3g})")
    data_a = np.asanyarray(img_a.dataobj)
    data_b = np.asanyarray(img_b.dataobj)
    if data_a.dtype != data_b.dtype:
        dtype_note = f"; dtype {data_a.dtype} vs {data_b.dtype}"
    else:
        dtype_note = ""
    if np.array_equal(data_a, data_b, equal_nan=data_a.dtype.kind == "f"):
        header_a, header_b = img_a.header, img_b.header
        fields = [key for key in header_a.keys() if np.asarray(header_a[key]).tobytes() != np.asarray(header_b[key]).tobytes()]
        where = f"header fields {', '.join(fields)}" if fields else "file bytes only (e.g. gzip header)"
        return Comparison(WITHIN_TOLERANCE, f"voxel data identical; differs in {where}{dtype_note}")
    # Compare one volume at a time: float64 copies of a whole 4D series would need
    # four times its size in memory.
    n_bad, first, max_diff = 0, None, 0.0
    volumes = range(data_a.shape[-1]) if data_a.ndim == 4 else [None]
    for t in volumes:
        part_a = data_a[..., t] if t is not None else data_a
        part_b = data_b[..., t] if t is not None else data_b
        fa = part_a.astype(np.float64)
        fb = part_b.astype(np.float64)
        close = np.isclose(fb, fa, rtol=rtol, atol=atol, equal_nan=True)
        finite = np.isfinite(fa) & np.isfinite(fb)
        if finite.any():
            max_diff = max(max_diff, float(np.abs(fa - fb)[finite].max()))
        if close.all():
            continue
        n_bad += int(close.size - np.count_nonzero(close))
        if first is None:
            flat = int(np.argmin(close.reshape(-1)))
            index = tuple(int(i) for i in np.unravel_index(flat, close.shape))
            first = (index + ((t,) if t is not None else ()), fa[index], fb[index])
    if first is None:
        return Comparison(WITHIN_TOLERANCE, f"all voxels within rtol={rtol:g}, atol={atol:g} "
                                            f"(max abs difference {max_diff:.3g}){dtype_note}")
    index, value_a, value_b = first
    return Comparison(DIFFERENT, f"{n_bad} of {data_a.size} voxels differ beyond rtol={rtol:g}, atol={atol:g} "
                                 f"(max abs difference {max_diff:.3g}); first at voxel {index}: "
                                 f"{float(value_a)!r} vs {float(value_b)!r}{dtype_note}")


def _number(text: str) -> float | None:
    if text.strip().lower() in ("n/a", "nan", ""):
        return math.nan if text.strip() else None
    try:
        return float(text)
    except ValueError:
        return None


def compare_tsv(a: str | os.PathLike, b: str | os.PathLike, *, rtol: float = DEFAULT_RTOL,
                atol: float = DEFAULT_ATOL) -> Comparison:
    """Compare two TSV tables cell by cell (numbers within tolerance, text exactly).

    Rows are counted from 1 for the first data row (the header is row 0).
    """
    with open(a, newline="", encoding="utf-8") as fa, open(b, newline="", encoding="utf-8") as fb:
        rows_a = list(csv.reader(fa, delimiter="\t"))
        rows_b = list(csv.reader(fb, delimiter="\t"))
    header_a = rows_a[0] if rows_a else []
    header_b = rows_b[0] if rows_b else []
    if header_a != header_b:
        return Comparison(DIFFERENT, f"columns differ: {header_a} vs {header_b}")
    if len(rows_a) != len(rows_b):
        return Comparison(DIFFERENT, f"{len(rows_a) - 1} vs {len(rows_b) - 1} data rows")
    max_diff = 0.0
    for r, (row_a, row_b) in enumerate(zip(rows_a[1:], rows_b[1:]), start=1):
        if len(row_a) != len(row_b):
            return Comparison(DIFFERENT, f"row {r}: {len(row_a)} vs {len(row_b)} cells")
        for c, (cell_a, cell_b) in enumerate(zip(row_a, row_b)):
            if cell_a == cell_b:
                continue
            column = header_a[c] if c < len(header_a) else str(c)
            xa, xb = _number(cell_a), _number(cell_b)
            if xa is None or xb is None or not _close(xb, xa, rtol, atol):
                return Comparison(DIFFERENT, f"row {r}, column {column!r}: {cell_a!r} vs {cell_b!r}")
            if not (math.isnan(xa) or math.isnan(xb)):
                max_diff = max(max_diff, abs(xa - xb))
    return Comparison(WITHIN_TOLERANCE, f"all cells within rtol={rtol:g}, atol={atol:g} "
                                        f"(max abs difference {max_diff:.3g})")


def _first_json_difference(a: Any, b: Any, where: str, rtol: float, atol: float) -> str | None:
    if isinstance(a, bool) or isinstance(b, bool) or not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        if type(a) is not type(b):
            return f"{where or '(top)'}: {a!r} vs {b!r}"
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{where}/{key}: only in {'b' if key not in a else 'a'}"
            found = _first_json_difference(a[key], b[key], f"{where}/{key}", rtol, atol)
            if found:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{where or '(top)'}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_json_difference(x, y, f"{where}[{i}]", rtol, atol)
            if found:
                return found
        return None
    if isinstance(a, (int, float)) and not isinstance(a, bool):
        return None if _close(float(b), float(a), rtol, atol) else f"{where or '(top)'}: {a!r} vs {b!r}"
    return None if a == b else f"{where or '(top)'}: {a!r} vs {b!r}"


def compare_json(a: str | os.PathLike, b: str | os.PathLike, *, rtol: float = DEFAULT_RTOL,
                 atol: float = DEFAULT_ATOL) -> Comparison:
    """Compare two JSON documents (numbers within tolerance); name the first differing key."""
    data_a = json.loads(Path(a).read_text(encoding="utf-8"))
    data_b = json.loads(Path(b).read_text(encoding="utf-8"))
    found = _first_json_difference(data_a, data_b, "", rtol, atol)
    if found:
        return Comparison(DIFFERENT, found)
    return Comparison(WITHIN_TOLERANCE, f"same keys and values within rtol={rtol:g}, atol={atol:g}")


def compare_fif(a: str | os.PathLike, b: str | os.PathLike, *, rtol: float = DEFAULT_RTOL,
                atol: float = DEFAULT_ATOL) -> Comparison:
    """Compare two raw FIF recordings (MNE): channels, sampling rate, then samples.

    EEG samples are in volts (~1e-5), so here ``atol`` is relative to each channel's RMS
    amplitude: ``|b - a| <= atol * rms(a) + rtol * |a|``.
    """
    import mne

    raw_a = mne.io.read_raw_fif(os.fspath(a), preload=True, verbose="error")
    raw_b = mne.io.read_raw_fif(os.fspath(b), preload=True, verbose="error")
    if raw_a.ch_names != raw_b.ch_names:
        return Comparison(DIFFERENT, f"channels differ: {raw_a.ch_names[:5]}... vs {raw_b.ch_names[:5]}...")
    if raw_a.info["sfreq"] != raw_b.info["sfreq"] or raw_a.n_times != raw_b.n_times:
        return Comparison(DIFFERENT, f"{raw_a.n_times} samples at {raw_a.info['sfreq']} Hz vs "
                                     f"{raw_b.n_times} at {raw_b.info['sfreq']} Hz")
    data_a, data_b = raw_a.get_data(), raw_b.get_data()
    if np.array_equal(data_a, data_b, equal_nan=True):
        return Comparison(WITHIN_TOLERANCE, "samples identical; differs in the file's header or metadata")
    scale = np.sqrt(np.nanmean(data_a ** 2, axis=1, keepdims=True))
    close = np.abs(data_b - data_a) <= atol * scale + rtol * np.abs(data_a)
    close |= np.isnan(data_a) & np.isnan(data_b)
    max_diff = float(np.nanmax(np.abs(data_b - data_a)))
    if close.all():
        return Comparison(WITHIN_TOLERANCE, f"all samples within rtol={rtol:g}, atol={atol:g} x channel RMS "
                                            f"(max abs difference {max_diff:.3g})")
    channel, sample = (int(i) for i in np.unravel_index(int(np.argmin(close.reshape(-1))), close.shape))
    return Comparison(DIFFERENT, f"{close.size - int(np.count_nonzero(close))} of {close.size} samples differ beyond "
                                 f"rtol={rtol:g}, atol={atol:g} x channel RMS; first at channel "
                                 f"{raw_a.ch_names[channel]!r}, sample {sample} ({sample / raw_a.info['sfreq']:.4f} s): "
                                 f"{data_a[channel, sample]!r} vs {data_b[channel, sample]!r}")


def compare_files(a: str | os.PathLike, b: str | os.PathLike, *, rtol: float = DEFAULT_RTOL,
                  atol: float = DEFAULT_ATOL) -> Comparison:
    """Compare reference ``a`` with ``b``: bytes, then by format (NIfTI, TSV, JSON)."""
    pa, pb = Path(a), Path(b)
    if pa.stat().st_size == pb.stat().st_size and sha256_file(pa) == sha256_file(pb):
        return Comparison(IDENTICAL)
    name = pa.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            return compare_nifti(pa, pb, rtol=rtol, atol=atol)
        if name.endswith(".tsv"):
            return compare_tsv(pa, pb, rtol=rtol, atol=atol)
        if name.endswith(".json"):
            return compare_json(pa, pb, rtol=rtol, atol=atol)
        if name.endswith(".fif"):
            return compare_fif(pa, pb, rtol=rtol, atol=atol)
    except Exception as exc:  # unreadable content: report it, keep comparing the other files
        return Comparison(DIFFERENT, f"could not compare content ({exc.__class__.__name__}: {exc})")
    if name.endswith(TEXT_SUFFIXES):
        line = _first_line_difference(pa, pb)
        if line is not None:
            return Comparison(DIFFERENT, line)
    offset = _first_byte_difference(pa, pb)
    return Comparison(DIFFERENT, f"bytes differ from offset {offset} ({pa.stat().st_size} vs {pb.stat().st_size} bytes; "
                                 "no numeric comparison for this format)")


#: Formats compared line by line when their bytes differ (the detail quotes the first differing line).
TEXT_SUFFIXES = (".svg", ".html", ".htm", ".txt", ".csv", ".xml", ".md", ".yaml", ".yml", ".bidsignore")


def _snippet(line: str, column: int, width: int = 60) -> str:
    start = max(0, column - 20)
    return line[start:start + width]


def _first_line_difference(a: Path, b: Path) -> str | None:
    try:
        lines_a = a.read_text(encoding="utf-8").splitlines()
        lines_b = b.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return None
    for number, (la, lb) in enumerate(zip(lines_a, lines_b), start=1):
        if la != lb:
            column = next((i for i, (x, y) in enumerate(zip(la, lb)) if x != y), min(len(la), len(lb)))
            return (f"text differs from line {number}, column {column + 1}: "
                    f"{_snippet(la, column)!r} vs {_snippet(lb, column)!r} (no numeric comparison for this format)")
    if len(lines_a) != len(lines_b):
        return f"{len(lines_a)} vs {len(lines_b)} lines"
    return None  # only line endings differ: fall back to the byte offset
