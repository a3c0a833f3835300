"""A tiny project with real Snakemake metadata records, for the provenance tests."""

import hashlib

import pytest

CONFIG = {"bids_dir": "../raw", "output_dir": "results", "seed": 7, "fmri": {"fd_threshold": 0.5}}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_record(workdir, output, **fields):
    """A metadata record written by Snakemake's own persistence code (the format we read)."""
    from snakemake.persistence import MetadataRecord
    from snakemake.persistence.file import FilePersistence

    store = FilePersistence(path=workdir / ".snakemake")
    record = MetadataRecord(record_format_version=6, incomplete=False, starttime=1.0, endtime=2.0, **fields)
    store._write_record(output, record)


def make_project(tmp_path):
    """raw/ dataset, workflow/ code, project/ with results/ and .snakemake/metadata."""
    raw = tmp_path / "raw"
    (raw / "sub-01/func").mkdir(parents=True)
    (raw / "dataset_description.json").write_text('{"Name": "Tiny", "BIDSVersion": "1.10.0"}')
    (raw / "sub-01/func/sub-01_bold.nii.gz").write_bytes(b"raw bold")
    wf = tmp_path / "workflow"
    (wf / "rules").mkdir(parents=True)
    (wf / "scripts").mkdir()
    (wf / "Snakefile").write_text('include: "rules/x.smk"\n')
    (wf / "rules/x.smk").write_text('rule make_a:\n    script:\n        "../scripts/make_a.py"\n')
    (wf / "scripts/make_a.py").write_text("print('a')\n")

    proj = tmp_path / "project"
    out = proj / "results"
    for rel, data in {
        "sub-01/func/sub-01_desc-a_timeseries.tsv": b"a\tb\n1\t2\n",
        "work/sub-01/x.mat": b"matrix",
        "neurofuse/dataset_index.json": b"{}",
        "logs/make_a.log": b"log text",
        "benchmarks/make_a.tsv": b"s\n1.0\n",
    }.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    bold = str(raw / "sub-01/func/sub-01_bold.nii.gz")
    write_record(proj, "results/work/sub-01/tmp.nii.gz", rule="make_tmp", input=[bold], log=[], params=[],
                 code='        "../scripts/make_tmp.py"\n', input_checksums={bold: f"sha256:{sha(b'raw bold')}"})
    for output in ("results/sub-01/func/sub-01_desc-a_timeseries.tsv", "results/work/sub-01/x.mat"):
        write_record(proj, output, rule="make_a", input=sorted(["results/work/sub-01/tmp.nii.gz", bold]),
                     log=["results/logs/make_a.log"], params=["0.5"], code='        "../scripts/make_a.py"\n',
                     conda_env="bmFtZTogeA==")
    write_record(proj, "results/old/gone.txt", rule="old", input=[], log=[], params=[])  # stale, file deleted
    return {"raw": raw, "wf": wf, "proj": proj, "out": out}


@pytest.fixture()
def project(tmp_path):
    return make_project(tmp_path)
