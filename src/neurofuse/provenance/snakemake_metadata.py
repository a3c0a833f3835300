"""Read the per-output records that Snakemake keeps in ``<workdir>/.snakemake/``.

Snakemake (checked against 9.27.1, record format version 6) writes one record per
output file when its job finishes:

* file backend (the default): ``.snakemake/metadata/<name>``, where ``<name>`` is the
  URL-safe base64 of the output path *as the rule spells it* (relative to the working
  directory, or absolute). Names longer than the file system's ``NAME_MAX`` are split
  into folders whose names start with ``@``. The file is JSON with the keys ``rule``,
  ``input`` (sorted paths), ``log``, ``params`` (sorted ``repr`` strings of the
  non-derived params), ``code`` (shell command, ``run:`` source or the ``script:``
  directive text), ``shellcmd``, ``conda_env`` (base64 of the env file),
  ``container_img_url``, ``software_stack_hash``, ``input_checksums`` (``sha256:…`` of
  inputs up to ``--max-checksum-file-size``), ``starttime``/``endtime`` and a few more.
* database backend (``--persistence-backend db``): the same fields in the table
  ``snakemake_metadata`` of ``.snakemake/metadata.db`` (SQLite), keyed by
  ``(namespace = absolute working directory, target = output path)``.

We read the files directly instead of instantiating ``snakemake.persistence``: that
class creates lock and cache folders as a side effect and needs a DAG; the record
format is plain JSON and versioned (``record_format_version``).
"""

from __future__ import annotations

import json
import os
import sqlite3
from base64 import urlsafe_b64decode
from pathlib import Path
from typing import Any

#: Record fields copied from Snakemake's metadata (job hashes are left out; the start and
#: end times only give the manifest the span of the run, never a job's identity).
RECORD_FIELDS = (
    "rule", "input", "log", "params", "code", "shellcmd", "conda_env", "container_img_url",
    "software_stack_hash", "input_checksums", "record_format_version", "incomplete", "starttime", "endtime",
)


def _decode_name(rel_parts: tuple[str, ...]) -> str | None:
    """The output path encoded in a metadata file's path below ``metadata/``."""
    chunks = [part[1:] if part.startswith("@") else part for part in rel_parts]
    try:
        return urlsafe_b64decode("".join(chunks).encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _normalise(key: str, workdir: Path) -> str:
    return os.path.normpath(os.path.join(workdir, key))


def read_file_records(workdir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Records of the file backend, keyed by the output's absolute, normalised path."""
    workdir = Path(workdir).absolute()
    meta_dir = workdir / ".snakemake" / "metadata"
    records: dict[str, dict[str, Any]] = {}
    if not meta_dir.is_dir():
        return records
    for dirpath, _dirnames, filenames in os.walk(meta_dir):
        for name in filenames:
            path = Path(dirpath) / name
            key = _decode_name(path.relative_to(meta_dir).parts)
            if key is None:
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue  # Snakemake also skips records that are being written
            if isinstance(data, dict):
                records[_normalise(key, workdir)] = {k: data.get(k) for k in RECORD_FIELDS}
    return records


def read_db_records(workdir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Records of the SQLite backend (``.snakemake/metadata.db``), if there is one."""
    workdir = Path(workdir).absolute()
    db = workdir / ".snakemake" / "metadata.db"
    records: dict[str, dict[str, Any]] = {}
    if not db.is_file():
        return records
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT * FROM snakemake_metadata WHERE namespace = ?", (str(workdir),)
            ).fetchall()
    except sqlite3.Error:
        return records
    for row in rows:
        data = dict(row)
        for field in ("input", "log", "params", "input_checksums"):
            if isinstance(data.get(field), str):
                try:
                    data[field] = json.loads(data[field])
                except json.JSONDecodeError:
                    pass
        records[_normalise(data["target"], workdir)] = {k: data.get(k) for k in RECORD_FIELDS}
    return records


def read_snakemake_records(workdir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """All per-output records of the Snakemake working directory ``workdir``.

    Keys are absolute normalised paths of the outputs; values hold :data:`RECORD_FIELDS`.
    Records of jobs that did not finish (``incomplete``) are left out. Returns an empty
    mapping when the folder has no Snakemake metadata (e.g. ``--drop-metadata``).
    """
    records = read_file_records(workdir)
    records.update(read_db_records(workdir))
    return {k: v for k, v in records.items() if not v.get("incomplete")}


def script_of_code(code: str | None, workflow_dir: str | os.PathLike) -> Path | None:
    """The script file a ``script:`` rule names, found from the recorded ``code`` text.

    Snakemake records the directive's text (e.g. ``"../scripts/x.py"``), relative to the
    file that defines the rule; we try the Snakefile's folder and every folder under
    ``workflow_dir`` that holds ``.smk`` files.
    """
    if not code:
        return None
    text = code.strip().strip(",").strip()
    if len(text) < 2 or text[0] not in "\"'" or text[-1] != text[0] or "\n" in text:
        return None  # a shell command or run: block, not a script path
    rel = text[1:-1]
    root = Path(workflow_dir)
    candidates = [root] + sorted({p.parent for p in root.rglob("*.smk")})
    for base in candidates:
        path = (base / rel).resolve()
        if path.is_file():
            return path
    return None
