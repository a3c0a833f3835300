"""The privacy gate: when it applies, what stops a run, the recorded decision, provenance, a dry run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from neurofuse.cli import main
from neurofuse.config import REPO_ROOT, validate_config
from neurofuse.errors import ConfigError, NeuroFuseError
from neurofuse.privacy.gate import decide, gate_file, leaving_reasons, read_decision, run_gate, write_findings_table
from neurofuse.provenance.manifest import build_manifest


def _config(bids_dir, output_dir="results", **privacy):
    return validate_config({"bids_dir": str(bids_dir), "output_dir": str(output_dir), "privacy": privacy})


@pytest.fixture(scope="module")
def raw(small_dataset, tmp_path_factory) -> Path:
    """The simulated dataset without derivatives: its only findings are acq_time dates (medium)."""
    root = tmp_path_factory.mktemp("gate") / "ds"
    shutil.copytree(small_dataset, root, ignore=shutil.ignore_patterns("derivatives"))
    return root


@pytest.mark.parametrize("config,storage,executor,expected", [
    ({"bids_dir": "data", "output_dir": "results"}, None, None, []),
    ({"bids_dir": "data", "output_dir": "results"}, None, "slurm", []),
    ({"bids_dir": "data", "output_dir": "gs://lab/results"}, None, None, ["output_dir is gs://lab/results"]),
    ({"bids_dir": "gs://lab/raw", "output_dir": "results"}, None, None, ["bids_dir is gs://lab/raw"]),
    ({"bids_dir": "data", "output_dir": "results"}, "gcs", None, ["Snakemake's default storage provider is gcs"]),
    ({"bids_dir": "data", "output_dir": "results"}, None, "googlebatch",
     ["the googlebatch executor runs jobs on remote machines"]),
])
def test_when_data_leave_the_machine(config, storage, executor, expected):
    assert leaving_reasons(config, storage_provider=storage, executor=executor) == expected


def test_local_run_is_not_gated(raw):
    decision = decide(_config(raw))
    assert not decision.applies and decision.passed and decision.scan_source is None


def test_cloud_run_with_findings_stops(raw, tmp_path):
    config = _config(raw, "gs://lab/results")
    path = tmp_path / "gate.json"
    with pytest.raises(NeuroFuseError) as info:
        run_gate(config, path)
    message = str(info.value)
    assert "2 findings at or above 'low'" in message and "output_dir is gs://lab/results" in message
    assert "sub-01/sub-01_scans.tsv column 'acq_time'" in message and "privacy.allow_identifiable" in message
    recorded = json.loads(path.read_text())
    assert recorded["applies"] and not recorded["passed"] and recorded["blocking"] == 2
    assert {f["file"] for f in recorded["findings"]} == {"sub-01/sub-01_scans.tsv", "sub-02/sub-02_scans.tsv"}


def test_fail_on_and_never(raw):
    assert decide(_config(raw, "gs://lab/results", fail_on="high")).passed
    never = decide(_config(raw, "gs://lab/results", gate="never"))
    assert not never.applies and never.passed and "turned off" in never.summary()


def test_explicit_decision_is_needed_and_recorded(raw, tmp_path):
    with pytest.raises(ConfigError, match="privacy.reason is empty"):
        decide(_config(raw, gate="always", allow_identifiable=True))
    reason = "IRB 2024-117: processing in the lab's CMEK bucket approved"
    path = tmp_path / "results" / "neurofuse" / "privacy_gate.json"
    decision = run_gate(_config(raw, gate="always", allow_identifiable=True, reason=reason), path)
    assert decision.passed and decision.blocking == 2 and "ALLOWED by the config" in decision.summary()
    assert read_decision(tmp_path / "results")["reason"] == reason
    write_findings_table(path, tmp_path / "findings.tsv")
    rows = (tmp_path / "findings.tsv").read_text().splitlines()
    assert rows[1] == f"# identifiable data allowed: {reason}" and rows[2].startswith("file\tfield")
    assert rows[3].startswith("sub-01/sub-01_scans.tsv\tcolumn 'acq_time'\tmedium")
    manifest = build_manifest(tmp_path / "results", config={"bids_dir": str(raw), "seed": 1}, bids_dir=raw,
                              workflow_dir=REPO_ROOT / "workflow", workdir=tmp_path)
    assert manifest["privacy"]["allow_identifiable"] and manifest["privacy"]["reason"] == reason
    assert manifest["privacy"]["counts"] == {"high": 0, "medium": 2, "low": 0}
    assert manifest["files"]["neurofuse/privacy_gate.json"]["made_by"].startswith("neurofuse.privacy.gate")


def test_bucket_dataset_needs_a_scan_report(raw, tmp_path):
    config = _config("gs://lab/raw")
    with pytest.raises(NeuroFuseError, match="cannot scan a dataset that is already in a bucket"):
        decide(config)
    report = tmp_path / "scan.json"
    assert main(["privacy-check", str(raw), "--json", str(report), "--quiet"]) == 1
    decision = decide(_config("gs://lab/raw", scan_report=str(report), fail_on="high"))
    assert decision.applies and decision.passed and decision.scan_source.startswith(f"report {report}")
    with pytest.raises(NeuroFuseError, match="does not exist"):
        decide(_config("gs://lab/raw", scan_report=str(tmp_path / "nope.json")))


def test_dry_run_stops_before_any_job(raw, tmp_path):
    """snakemake -n with privacy.gate: always on a dataset with findings: exit 1, one line, no job."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "-s", str(REPO_ROOT / "workflow" / "Snakefile"),
         "--configfile", str(REPO_ROOT / "config" / "config.yaml"),
         "--config", f"bids_dir={raw}", f"output_dir={tmp_path / 'results'}", "privacy={'gate': 'always'}"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 1
    assert "NeuroFuse: " in result.stderr and "privacy gate: 2 findings at or above 'low'" in result.stderr
    assert "Job stats" not in result.stdout + result.stderr
    assert not json.loads(Path(gate_file(str(tmp_path / "results"))).read_text())["passed"]
