"""Re-execute a recorded run into a scratch folder and compare every output (``audit --rerun``).

The re-run uses what the manifest recorded: the validated config (with the source
dataset's absolute path and ``output_dir: results``, so the scratch folder is a
self-contained Snakemake project), the seed inside it, and the environment variables
that change numbers (``PYTHONHASHSEED``, thread counts). It runs the Snakefile of the
recorded workflow folder unless another one is given. Software versions are not
reinstalled: differences between the recorded and the current environment are listed
in :attr:`RerunReport.context` so that a difference in the outputs can be explained.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from neurofuse.errors import NeuroFuseError
from neurofuse.provenance.compare import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    DIFFERENT,
    IDENTICAL,
    WITHIN_TOLERANCE,
    compare_files,
)
from neurofuse.provenance.environment import RECORDED_ENV_VARS
from neurofuse.provenance.hashing import iter_output_files
from neurofuse.provenance.manifest import finalize_run, manifest_path, read_manifest

MISSING_IN_RERUN = "missing_in_rerun"
MISSING_IN_RESULTS = "missing_in_results"
EXTRA_IN_RERUN = "extra_in_rerun"
RERUN_ORDER = (DIFFERENT, MISSING_IN_RERUN, MISSING_IN_RESULTS, EXTRA_IN_RERUN, WITHIN_TOLERANCE, IDENTICAL)

#: Environment variables a re-run copies from the manifest (not the container ones:
#: they describe the image, not a setting).
REPLAYED_ENV_VARS = tuple(v for v in RECORDED_ENV_VARS if not v.startswith("NEUROFUSE_CONTAINER"))


@dataclass(frozen=True)
class RerunEntry:
    status: str
    path: str
    detail: str = ""


@dataclass
class RerunReport:
    """Outcome of :func:`rerun_and_compare`."""

    results_dir: str
    scratch_dir: str
    rtol: float
    atol: float
    entries: list[RerunEntry] = field(default_factory=list)
    context: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts = {status: 0 for status in RERUN_ORDER}
        for entry in self.entries:
            counts[entry.status] += 1
        return counts

    def passed(self, *, strict: bool = False) -> bool:
        """No output differs or is missing (``strict``: and every one is bit-identical)."""
        allowed = {IDENTICAL} if strict else {IDENTICAL, WITHIN_TOLERANCE}
        return all(e.status in allowed for e in self.entries)

    def summary(self, *, strict: bool = False) -> str:
        c = self.counts
        verdict = "reproduced" if self.passed(strict=strict) else "NOT reproduced"
        return (f"rerun {self.scratch_dir}: {c[IDENTICAL]} bit-identical, {c[WITHIN_TOLERANCE]} within tolerance "
                f"(rtol={self.rtol:g}, atol={self.atol:g}), {c[DIFFERENT]} different, "
                f"{c[MISSING_IN_RERUN] + c[MISSING_IN_RESULTS]} missing, {c[EXTRA_IN_RERUN]} extra -> {verdict}")

    def table(self, *, problems_only: bool = False) -> str:
        """A plain-text table ``status  path  detail`` (differences first)."""
        rows = [e for e in self.entries if not (problems_only and e.status == IDENTICAL)]
        rows.sort(key=lambda e: (RERUN_ORDER.index(e.status), e.path))
        if not rows:
            return ""
        ws = max(len("status"), *(len(e.status) for e in rows))
        wp = max(len("path"), *(len(e.path) for e in rows))
        lines = [f"{'status':<{ws}}  {'path':<{wp}}  detail"]
        lines += [f"{e.status:<{ws}}  {e.path:<{wp}}  {e.detail}".rstrip() for e in rows]
        return "\n".join(lines)

    def to_dict(self, *, strict: bool = False) -> dict[str, Any]:
        return {
            "results_dir": self.results_dir,
            "scratch_dir": self.scratch_dir,
            "rtol": self.rtol,
            "atol": self.atol,
            "passed": self.passed(strict=strict),
            "counts": self.counts,
            "context": self.context,
            "files": [asdict(e) for e in sorted(self.entries, key=lambda e: e.path)],
        }


def rerun_config(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The config of the recorded run, pointed at the recorded dataset and ``results/``."""
    config = json.loads(json.dumps(manifest.get("config") or {}))
    config["bids_dir"] = manifest["dataset"]["bids_dir"]
    config["output_dir"] = "results"
    if manifest.get("seed") is not None:
        config["seed"] = manifest["seed"]
    return config


