"""Atomic file writes: a reader never sees a half-written output at its final path.

Write to a temporary name in the same folder, then ``os.replace`` it into place (atomic
on POSIX file systems). A job killed outright (SIGKILL, power loss) leaves at most a
hidden ``.<name>.tmp-*`` file behind, never a partial file at the output's own path;
:func:`remove_stale_temporaries` clears those when the next run starts.

A full disk, a read-only or unwritable output folder raise a one-line
:class:`~neurofuse.errors.StorageError` that names the output and what to do, and the
temporary file is removed: nothing half-written is left at (or beside) the output path.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from neurofuse.errors import StorageError

#: errno values that mean "this storage cannot take the output" (not a bug in the step).
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}


def storage_error(exc: OSError, path: str | os.PathLike) -> StorageError | None:
    """A :class:`StorageError` for a full disk or an unwritable folder, else ``None``.

    ``path`` is the output being written; the message names it (and, when the folder is
    not writable, the folder).
    """
    target = Path(path)
    if exc.errno in _NO_SPACE:
        what = "the disk quota is exceeded" if exc.errno == errno.EDQUOT else "the disk is full"
        if exc.errno == errno.EFBIG:
            what = "the file is larger than the file system allows"
        return StorageError(f"cannot write this output: {what} ({exc.strerror}); nothing was left at the path",
                            target, f"free space on the disk of {target.parent} (df -h '{target.parent}') or set "
                            "output_dir to a disk with room, then run again")
    if exc.errno in _NOT_WRITABLE:
        folder = _first_existing(target.parent)
        why = "read-only file system" if exc.errno == errno.EROFS else "permission denied"
        return StorageError(f"cannot write in the output folder {folder} ({why})", target,
                            f"make {folder} writable (chmod u+w / mount read-write) or set output_dir to a folder "
                            "you can write to")
    return None


def _first_existing(folder: Path) -> Path:
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder

#: What sits between a target's name and the random part of its temporary file's name.
TEMP_MARK = ".tmp-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it to ``path`` if the block succeeds.

    ``suffix`` keeps an extension that a writer needs to see (e.g. ``.nii.gz``).
    """
    target = Path(path)
    tmp_path = _temporary_beside(target, suffix)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except OSError as exc:
        # the writer ran out of space (or lost permission) part-way: say which output, not where it failed
        error = storage_error(exc, target)
        if error is None:
            raise
        raise error from None
    finally:
        with contextlib.suppress(OSError):
            if tmp_path.exists():
                tmp_path.unlink()


def _temporary_beside(target: Path, suffix: str, kind: str = "") -> Path:
    """A new empty hidden file named after ``target`` in its folder, marked as temporary."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}{TEMP_MARK}{kind}", suffix=suffix, dir=target.parent)
    except OSError as exc:
        raise storage_error(exc, target) or exc from None
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def scratch_path(beside: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a hidden temporary file beside the output ``beside`` for data a job needs only
    while it runs (e.g. the slice-time-corrected series between two steps of one job);
    delete it when the block ends, whether it succeeds or not.

    Its name carries the temporary mark, so a job killed outright leaves it for
    :func:`remove_stale_temporaries`, like an unfinished output.
    """
    tmp_path = _temporary_beside(Path(beside), suffix, kind="scratch-")
    try:
        yield tmp_path
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink()


