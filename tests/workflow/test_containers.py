"""Jobs in containers (``--software-deployment-method apptainer``, as on a SLURM cluster
with Apptainer): every rule gets the project image, the FSL/AFNI steps the tools image, and
a run without the image it needs stops before any job, saying what to set. Dry runs: a
stand-in ``apptainer`` answers Snakemake's version check; nothing is pulled."""

import os
import stat

import pytest

from neurofuse.errors import NeuroFuseError
from neurofuse.workflow import check_container_images, container_images

pytestmark = pytest.mark.xdist_group("snakemake_dry")

IMAGE = "europe-west4-docker.pkg.dev/nf-test/neurofuse/neurofuse@sha256:" + "1" * 64
TOOLS = "europe-west4-docker.pkg.dev/nf-test/neurofuse/fmri-tools@sha256:" + "2" * 64


def test_images_from_config_or_environment():
    env = {"NEUROFUSE_IMAGE": IMAGE, "NEUROFUSE_FMRI_TOOLS_IMAGE": TOOLS}
    assert container_images({}, env) == {"neurofuse": f"docker://{IMAGE}", "fmri_tools": f"docker://{IMAGE}"}
    assert container_images({}, env, backend="afni")["fmri_tools"] == f"docker://{TOOLS}"
    config = {"containers": {"neurofuse": "docker://lab/nf:1", "fmri_tools": None}}
    assert container_images(config, env, backend="fsl") == {"neurofuse": "docker://lab/nf:1",
                                                           "fmri_tools": f"docker://{TOOLS}"}
    assert container_images({}, {}) == {"neurofuse": None, "fmri_tools": None}
    check_container_images({"neurofuse": None, "fmri_tools": None}, in_containers=False, backend="fsl")
    with pytest.raises(NeuroFuseError, match="no image is set -> build and push the project image"):
        check_container_images({"neurofuse": None, "fmri_tools": None}, in_containers=True, backend="native")


@pytest.fixture
def fake_apptainer(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "apptainer"
    exe.write_text('#!/bin/sh\necho "apptainer version 1.3.4"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def test_every_rule_runs_in_the_project_image_and_fsl_steps_in_the_tools_image(workdir, small_dataset,
                                                                                fake_apptainer, monkeypatch):
    (workdir.path / "fsl.yaml").write_text("fmri:\n  backend: fsl\n")
    monkeypatch.setenv("PATH", f"{fake_apptainer}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("NEUROFUSE_FMRI_TOOLS_IMAGE", raising=False)
    monkeypatch.setenv("NEUROFUSE_IMAGE", IMAGE)
    args = ("-n", "--sdm", "apptainer", "--configfile", str(workdir.path / "fsl.yaml"))
    # the FSL backend in containers without an image that has FSL: stopped before any job
    result = workdir.snakemake(*args, bids_dir=small_dataset)
    assert result.returncode != 0
    assert ("NeuroFuse: fmri.backend is 'fsl' and jobs run in containers, but no image with FSL/AFNI is set -> "
            "export NEUROFUSE_FMRI_TOOLS_IMAGE=") in result.stderr
    monkeypatch.setenv("NEUROFUSE_FMRI_TOOLS_IMAGE", TOOLS)
    result = workdir.snakemake(*args, bids_dir=small_dataset)
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout + result.stderr
    pulled = sorted(line.split()[2] for line in text.splitlines() if line.startswith("Singularity image "))
    assert pulled == sorted([f"docker://{IMAGE}", f"docker://{TOOLS}"])
    # without any image, a container run is refused with what to set
    monkeypatch.delenv("NEUROFUSE_IMAGE")
    result = workdir.snakemake("-n", "--sdm", "apptainer", bids_dir=small_dataset)
    assert result.returncode != 0 and "export NEUROFUSE_IMAGE=docker://" in result.stderr
