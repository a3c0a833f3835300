"""The provenance manifest, built from a tiny project with real Snakemake metadata records."""

import hashlib
import json
import os
import subprocess

import pytest

from neurofuse.provenance.environment import git_state, package_versions
from neurofuse.provenance.manifest import (
    MANIFEST_FORMAT,
    build_manifest,
    dumps_manifest,
    finalize_run,
    read_manifest,
    write_manifest,
)
from neurofuse.provenance.snakemake_metadata import read_snakemake_records, script_of_code

from provenance_project import CONFIG, project, sha, write_record  # noqa: F401 (project is a fixture)


def manifest_of(project, **kwargs):
    return build_manifest(project["out"], config=CONFIG, bids_dir=project["raw"], workflow_dir=project["wf"],
                          workdir=project["proj"], env={"PYTHONHASHSEED": "0", "HOME": "/secret"}, **kwargs)


def test_records_are_read_from_snakemake_metadata(project):
    records = read_snakemake_records(project["proj"])
    key = os.path.normpath(project["proj"] / "results/work/sub-01/x.mat")
    assert records[key]["rule"] == "make_a" and records[key]["params"] == ["0.5"]
    assert script_of_code(records[key]["code"], project["wf"]) == (project["wf"] / "scripts/make_a.py").resolve()
    assert script_of_code("cp {input} {output}", project["wf"]) is None


def test_long_output_names_are_decoded(tmp_path):
    long = "results/" + "/".join(["d" * 120] * 3) + "/out.txt"  # base64 name longer than NAME_MAX
    write_record(tmp_path, long, rule="deep", input=[], log=[], params=[])
    assert os.path.normpath(tmp_path / long) in read_snakemake_records(tmp_path)


def test_files_jobs_and_exclusions(project):
    m = manifest_of(project)
    assert m["format"] == MANIFEST_FORMAT
    assert sorted(m["files"]) == [
        "neurofuse/dataset_index.json",
        "sub-01/func/sub-01_desc-a_timeseries.tsv",
        "work/sub-01/x.mat",
    ]  # no logs/, benchmarks/; the stale record's file is not there
    tsv = m["files"]["sub-01/func/sub-01_desc-a_timeseries.tsv"]
    assert tsv["sha256"] == sha(b"a\tb\n1\t2\n") and tsv["size"] == 8 and tsv["made_by"] == "make_a"
    assert m["files"]["neurofuse/dataset_index.json"]["job"] is None
    job = m["jobs"][tsv["job"]]
    assert job["rule"] == "make_a" and job["params"] == ["0.5"]
    assert job["inputs"] == {
        "bids:raw:sub-01/func/sub-01_bold.nii.gz": sha(b"raw bold"),
        "work/sub-01/tmp.nii.gz": None,  # temp(): deleted, too big for Snakemake's checksum
    }
    assert job["code"] == {"script": "scripts/make_a.py", "sha256": sha(b"print('a')\n")}
    assert job["log"] == ["logs/make_a.log"]
    assert job["conda_env_sha256"] == sha(b"name: x")
    # The deleted temp input's job is followed back and listed.
    tmp_job = m["jobs"]["make_tmp:work/sub-01/tmp.nii.gz"]
    assert tmp_job["outputs"] == {"work/sub-01/tmp.nii.gz": None}
    assert tmp_job["inputs"] == {"bids:raw:sub-01/func/sub-01_bold.nii.gz": sha(b"raw bold")}
    assert not any(job["rule"] == "old" for job in m["jobs"].values())
    assert m["seed"] == 7 and m["config"] == CONFIG
    assert m["dataset"]["bids_dir"] == str(project["raw"]) and m["dataset"]["name"] == "Tiny"
    env = m["environment"]
    assert env["env"] == {"PYTHONHASHSEED": "0"}  # only the listed variables, never HOME etc.
    assert env["packages"]["numpy"] and env["tools"]["ANTs"]["via"] == "antspyx"
    assert m["workflow"]["workflow_files"]["scripts/make_a.py"] == sha(b"print('a')\n")


def test_without_work(project):
    m = manifest_of(project, include_work=False)
    assert "work/sub-01/x.mat" not in m["files"] and m["settings"]["include_work"] is False


def test_deterministic_and_one_line_per_file(project, tmp_path):
    first, second = manifest_of(project), manifest_of(project)
    first["created"] = second["created"] = "x"
    assert dumps_manifest(first) == dumps_manifest(second)
    text = dumps_manifest(first)
    lines = [line for line in text.splitlines() if '"sha256": "' in line and '"size": ' in line]
    assert len(lines) == len(first["files"])  # each file's entry is one line
    assert json.loads(text) == json.loads(json.dumps(first))
    keys = list(json.loads(text))
    assert keys == sorted(keys)
    assert text.startswith('{\n  "config": {\n    "bids_dir"')  # 2-space indent


def test_write_manifest_ignores_created(project, tmp_path):
    path = tmp_path / "provenance.json"
    m = manifest_of(project)
    assert write_manifest(path, m) is True
    m["created"] = "2099-01-01T00:00:00+00:00"
    assert write_manifest(path, m) is False
    assert read_manifest(path)["created"] != "2099-01-01T00:00:00+00:00"
    m["seed"] = 8
    assert write_manifest(path, m) is True and read_manifest(path)["seed"] == 8


def test_finalize_run_writes_description_bidsignore_manifest(project):
    path = finalize_run("results", CONFIG, project["wf"], workdir=project["proj"], env={})
    out = project["out"]
    assert path == out / "neurofuse/provenance.json"
    manifest = read_manifest(path)
    assert {"dataset_description.json", ".bidsignore"} <= set(manifest["files"])
    assert manifest["files"][".bidsignore"]["made_by"] == "neurofuse.provenance.finalize_run"
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["SourceDatasets"][0]["URL"] == project["raw"].resolve().as_uri()
    assert manifest["dataset"]["bids_dir"] == str(project["raw"])  # relative bids_dir resolved from workdir


def test_git_state_reports_commit_and_dirty(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    run = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    (repo / "Snakefile").write_text("x\n")
    run("add", "Snakefile")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    state = git_state(repo)
    assert len(state["commit"]) == 40 and state["dirty"] is False
    (repo / "Snakefile").write_text("y\n")
    (repo / "new.py").write_text("")
    state = git_state(repo)
    assert state["dirty"] is True and state["changes"] == ["Snakefile", "new.py"]
    assert git_state(tmp_path / "nogit") is None


def test_package_versions_cover_the_pins():
    versions = package_versions()
    assert versions["snakemake"] == "9.27.1" and "nibabel" in versions