def _default_snakefile(manifest: Mapping[str, Any]) -> Path:
    recorded = Path((manifest.get("workflow") or {}).get("dir", "")) / "Snakefile"
    if recorded.is_file():
        return recorded
    from neurofuse.config import REPO_ROOT

    return REPO_ROOT / "workflow" / "Snakefile"


def _environment_context(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    notes = []
    old_pkgs = (recorded.get("environment") or {}).get("packages") or {}
    new_pkgs = (current.get("environment") or {}).get("packages") or {}
    changed = [f"{n} {old_pkgs.get(n)} -> {new_pkgs.get(n)}" for n in sorted(set(old_pkgs) | set(new_pkgs))
               if old_pkgs.get(n) != new_pkgs.get(n)]
    if changed:
        notes.append(f"{len(changed)} package versions differ from the recorded run: " + ", ".join(changed[:20]))
    old_wf, new_wf = recorded.get("workflow") or {}, current.get("workflow") or {}
    old_git, new_git = old_wf.get("git") or {}, new_wf.get("git") or {}
    if old_git.get("dirty"):
        notes.append(f"the recorded run used a work tree with {old_git.get('n_changes')} uncommitted changes: "
                     "its code is identified by the file hashes, not by the commit")
    if old_git.get("commit") != new_git.get("commit"):
        notes.append(f"workflow commit {old_git.get('commit')} (recorded) vs {new_git.get('commit')} (re-run)")
    if old_wf.get("library_sha256") != new_wf.get("library_sha256"):
        notes.append("the neurofuse library code differs from the recorded run (library_sha256)")
    changed_files = sorted(
        name for name in set(old_wf.get("workflow_files") or {}) | set(new_wf.get("workflow_files") or {})
        if (old_wf.get("workflow_files") or {}).get(name) != (new_wf.get("workflow_files") or {}).get(name)
    )
    if changed_files:
        notes.append("workflow files differ from the recorded run: " + ", ".join(changed_files))
    old_py = ((recorded.get("environment") or {}).get("python") or {}).get("version")
    new_py = ((current.get("environment") or {}).get("python") or {}).get("version")
    if old_py != new_py:
        notes.append(f"Python {old_py} (recorded) vs {new_py} (re-run)")
    return notes


def run_snakemake(
    scratch_dir: str | os.PathLike,
    config: Mapping[str, Any],
    *,
    snakefile: str | os.PathLike,
    cores: int = 1,
    env_vars: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float | None = None,
) -> Path:
    """Run the workflow as a fresh project in ``scratch_dir``; return its log file.

    Writes ``scratch_dir/config/config.yaml`` (the Snakefile's ``configfile:``) and runs
    ``python -m snakemake -s SNAKEFILE --directory SCRATCH --cores N``. Raises
    :class:`NeuroFuseError` if Snakemake fails.
    """
    scratch = Path(scratch_dir).absolute()
    (scratch / "config").mkdir(parents=True, exist_ok=True)
    (scratch / "config" / "config.yaml").write_text(
        "# Written by `neurofuse audit --rerun` from the recorded provenance manifest.\n"
        + yaml.safe_dump(dict(config), sort_keys=True), encoding="utf-8")
    log = scratch / "rerun.log"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory", str(scratch),
           "--cores", str(cores), *extra_args]
    env = dict(os.environ)
    env.update(env_vars or {})
    with open(log, "w", encoding="utf-8") as handle:
        handle.write("$ " + " ".join(cmd) + "\n")
        handle.flush()
        try:
            result = subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise NeuroFuseError(f"the re-run did not finish within {timeout:g} s", log, "see the log") from None
    if result.returncode != 0:
        raise NeuroFuseError(f"the re-run failed (Snakemake exit code {result.returncode})", log,
                             "read the log; the recorded dataset and workflow must still exist")
    return log


