"""The provenance manifest of a workflow run: ``<output_dir>/neurofuse/provenance.json``.

What it holds (format :data:`MANIFEST_FORMAT`):

``files``
    Every file under ``output_dir`` (see :func:`~neurofuse.provenance.hashing.iter_output_files`:
    not ``logs/``, ``benchmarks/``, ``.snakemake/`` or the manifest itself; ``work/`` is
    included by default, see below) with its SHA-256, size and the job that made it —
    one file per line, so two manifests diff line by line.
``jobs``
    One entry per Snakemake job that made a listed file (or a deleted ``temp()`` input
    of one): rule, outputs, inputs with their SHA-256 (``bids:raw:<path>`` for files of
    the source dataset), the rule's params (as Snakemake records them), its log, and
    the code: the script file and its SHA-256, or the shell command. Read from
    Snakemake's own per-output metadata (:mod:`.snakemake_metadata`).
``privacy``
    The privacy gate's decision (:mod:`neurofuse.privacy.gate`): whether data left the
    machine, the scan's counts, and any explicit decision to allow identifiable data
    with its reason.
``dataset``, ``config``, ``seed``
    The source dataset (absolute path, URL, name, DOI, hash of its description) and the
    validated config of the run, so that ``neurofuse audit --rerun`` can repeat it.
``workflow``, ``environment``
    Git commit and dirty flag, hashes of the workflow files and of the library code;
    Python, platform, every installed package, ANTs (via antspyx), thread variables.
``run``
    When the jobs behind the listed files started (earliest) and ended (latest), UTC,
    from Snakemake's own job records: a re-run that had nothing to do leaves them as
    they were. The Workflow Run RO-Crate (:mod:`.crate`) takes its start and end times
    from here.
``created``
    When the manifest was written. ``audit`` ignores it and the run times, and
    :func:`write_manifest` keeps the existing file when nothing but ``created`` would change.

Why ``work/`` is in it: the intermediates (transforms, motion parameters, the BOLD
reference) are inputs of the deliverables; listing them lets a reviewer follow a
number back through every step, and ``audit --rerun`` compares them too, which is
where a non-deterministic step shows first. ``temp()`` files are already gone when
the run ends; their producing job is still listed, their hash is ``null`` (or the
checksum Snakemake recorded for small files). Pass ``include_work=False`` for a
manifest of the deliverables only (e.g. when ``work/`` is deleted after a run).
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import os
from base64 import b64decode
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neurofuse import __version__
from neurofuse.errors import NeuroFuseError
from neurofuse.io import atomic_write_text
from neurofuse.provenance.description import (
    DESCRIPTION_NAME,
    dataset_url,
    derivative_description,
    read_source_description,
    write_derivative_description,
)
from neurofuse.provenance.environment import git_state, python_environment, workflow_code
from neurofuse.provenance.hashing import (
    EXCLUDED_DIRS,
    MANIFEST_NAME,
    WORK_DIR,
    iter_output_files,
    sha256_file,
)
from neurofuse.provenance.snakemake_metadata import read_snakemake_records, script_of_code

MANIFEST_FORMAT = "neurofuse-provenance/1"

#: Prefix of source-dataset paths in job inputs (a BIDS URI; ``DatasetLinks.raw`` in
#: ``dataset_description.json`` resolves it).
RAW_PREFIX = "bids:raw:"

#: Files under ``output_dir`` written outside Snakemake jobs, and by what.
KNOWN_PRODUCERS = {
    "neurofuse/dataset_index.json": "neurofuse.workflow.load_index (Snakemake main process)",
    DESCRIPTION_NAME: "neurofuse.provenance.finalize_run",
    "neurofuse/privacy_gate.json": "neurofuse.privacy.gate.run_gate (Snakemake main process)",
    ".bidsignore": "neurofuse.provenance.finalize_run",
}


def manifest_path(output_dir: str | os.PathLike) -> Path:
    """Where the manifest of ``output_dir`` lives."""
    return Path(output_dir) / MANIFEST_NAME


def _absolute(path: str | os.PathLike, base: Path) -> Path:
    text = os.fspath(path)
    if "://" in text:
        return Path(text)
    return Path(os.path.normpath(base / text))


def _is_within(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _plain(value: Any) -> Any:
    """A JSON-safe deep copy (sets become sorted lists, unknown objects strings)."""
    return json.loads(json.dumps(value, sort_keys=True, default=lambda v: sorted(v) if isinstance(v, (set, frozenset)) else str(v)))


def _strip_checksum(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    algorithm, _, digest = value.partition(":")
    if not digest:
        return value  # Snakemake < record format 6 stored bare sha256
    return digest if algorithm == "sha256" else None


class _Resolver:
    """Turns Snakemake's recorded paths into manifest references and hashes."""

    def __init__(self, out: Path, bids: Path | None, workdir: Path, files: Mapping[str, Mapping[str, Any]]):
        self.out, self.bids, self.workdir, self.files = out, bids, workdir, files
        self._hashes: dict[Path, str | None] = {}

    def ref(self, recorded: str) -> tuple[str, Path]:
        path = _absolute(recorded, self.workdir)
        if _is_within(path, self.out):
            return path.relative_to(self.out).as_posix(), path
        if self.bids is not None and _is_within(path, self.bids):
            return RAW_PREFIX + path.relative_to(self.bids).as_posix(), path
        return str(path), path

    def sha256(self, ref: str, path: Path) -> str | None:
        if ref in self.files:
            return self.files[ref]["sha256"]
        if path not in self._hashes:
            self._hashes[path] = sha256_file(path) if path.is_file() else None
        return self._hashes[path]


