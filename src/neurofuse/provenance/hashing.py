"""File hashes and the walk over an output folder that the manifest and the audit share."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

_CHUNK = 1 << 20

#: Top-level folders of ``output_dir`` that are not outputs: run logs, timings and
#: Snakemake's own bookkeeping. They differ between identical runs by design.
EXCLUDED_DIRS: tuple[str, ...] = ("logs", "benchmarks", ".snakemake")

#: Where the manifest lives, relative to ``output_dir`` (never listed in itself).
MANIFEST_NAME = "neurofuse/provenance.json"

#: Intermediate files (Snakemake ``work/`` folder); listed unless a caller leaves them out.
WORK_DIR = "work"

#: The Workflow Run RO-Crate of the run (:mod:`neurofuse.provenance.crate`): its metadata
#: file at the root and the copy of the workflow and config it describes. Written after
#: the manifest, from the manifest, so never listed in it (like the manifest itself).
CRATE_NAME = "ro-crate-metadata.json"
RUN_DIR = "neurofuse/run"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(files: Iterable[tuple[str, str]]) -> str:
    """One SHA-256 over ``(relative path, file sha256)`` pairs, independent of their order."""
    digest = hashlib.sha256()
    for rel, sha in sorted(files):
        digest.update(f"{rel}\0{sha}\n".encode())
    return digest.hexdigest()


def iter_output_files(output_dir: str | os.PathLike, *, include_work: bool = True) -> Iterator[str]:
    """Relative POSIX paths of the files under ``output_dir`` that a manifest covers, sorted.

    Left out: :data:`EXCLUDED_DIRS` at the top level, the manifest itself, the RO-Crate
    (:data:`CRATE_NAME`, :data:`RUN_DIR`) and, with ``include_work=False``, the ``work/`` folder. Symbolic links to files count as files
    (their target's bytes are hashed); links to folders are not followed.
    """
    root = Path(output_dir)
    skip_top = set(EXCLUDED_DIRS) | (set() if include_work else {WORK_DIR})
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d not in skip_top]
        dirnames[:] = sorted(d for d in dirnames if (rel_dir / d).as_posix() != RUN_DIR)
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if rel in (MANIFEST_NAME, CRATE_NAME):
                continue
            if (Path(dirpath) / name).is_file():
                found.append(rel)
    yield from sorted(found)
