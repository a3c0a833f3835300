"""Credentials never reach logs, reports or provenance; a key file inside a dataset is a finding."""

from __future__ import annotations

import json
import shutil

from neurofuse.cli import main
from neurofuse.config import REPO_ROOT
from neurofuse.privacy import scan_dataset
from neurofuse.privacy.gate import run_gate
from neurofuse.provenance.manifest import build_manifest, dumps_manifest
from neurofuse.config import validate_config

SECRET = "-----BEGIN PRIVATE KEY-----MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
TOKEN = "ya29.a0AfH6SMBx-not-a-real-token-7f3e"


def test_service_account_key_in_a_dataset_is_found_and_masked(small_dataset, tmp_path, capsys):
    root = tmp_path / "ds"
    shutil.copytree(small_dataset, root, ignore=shutil.ignore_patterns("derivatives"))
    (root / "code").mkdir()
    (root / "code" / "sa.json").write_text(json.dumps({"type": "service_account", "private_key": SECRET,
                                                       "private_key_id": "0123456789abcdef", "client_email": "x@y.iam"}))
    findings = {(f.file, f.field, f.severity) for f in scan_dataset(root).findings}
    assert {("code/sa.json", "private_key", "high"), ("code/sa.json", "private_key_id", "high")} <= findings
    assert main(["privacy-check", str(root), "--json", "-", "--quiet"]) == 1
    assert SECRET[:40] not in capsys.readouterr().out


def test_credentials_in_the_environment_stay_out_of_provenance_and_gate(small_dataset, tmp_path, monkeypatch):
    env = {"GOOGLE_APPLICATION_CREDENTIALS": "/home/me/keys/sa-7f3e.json", "GOOGLE_OAUTH_ACCESS_TOKEN": TOKEN,
           "AWS_SECRET_ACCESS_KEY": SECRET, "OMP_NUM_THREADS": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "results"
    config = validate_config({"bids_dir": str(small_dataset), "output_dir": str(out),
                              "privacy": {"gate": "always", "allow_identifiable": True, "reason": "test"}})
    run_gate(config, out / "neurofuse" / "privacy_gate.json")
    manifest = dumps_manifest(build_manifest(out, config=config, bids_dir=small_dataset,
                                             workflow_dir=REPO_ROOT / "workflow", workdir=tmp_path))
    written = manifest + (out / "neurofuse" / "privacy_gate.json").read_text()
    assert '"OMP_NUM_THREADS": "1"' in manifest  # the environment is recorded ...
    for secret in ("sa-7f3e.json", TOKEN, SECRET):  # ... but never a credential
        assert secret not in written
