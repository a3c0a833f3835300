"""`neurofuse audit`: a results folder against its manifest (tiny files, no Snakemake run)."""

import json
import shutil

import pytest

from neurofuse.cli import main
from neurofuse.errors import NeuroFuseError
from neurofuse.provenance.audit import audit_results
from neurofuse.provenance.manifest import finalize_run


def make_results(tmp_path, name="Tiny"):
    """A source dataset and a finished results folder with its manifest."""
    raw = tmp_path / f"raw-{name}"
    raw.mkdir()
    (raw / "dataset_description.json").write_text(json.dumps({"Name": name, "BIDSVersion": "1.10.0"}))
    out = tmp_path / f"results-{name}"
    for rel, data in {
        "sub-01/func/sub-01_desc-confounds_timeseries.tsv": "trans_x\n0.1\n",
        "sub-01/func/sub-01_desc-preproc_bold.json": "{}",
        "work/sub-01/motion.tsv": "x\n1\n",
        "logs/job.log": "anything",
    }.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(data)
    config = {"bids_dir": str(raw), "output_dir": str(out), "seed": 42}
    (tmp_path / "workflow").mkdir(exist_ok=True)
    finalize_run(out, config, tmp_path / "workflow", workdir=tmp_path, env={})
    return out


def test_untouched_results_pass(tmp_path, capsys):
    out = make_results(tmp_path)
    report = audit_results(out)
    assert report.ok and report.counts["ok"] == 5 and report.counts["extra"] == 0
    assert main(["audit", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].split() == ["status", "path", "detail"]
    assert printed[-1].endswith("5 ok, 0 changed, 0 missing, 0 extra -> all files match the manifest")


def test_edited_missing_and_extra_files_fail(tmp_path, capsys):
    out = make_results(tmp_path)
    (out / "sub-01/func/sub-01_desc-confounds_timeseries.tsv").write_text("trans_x\n0.2\n")  # same size
    (out / "work/sub-01/motion.tsv").unlink()
    (out / "sub-01/func/notes.txt").write_text("by hand")
    (out / "logs/other.log").write_text("logs are not outputs")
    assert main(["audit", str(out), "--problems-only"]) == 1
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[1]: line.split()[0] for line in lines[1:-1]}
    assert rows == {
        "sub-01/func/sub-01_desc-confounds_timeseries.tsv": "changed",
        "work/sub-01/motion.tsv": "missing",
        "sub-01/func/notes.txt": "extra",
    }
    assert "sha256" in lines[1] and "1 changed, 1 missing, 1 extra -> FAILED" in lines[-1]


def test_json_output(tmp_path, capsys):
    out = make_results(tmp_path)
    (out / "sub-01/func/sub-01_desc-preproc_bold.json").write_text('{"a": 1}')
    assert main(["audit", str(out), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["passed"] is False
    changed = [f for f in document["audit"]["files"] if f["status"] == "changed"]
    assert [f["path"] for f in changed] == ["sub-01/func/sub-01_desc-preproc_bold.json"]
    assert "size 2 -> 8" in changed[0]["detail"]
    report_file = tmp_path / "audit.json"
    assert main(["audit", str(out), "--json", str(report_file)]) == 1
    assert json.loads(report_file.read_text())["audit"]["counts"]["changed"] == 1


def test_no_manifest_is_one_line(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    with pytest.raises(NeuroFuseError, match="no provenance manifest"):
        audit_results(tmp_path / "results")
    assert main(["audit", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("neurofuse: error:") and "provenance.json" in err and "\n" not in err
    assert main(["audit", str(tmp_path / "nowhere")]) == 2
    assert "the results folder does not exist" in capsys.readouterr().err


def test_not_a_manifest(tmp_path, capsys):
    out = make_results(tmp_path)
    (out / "neurofuse/provenance.json").write_text('{"format": "something-else"}')
    assert main(["audit", str(out)]) == 2
    assert "not a NeuroFuse provenance manifest" in capsys.readouterr().err


def test_manifest_from_another_dataset_is_named(tmp_path, capsys):
    mine = make_results(tmp_path, "Mine")
    theirs = make_results(tmp_path, "Theirs")
    shutil.copy(theirs / "neurofuse/provenance.json", mine / "neurofuse/provenance.json")
    report = audit_results(mine)
    assert not report.ok
    assert "raw-Theirs" in report.dataset_problem and "raw-Mine" in report.dataset_problem
    assert main(["audit", str(mine), "--problems-only"]) == 1
    out = capsys.readouterr().out
    assert "dataset: the manifest was written for source dataset" in out
    assert "manifest from another dataset" in out.splitlines()[-1]