def _job_code(record: Mapping[str, Any], workflow_dir: Path) -> dict[str, Any]:
    if record.get("shellcmd"):
        return {"shell": record["shellcmd"]}
    script = script_of_code(record.get("code"), workflow_dir)
    if script is not None:
        try:
            rel = script.relative_to(workflow_dir.resolve()).as_posix()
        except ValueError:
            rel = str(script)
        return {"script": rel, "sha256": sha256_file(script)}
    if record.get("code"):
        import hashlib

        return {"source_sha256": hashlib.sha256(str(record["code"]).encode()).hexdigest()}
    return {}


def _collect_jobs(
    records: Mapping[str, Mapping[str, Any]],
    files: dict[str, dict[str, Any]],
    resolver: _Resolver,
    workflow_dir: Path,
) -> dict[str, dict[str, Any]]:
    """Group per-output records into jobs; keep the jobs behind the listed files."""
    groups: dict[str, dict[str, Any]] = {}
    for abs_path, record in records.items():
        path = Path(abs_path)
        if not _is_within(path, resolver.out) or not record.get("rule"):
            continue
        rel = path.relative_to(resolver.out).as_posix()
        key = json.dumps([record.get("rule"), record.get("input"), record.get("params"), record.get("log")],
                         sort_keys=True, default=str)
        group = groups.setdefault(key, {"record": record, "outputs": []})
        group["outputs"].append(rel)

    by_output = {rel: key for key, group in groups.items() for rel in group["outputs"]}
    wanted = {by_output[rel] for rel in files if rel in by_output}
    # Follow deleted (temp) inputs back to the jobs that made them.
    queue = list(wanted)
    while queue:
        record = groups[queue.pop()]["record"]
        for recorded in record.get("input") or []:
            ref, _ = resolver.ref(str(recorded))
            key = by_output.get(ref)
            if key is not None and key not in wanted and ref not in files:
                wanted.add(key)
                queue.append(key)

    jobs: dict[str, dict[str, Any]] = {}
    for key in wanted:
        group = groups[key]
        record = group["record"]
        outputs = sorted(group["outputs"])
        job_id = f"{record['rule']}:{outputs[0]}"
        recorded_checksums = record.get("input_checksums") or {}
        inputs: dict[str, str | None] = {}
        for recorded in record.get("input") or []:
            ref, path = resolver.ref(str(recorded))
            sha = resolver.sha256(ref, path)
            if sha is None:
                sha = _strip_checksum(recorded_checksums.get(str(recorded)))
            inputs[ref] = sha
        job: dict[str, Any] = {
            "rule": record["rule"],
            "outputs": {rel: files[rel]["sha256"] if rel in files else None for rel in outputs},
            "inputs": dict(sorted(inputs.items())),
            "params": list(record.get("params") or []),
            "log": sorted(resolver.ref(str(p))[0] for p in record.get("log") or []),
            "code": _job_code(record, workflow_dir),
        }
        if record.get("conda_env"):
            import hashlib

            try:
                env_bytes = b64decode(record["conda_env"])
            except ValueError:
                env_bytes = str(record["conda_env"]).encode()
            job["conda_env_sha256"] = hashlib.sha256(env_bytes).hexdigest()
        if record.get("container_img_url"):
            job["container"] = record["container_img_url"]
        jobs[job_id] = job
        for rel in outputs:
            if rel in files:
                files[rel]["job"] = job_id
    return dict(sorted(jobs.items()))


