"""Check a results folder against its provenance manifest (``neurofuse audit``).

Every file the manifest lists must be there with the same SHA-256; every file the
manifest covers (same walk, same exclusions as when it was written) must be listed.
The manifest must also belong to this results folder: the source dataset it records
must be the one that ``dataset_description.json`` names.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from neurofuse.errors import NeuroFuseError
from neurofuse.provenance.description import DESCRIPTION_NAME
from neurofuse.provenance.hashing import iter_output_files, sha256_file
from neurofuse.provenance.manifest import manifest_path, read_manifest

OK, MISSING, CHANGED, EXTRA = "ok", "missing", "changed", "extra"
STATUS_ORDER = (CHANGED, MISSING, EXTRA, OK)


@dataclass(frozen=True)
class AuditEntry:
    """One file's status: ``ok``, ``missing``, ``changed`` or ``extra``."""

    status: str
    path: str
    detail: str = ""


@dataclass
class AuditReport:
    """What :func:`audit_results` found."""

    results_dir: str
    manifest: str
    manifest_created: str | None
    entries: list[AuditEntry] = field(default_factory=list)
    dataset_problem: str | None = None

    @property
    def counts(self) -> dict[str, int]:
        counts = {status: 0 for status in STATUS_ORDER}
        for entry in self.entries:
            counts[entry.status] += 1
        return counts

    @property
    def ok(self) -> bool:
        """True when the manifest belongs here and every file matches it."""
        return self.dataset_problem is None and all(e.status == OK for e in self.entries)

    def summary(self) -> str:
        """One line: counts and the verdict."""
        c = self.counts
        listed = c[OK] + c[CHANGED] + c[MISSING]
        verdict = "all files match the manifest" if self.ok else "FAILED"
        if self.dataset_problem:
            verdict += " (manifest from another dataset)"
        return (f"audit {self.results_dir}: {listed} files in the manifest: {c[OK]} ok, {c[CHANGED]} changed, "
                f"{c[MISSING]} missing, {c[EXTRA]} extra -> {verdict}")

    def table(self, *, problems_only: bool = False) -> str:
        """A plain-text table ``status  path  detail`` (problems first)."""
        rows = [e for e in self.entries if not (problems_only and e.status == OK)]
        rows.sort(key=lambda e: (STATUS_ORDER.index(e.status), e.path))
        if not rows:
            return ""
        width_status = max(len("status"), *(len(e.status) for e in rows))
        width_path = max(len("path"), *(len(e.path) for e in rows))
        lines = [f"{'status':<{width_status}}  {'path':<{width_path}}  detail"]
        lines += [f"{e.status:<{width_status}}  {e.path:<{width_path}}  {e.detail}".rstrip() for e in rows]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "results_dir": self.results_dir,
            "manifest": self.manifest,
            "manifest_created": self.manifest_created,
            "ok": self.ok,
            "dataset_problem": self.dataset_problem,
            "counts": self.counts,
            "files": [asdict(e) for e in sorted(self.entries, key=lambda e: e.path)],
        }


def _short(sha: str | None) -> str:
    return (sha or "?")[:12]


def check_dataset(results_dir: str | os.PathLike, manifest: dict[str, Any]) -> str | None:
    """Why the manifest does not belong to ``results_dir`` (None when it does, or cannot be told).

    Compares the source dataset that the manifest records (URL and DOI, and the
    derivative dataset's name) with ``dataset_description.json`` of ``results_dir``.
    """
    path = Path(results_dir) / DESCRIPTION_NAME
    try:
        description = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None  # the file list says it is missing or changed
    dataset = manifest.get("dataset") or {}
    sources = [s for s in description.get("SourceDatasets") or [] if isinstance(s, dict)]
    urls = [s.get("URL") for s in sources if s.get("URL")]
    dois = [s.get("DOI") for s in sources if s.get("DOI")]
    recorded_url = dataset.get("url")
    if recorded_url and urls and recorded_url not in urls:
        return (f"the manifest was written for source dataset {recorded_url} ({dataset.get('name')!r}), "
                f"but {DESCRIPTION_NAME} says the source is {', '.join(urls)}: the manifest belongs to other results")
    if dataset.get("doi") and dois and dataset["doi"] not in dois:
        return f"the manifest's source DOI {dataset['doi']} differs from {', '.join(dois)} in {DESCRIPTION_NAME}"
    name = dataset.get("derivative_name")
    if name and description.get("Name") and description["Name"] != name:
        return (f"the manifest was written for {name!r}, but {DESCRIPTION_NAME} names {description['Name']!r}: "
                "the manifest belongs to other results")
    return None


def audit_results(results_dir: str | os.PathLike, *, manifest_file: str | os.PathLike | None = None) -> AuditReport:
    """Verify ``results_dir`` against its manifest (default ``<results>/neurofuse/provenance.json``).

    Raises :class:`~neurofuse.errors.NeuroFuseError` when there is no readable manifest.
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise NeuroFuseError("the results folder does not exist", root, "give the workflow's output_dir")
    mpath = Path(manifest_file) if manifest_file is not None else manifest_path(root)
    manifest = read_manifest(mpath)
    files: dict[str, dict[str, Any]] = manifest["files"]
    include_work = bool((manifest.get("settings") or {}).get("include_work", True))
    report = AuditReport(results_dir=str(root), manifest=str(mpath), manifest_created=manifest.get("created"))
    present = set(iter_output_files(root, include_work=include_work))
    for rel in sorted(files):
        entry = files[rel]
        path = root / rel
        if rel not in present:
            report.entries.append(AuditEntry(MISSING, rel, f"made by {entry.get('made_by') or 'unknown'}"))
            continue
        size = path.stat().st_size
        if size != entry.get("size"):
            report.entries.append(AuditEntry(CHANGED, rel, f"size {entry.get('size')} -> {size} bytes"))
            continue
        sha = sha256_file(path)
        if sha != entry.get("sha256"):
            report.entries.append(AuditEntry(CHANGED, rel, f"sha256 {_short(entry.get('sha256'))}… -> {_short(sha)}…"))
        else:
            report.entries.append(AuditEntry(OK, rel))
    for rel in sorted(present - set(files)):
        report.entries.append(AuditEntry(EXTRA, rel, f"not in the manifest ({(root / rel).stat().st_size} bytes)"))
    report.dataset_problem = check_dataset(root, manifest)
    return report