def compare_results(
    results_dir: str | os.PathLike,
    other_dir: str | os.PathLike,
    files: Sequence[str],
    *,
    include_work: bool = True,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
) -> list[RerunEntry]:
    """Compare ``files`` (relative paths) of two results folders, plus files only in ``other_dir``."""
    root, other = Path(results_dir), Path(other_dir)
    entries = []
    listed = set(files)
    for rel in sorted(listed):
        a, b = root / rel, other / rel
        if not b.is_file():
            entries.append(RerunEntry(MISSING_IN_RERUN, rel, "the re-run did not write it"))
        elif not a.is_file():
            entries.append(RerunEntry(MISSING_IN_RESULTS, rel, "listed in the manifest, missing from the results"))
        else:
            result = compare_files(a, b, rtol=rtol, atol=atol)
            entries.append(RerunEntry(result.status, rel, result.detail))
    for rel in iter_output_files(other, include_work=include_work):
        if rel not in listed:
            entries.append(RerunEntry(EXTRA_IN_RERUN, rel, "written by the re-run, not in the manifest"))
    return entries


def rerun_and_compare(
    results_dir: str | os.PathLike,
    scratch_dir: str | os.PathLike,
    *,
    manifest_file: str | os.PathLike | None = None,
    snakefile: str | os.PathLike | None = None,
    cores: int = 1,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    extra_args: Sequence[str] = (),
    timeout: float | None = None,
) -> RerunReport:
    """Re-execute the run recorded in ``results_dir`` into ``scratch_dir`` and compare outputs.

    ``scratch_dir`` must be empty or not exist. Every file of the manifest is compared
    (:func:`~neurofuse.provenance.compare.compare_files`: bytes, then NIfTI/TSV/JSON
    numerically within ``rtol``/``atol``).
    """
    root = Path(results_dir)
    manifest = read_manifest(Path(manifest_file) if manifest_file is not None else manifest_path(root))
    bids_dir = (manifest.get("dataset") or {}).get("bids_dir")
    if not bids_dir or ("://" not in bids_dir and not Path(bids_dir).is_dir()):
        raise NeuroFuseError("the source dataset recorded in the manifest is not there", bids_dir,
                             "restore it at that path to re-run")
    scratch = Path(scratch_dir).absolute()
    if scratch.exists() and any(scratch.iterdir()):
        raise NeuroFuseError("the scratch folder is not empty", scratch, "give an empty or new folder")
    snakefile = Path(snakefile).absolute() if snakefile is not None else _default_snakefile(manifest)
    recorded_env = ((manifest.get("environment") or {}).get("env") or {})
    env_vars = {k: v for k, v in recorded_env.items() if k in REPLAYED_ENV_VARS}
    config = rerun_config(manifest)
    run_snakemake(scratch, config, snakefile=snakefile, cores=cores, env_vars=env_vars,
                  extra_args=extra_args, timeout=timeout)
    notes = []
    new_manifest = manifest_path(scratch / "results")
    if not new_manifest.is_file():
        # A Snakefile without the onsuccess hook: write what the hook would have written,
        # so that dataset_description.json and .bidsignore are compared too.
        finalize_run("results", config, snakefile.parent, workdir=scratch, env={**os.environ, **env_vars})
        notes.append("the Snakefile wrote no manifest (no finalize_run in onsuccess); audit wrote it after the re-run")

    include_work = bool((manifest.get("settings") or {}).get("include_work", True))
    report = RerunReport(results_dir=str(root), scratch_dir=str(scratch), rtol=rtol, atol=atol)
    report.entries = compare_results(root, scratch / "results", sorted(manifest["files"]),
                                     include_work=include_work, rtol=rtol, atol=atol)
    report.context = notes + _environment_context(manifest, read_manifest(new_manifest))
    return report