def _iso_utc(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(float(epoch), _dt.timezone.utc).replace(microsecond=0).isoformat()


def _run_times(records: Mapping[str, Mapping[str, Any]], jobs: Mapping[str, Mapping[str, Any]],
               out: Path) -> dict[str, str | None]:
    """Earliest start and latest end (ISO 8601, UTC) of the jobs in ``jobs``, from their records."""
    starts, ends = [], []
    for job in jobs.values():
        for rel in job["outputs"]:
            record = records.get(os.path.normpath(out / rel))
            if record and isinstance(record.get("starttime"), (int, float)) and isinstance(record.get("endtime"), (int, float)):
                starts.append(record["starttime"])
                ends.append(record["endtime"])
                break
    return {"started": _iso_utc(min(starts)) if starts else None, "ended": _iso_utc(max(ends)) if ends else None}


def _privacy_decision(out: Path) -> dict[str, Any] | None:
    """The privacy gate's decision of the run (``neurofuse.privacy.gate``), without the findings list."""
    from neurofuse.privacy.gate import read_decision

    decision = read_decision(out)
    if decision is not None:
        decision.pop("findings", None)  # listed in neurofuse/privacy_gate.json, which the manifest hashes
    return decision


def build_manifest(
    output_dir: str | os.PathLike,
    *,
    config: Mapping[str, Any],
    bids_dir: str | os.PathLike,
    workflow_dir: str | os.PathLike,
    workdir: str | os.PathLike | None = None,
    include_work: bool = True,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The provenance manifest of the files now in ``output_dir`` (see the module docstring).

    Parameters
    ----------
    output_dir, bids_dir:
        The run's output folder and source dataset (relative paths are taken from ``workdir``).
    config:
        The validated config of the run (recorded as it is).
    workflow_dir:
        Folder of the Snakefile (git state and file hashes are taken from here).
    workdir:
        Snakemake's working directory, where ``.snakemake/metadata`` lives (default: the
        current directory, which is what Snakemake's ``onsuccess`` runs in).
    include_work:
        List the ``work/`` intermediates too (default True).
    env:
        Environment variables to record (default ``os.environ``; only
        :data:`~neurofuse.provenance.environment.RECORDED_ENV_VARS` are kept).
    """
    base = Path(workdir).absolute() if workdir is not None else Path.cwd()
    out = _absolute(output_dir, base)
    if not out.is_dir():
        raise NeuroFuseError("the output folder does not exist", out, "run the workflow first")
    bids_text = os.fspath(bids_dir)
    bids = None if "://" in bids_text else _absolute(bids_text, base)
    workflow = Path(workflow_dir).absolute()

    files: dict[str, dict[str, Any]] = {}
    for rel in iter_output_files(out, include_work=include_work):
        path = out / rel
        files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size, "job": None}

    records = read_snakemake_records(base)
    resolver = _Resolver(out, bids, base, files)
    jobs = _collect_jobs(records, files, resolver, workflow)
    for rel, entry in files.items():
        entry["made_by"] = jobs[entry["job"]]["rule"] if entry["job"] else KNOWN_PRODUCERS.get(rel)

    source = read_source_description(bids if bids is not None else bids_text)
    source_desc = (bids / DESCRIPTION_NAME) if bids is not None else None
    description = derivative_description(bids if bids is not None else bids_text, env=env)
    return {
        "format": MANIFEST_FORMAT,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "neurofuse_version": __version__,
        "dataset": {
            "bids_dir": str(bids) if bids is not None else bids_text,
            "url": dataset_url(bids if bids is not None else bids_text),
            "name": source.get("Name"),
            "doi": source.get("DatasetDOI"),
            "description_sha256": sha256_file(source_desc) if source_desc is not None and source_desc.is_file() else None,
            "derivative_name": description["Name"],
        },
        "config": _plain(dict(config)),
        "run": _run_times(records, jobs, out),
        "privacy": _privacy_decision(out),
        "seed": config.get("seed"),
        "workflow": {
            "dir": str(workflow),
            "snakefile": "Snakefile",
            "git": git_state(workflow),
            **workflow_code(workflow),
        },
        "environment": python_environment(env),
        "settings": {
            "include_work": include_work,
            "excluded": sorted(list(EXCLUDED_DIRS) + ([] if include_work else [WORK_DIR])),
            "snakemake_records": len(records),
        },
        "files": files,
        "jobs": jobs,
    }


def dumps_manifest(manifest: Mapping[str, Any]) -> str:
    """Sorted keys, 2-space indent, and one line per entry of ``files`` (diffable)."""

    def encode(value: Any, indent: int, one_line_children: bool) -> str:
        if isinstance(value, Mapping) and value:
            pad = " " * (indent + 2)
            items = []
            for key in sorted(value):
                child = value[key]
                if one_line_children:
                    text = json.dumps(child, sort_keys=True, separators=(", ", ": "))
                else:
                    text = encode(child, indent + 2, indent == 0 and key == "files")
                items.append(f"{pad}{json.dumps(key)}: {text}")
            return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
        if isinstance(value, (list, tuple)) and value:
            pad = " " * (indent + 2)
            return "[\n" + ",\n".join(pad + encode(v, indent + 2, False) for v in value) + "\n" + " " * indent + "]"
        return json.dumps(value, sort_keys=True)

    return encode(_plain(manifest), 0, False) + "\n"


def _without_created(manifest: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in manifest.items() if k != "created"}


def write_manifest(path: str | os.PathLike, manifest: Mapping[str, Any]) -> bool:
    """Write ``manifest`` to ``path`` atomically.

    Returns False (and leaves the file alone) when the existing manifest differs only
    in ``created``: a run that changed nothing does not touch the manifest.
    """
    target = Path(path)
    if target.is_file():
        try:
            old = json.loads(target.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            old = None
        if isinstance(old, dict) and _without_created(old) == _without_created(_plain(manifest)):
            return False
    atomic_write_text(target, dumps_manifest(manifest))
    return True


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Read a manifest; :class:`NeuroFuseError` (one line) if missing or not a manifest."""
    target = Path(path)
    if not target.is_file():
        raise NeuroFuseError(
            "no provenance manifest", target,
            "run the workflow to the end (it writes the manifest), or give the right results folder",
        )
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NeuroFuseError(f"the manifest is not valid JSON ({exc.__class__.__name__})", target,
                             "run the workflow again to rewrite it") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT or not isinstance(data.get("files"), dict):
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise NeuroFuseError(f"not a NeuroFuse provenance manifest of format {MANIFEST_FORMAT} (found {found!r})",
                             target, "run the workflow again with this version of NeuroFuse")
    return data


def finalize_run(
    output_dir: str | os.PathLike,
    config: Mapping[str, Any],
    workflow_dir: str | os.PathLike,
    *,
    workdir: str | os.PathLike | None = None,
    include_work: bool = True,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Write ``dataset_description.json``, ``.bidsignore``, the manifest and the RO-Crate after a run.

    Meant for the Snakefile's ``onsuccess:`` handler (main process, working directory =
    Snakemake's ``--directory``)::

        finalize_run(OUT, config, workflow.basedir)

    Returns the manifest's path.
    """
    base = Path(workdir).absolute() if workdir is not None else Path.cwd()
    out = _absolute(output_dir, base)
    bids_text = os.fspath(config["bids_dir"])
    bids = bids_text if "://" in bids_text else _absolute(bids_text, base)
    write_derivative_description(out, bids, env=env)
    manifest = build_manifest(out, config=copy.deepcopy(dict(config)), bids_dir=bids, workflow_dir=workflow_dir,
                              workdir=base, include_work=include_work, env=env)
    path = manifest_path(out)
    write_manifest(path, manifest)
    from neurofuse.provenance.crate import write_crate  # the crate reads the manifest just written

    write_crate(out)
    return path
