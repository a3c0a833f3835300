"""`audit --rerun` end to end on a two-rule Snakefile (seconds, not the real workflow).

Also checks the wiring the real Snakefile uses: ``finalize_run(OUT, config,
workflow.basedir)`` in ``onsuccess:`` reads Snakemake's metadata of the same run.
"""

import hashlib
import json

import pytest

from neurofuse.cli import main
from neurofuse.provenance.audit import audit_results
from neurofuse.provenance.manifest import read_manifest
from neurofuse.provenance.rerun import run_snakemake

pytestmark = pytest.mark.slow

SNAKEFILE = '''\
import os

configfile: "config/config.yaml"

OUT = config["output_dir"]


rule all:
    input:
        f"{OUT}/sub-01/sub-01_desc-scaled_timeseries.tsv",


rule copy_table:
    input:
        os.path.join(config["bids_dir"], "sub-01/sub-01_timeseries.tsv"),
    output:
        temp(f"{OUT}/work/sub-01/copy.tsv"),
    shell:
        "cp {input} {output}"


rule scale_table:
    input:
        rules.copy_table.output,
    output:
        f"{OUT}/sub-01/sub-01_desc-scaled_timeseries.tsv",
    params:
        factor=config["seed"],
    shell:
        "awk -v f={params.factor} 'NR==1{{print; next}} {{print $1*f}}' {input} > {output}"


onsuccess:
    from neurofuse.provenance import finalize_run

    finalize_run(OUT, config, workflow.basedir)
'''


@pytest.fixture()
def recorded_run(tmp_path):
    raw = tmp_path / "raw"
    (raw / "sub-01").mkdir(parents=True)
    (raw / "dataset_description.json").write_text('{"Name": "Mini", "BIDSVersion": "1.10.0"}')
    (raw / "sub-01/sub-01_timeseries.tsv").write_text("x\n1\n2\n")
    workflow = tmp_path / "workflow"
    workflow.mkdir()
    (workflow / "Snakefile").write_text(SNAKEFILE)
    project = tmp_path / "project"
    run_snakemake(project, {"bids_dir": str(raw), "output_dir": "results", "seed": 3},
                  snakefile=workflow / "Snakefile", cores=1, extra_args=["--quiet"], timeout=120)
    return project / "results"


def test_onsuccess_manifest_audit_and_rerun(recorded_run, tmp_path, capsys):
    manifest = read_manifest(recorded_run / "neurofuse/provenance.json")
    entry = manifest["files"]["sub-01/sub-01_desc-scaled_timeseries.tsv"]
    job = manifest["jobs"][entry["job"]]
    assert job["rule"] == "scale_table" and job["params"] == ["3"]
    assert job["code"]["shell"].startswith("awk -v f=3")
    raw_sha = hashlib.sha256(b"x\n1\n2\n").hexdigest()
    # temp() input: deleted by now, its hash is the checksum Snakemake recorded; its job is listed.
    assert job["inputs"] == {"work/sub-01/copy.tsv": raw_sha}
    copy_job = manifest["jobs"]["copy_table:work/sub-01/copy.tsv"]
    assert copy_job["inputs"] == {"bids:raw:sub-01/sub-01_timeseries.tsv": raw_sha}
    assert copy_job["outputs"] == {"work/sub-01/copy.tsv": None}
    assert audit_results(recorded_run).ok

    # A hand edit: the audit names the file; the re-run reproduces the recorded run and
    # shows the first differing cell of the edited table.
    (recorded_run / "sub-01/sub-01_desc-scaled_timeseries.tsv").write_text("x\n3\n7\n")
    # The re-run uses a copy of the Snakefile without the onsuccess hook: audit then
    # writes the description and manifest itself, so that they are compared too.
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "Snakefile").write_text(SNAKEFILE.split("onsuccess:")[0])
    scratch = tmp_path / "scratch"
    assert main(["audit", str(recorded_run), "--rerun", "--scratch", str(scratch), "--snakefile",
                 str(bare / "Snakefile"), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    audit = {f["path"]: f["status"] for f in document["audit"]["files"]}
    assert audit["sub-01/sub-01_desc-scaled_timeseries.tsv"] == "changed"
    rerun = {f["path"]: f for f in document["rerun"]["files"]}
    assert rerun["sub-01/sub-01_desc-scaled_timeseries.tsv"]["detail"] == "row 2, column 'x': '7' vs '6'"
    others = {path: f["status"] for path, f in rerun.items() if path != "sub-01/sub-01_desc-scaled_timeseries.tsv"}
    assert set(others.values()) == {"identical"}, others  # incl. dataset_description.json, .bidsignore
    assert (scratch / "results/neurofuse/provenance.json").is_file()
    context = document["rerun"]["context"]
    assert context[0].startswith("the Snakefile wrote no manifest")
    assert context[1:] == ["workflow files differ from the recorded run: Snakefile"]  # same software