def remove_stale_temporaries(root: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that killed writers left under ``root``; return them.

    Only call this while no writer can be active under ``root`` (the Snakefile does it
    from ``onstart``, when Snakemake holds the lock of the working directory).
    """
    removed = []
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            if name.startswith(".") and TEMP_MARK in name:
                path = Path(dirpath) / name
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
                removed.append(path)
    return removed


def atomic_write_text(path: str | os.PathLike, text: str, *, only_if_changed: bool = False) -> bool:
    """Write ``text`` to ``path`` atomically. Returns False when nothing had to change."""
    target = Path(path)
    if only_if_changed and target.is_file():
        try:
            if target.read_text(encoding="utf-8") == text:
                return False
        except (OSError, UnicodeDecodeError):
            pass
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return True


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def save_nifti(img, path: str | os.PathLike) -> None:
    """Save a nibabel image atomically (``.nii`` or ``.nii.gz`` from the name)."""
    import nibabel as nib

    suffix = ".nii.gz" if os.fspath(path).endswith(".gz") else ".nii"
    with atomic_path(path, suffix=suffix) as tmp:
        nib.save(img, tmp)


def save_raw(raw, path: str | os.PathLike) -> Path:
    """``raw.save`` (MNE FIF) atomically; the temporary name keeps the ``_eeg.fif``-style ending MNE checks."""
    name = Path(path).name
    with atomic_path(path, suffix="_" + name.rsplit("_", 1)[-1] if "_" in name else "_raw.fif") as tmp:
        raw.save(tmp, overwrite=True, verbose="error")
    return Path(path)


#: ``savefig(metadata=...)`` per format that leaves out the creation date.
_FIGURE_METADATA = {
    "svg": {"Date": None},
    "pdf": {"CreationDate": None, "ModDate": None},
}

#: Salt of matplotlib's SVG element ids (the default is a random UUID per save).
SVG_HASH_SALT = "neurofuse"


def save_figure(fig, path: str | os.PathLike, **savefig_kwargs) -> None:
    """Save a matplotlib figure atomically and byte-reproducibly (format from the extension).

    Matplotlib writes the save time into SVG (``<dc:date>``) and PDF files and, for SVG,
    element ids salted with a random UUID, so the same figure gives different bytes on
    every save. This drops the dates, fixes the salt (``svg.hashsalt``) and writes
    through a file handle so that no (temporary) file name ends up in the file. PNG is
    reproducible as it is. PS/EPS still carry the save time unless ``SOURCE_DATE_EPOCH``
    is set. Other keyword arguments go to ``Figure.savefig``.
    """
    import matplotlib

    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    metadata = dict(_FIGURE_METADATA.get(fmt, {}))
    metadata.update(savefig_kwargs.pop("metadata", None) or {})
    with matplotlib.rc_context({"svg.hashsalt": SVG_HASH_SALT}):
        with atomic_path(path, suffix=f".{fmt}") as tmp, open(tmp, "wb") as handle:
            fig.savefig(handle, format=fmt, metadata=metadata or None, **savefig_kwargs)


def save_sidecar(image_path: str | os.PathLike, payload) -> Path:
    """Write ``payload`` as the JSON sidecar of an image (``x.nii.gz`` -> ``x.json``), atomically."""
    import json

    image = Path(image_path)
    path = image.with_name(image.name.removesuffix(".gz").removesuffix(".nii") + ".json")
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def _interned(obj):
    """``obj`` with every string inside dicts, lists and tuples replaced by its interned copy."""
    import sys
    from collections import OrderedDict

    if isinstance(obj, str):
        return sys.intern(obj)
    if type(obj) in (dict, OrderedDict):
        out = type(obj)((_interned(k), _interned(v)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):  # a module's state_dict: per-module versions, kept
            out._metadata = _interned(obj._metadata)
        return out
    if isinstance(obj, list):
        return [_interned(v) for v in obj]
    if isinstance(obj, tuple) and type(obj) is tuple:
        return tuple(_interned(v) for v in obj)
    return obj


def save_torch(obj, path: str | os.PathLike) -> None:
    """``torch.save`` atomically, with bytes that do not depend on the file name.

    torch names the records inside its zip archive after the file it writes to; saving
    through a buffer names them ``archive`` instead, so the same object always gives the
    same bytes (checkpoints and models compare byte for byte between runs). Strings are
    interned first: pickle writes a repeated string once when it is the same object and
    again when it is an equal copy, so a checkpoint holding both strings from code and
    strings loaded from an earlier checkpoint (a resumed run) would otherwise differ in
    its bytes from an uninterrupted run's.
    """
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(_interned(obj), buffer)
    atomic_write_bytes(path, buffer.getvalue())


def iter_nifti_volumes(path: str | os.PathLike, dtype=None) -> Iterator:
    """Yield the 3D volumes of a 4D NIfTI one at a time, reading the file once, in order.

    For long runs in template space (600 volumes at 2 mm are 2.6 GB as float32) a step
    that needs one volume at a time (DVARS, tissue signals) then holds one volume, not the
    series. Scale factors are applied; ``dtype`` (default float32) is the output type.
    nibabel's per-volume slicing of a ``.nii.gz`` would re-inflate the file from its start
    for every volume; this reads the stream sequentially instead.
    """
    import nibabel as nib
    import numpy as np
    from nibabel.openers import ImageOpener

    img = nib.load(os.fspath(path))
    if img.ndim != 4:
        raise ValueError(f"{os.fspath(path)}: expected a 4D image, got {img.ndim}D")
    header = img.header
    raw = header.get_data_dtype()
    shape = tuple(int(n) for n in img.shape[:3])
    n_bytes = int(np.prod(shape)) * raw.itemsize
    slope, inter = getattr(img.dataobj, "slope", 1.0), getattr(img.dataobj, "inter", 0.0)  # what nibabel applies
    out_dtype = np.dtype(dtype or np.float32)
    offset = int(getattr(img.dataobj, "offset", header.get_data_offset()))
    with ImageOpener(os.fspath(path), "rb") as fh:
        fh.seek(offset)
        for _ in range(int(img.shape[3])):
            buf = fh.read(n_bytes)
            if len(buf) != n_bytes:
                raise ValueError(f"{os.fspath(path)}: the image data end early (truncated file)")
            vol = np.frombuffer(buf, dtype=raw).reshape(shape, order="F").astype(out_dtype)
            if slope != 1:
                vol *= out_dtype.type(slope)
            if inter != 0:
                vol += out_dtype.type(inter)
            yield vol
