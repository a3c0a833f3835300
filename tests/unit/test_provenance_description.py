"""dataset_description.json and .bidsignore of the derivatives root."""

import json
import os

from neurofuse import __version__
from neurofuse.provenance.description import (
    BIDSIGNORE,
    container_info,
    derivative_description,
    write_derivative_description,
)


def _source(tmp_path, **extra):
    bids = tmp_path / "raw"
    bids.mkdir()
    (bids / "dataset_description.json").write_text(
        json.dumps({"Name": "Tiny study", "BIDSVersion": "1.10.0", **extra}))
    return bids


def test_description_is_a_derivative_with_source_and_version(tmp_path):
    bids = _source(tmp_path, DatasetDOI="doi:10.18112/openneuro.ds000001.v1.0.0")
    desc = derivative_description(bids, env={})
    assert desc["DatasetType"] == "derivative"
    assert desc["BIDSVersion"] and "Tiny study" in desc["Name"]
    generated = desc["GeneratedBy"][0]
    assert generated["Name"] == "neurofuse" and generated["Version"] == __version__
    assert "Container" not in generated
    source = desc["SourceDatasets"][0]
    assert source["URL"] == bids.resolve().as_uri()
    assert source["DOI"] == "doi:10.18112/openneuro.ds000001.v1.0.0"
    assert desc["DatasetLinks"]["raw"] == source["URL"]  # resolves the bids:raw: URIs of the sidecars


def test_no_doi_no_doi_key_and_remote_urls_kept(tmp_path):
    desc = derivative_description(_source(tmp_path), env={})
    assert "DOI" not in desc["SourceDatasets"][0]
    remote = derivative_description("gs://bucket/study/", env={})
    assert remote["SourceDatasets"][0]["URL"] == "gs://bucket/study"


def test_container_from_environment():
    assert container_info({}) is None
    info = container_info({"NEUROFUSE_CONTAINER": "ghcr.io/lab/neurofuse:0.1.0",
                           "NEUROFUSE_CONTAINER_DIGEST": "sha256:abc123"})
    assert info == {"Type": "docker", "Tag": "ghcr.io/lab/neurofuse:0.1.0",
                    "URI": "docker://ghcr.io/lab/neurofuse@sha256:abc123"}
    assert container_info({"NEUROFUSE_CONTAINER": "/images/neurofuse_0.1.0.sif"})["Type"] == "apptainer"
    assert container_info({"NEUROFUSE_CONTAINER": "docker://lab/nf:1"})["Tag"] == "lab/nf:1"
    assert container_info({"NEUROFUSE_CONTAINER_DIGEST": "sha256:abc"}) == {"Type": "docker", "URI": "sha256:abc"}


def test_write_description_and_bidsignore_only_when_changed(tmp_path):
    bids = _source(tmp_path)
    out = tmp_path / "results"
    path = write_derivative_description(out, bids, env={"NEUROFUSE_CONTAINER": "lab/nf:1"})
    data = json.loads(path.read_text())
    assert data["GeneratedBy"][0]["Container"] == {"Type": "docker", "Tag": "lab/nf:1"}
    ignore = (out / ".bidsignore").read_text().split()
    assert ignore == list(BIDSIGNORE) == ["work/", "logs/", "benchmarks/", "neurofuse/", "report/", "CITATION.md",
                                          "ro-crate-metadata.json"]
    os.utime(path, (1, 1))
    write_derivative_description(out, bids, env={"NEUROFUSE_CONTAINER": "lab/nf:1"})
    assert path.stat().st_mtime == 1  # same content: file left alone
