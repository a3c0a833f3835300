"""The workflow with its dataset and outputs in a bucket (GCS emulator, Snakemake's GCS storage
plugin as default storage provider): outputs land in the bucket, a re-run has nothing to do, a
deleted output is made again, and each job downloads its own inputs only."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from gcs_emulator import privacy_decision

pytestmark = [pytest.mark.xdist_group("snakemake"), pytest.mark.slow]

NEUROFUSE = str(Path(sys.executable).with_name("neurofuse"))
# A reduced target set that still crosses every kind of staging: a BOLD image (head motion),
# a BrainVision recording with its .eeg and .vmrk (gradient, then BCG removal reading the
# gradient step's output back from the bucket) and the dataset index (summary report). The
# other steps stage the same way; they are left out to keep the test short.
MOTION = "results/work/sub-01/func/sub-01_task-rest_desc-hmc_motion.tsv"
TARGETS = (MOTION, "results/sub-01/eeg/sub-01_task-rest_desc-rpeaks_events.tsv", "results/report/dataset_summary.tsv")


def _jobs(text):
    table = text.split("Job stats:", 1)[1] if "Job stats:" in text else ""
    return {name: int(n) for name, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if name != "total"}


def test_workflow_reads_and_writes_a_bucket(gcs, small_dataset, workdir):
    bids = gcs.url("raw/bids")
    upload = subprocess.run([NEUROFUSE, "upload", str(small_dataset), bids, "--quiet"], capture_output=True,
                            text=True, timeout=300)
    assert upload.returncode == 0, upload.stderr
    storage = ("--default-storage-provider", "gcs", "--default-storage-prefix", gcs.url("study1"))
    decision = privacy_decision(small_dataset, workdir.path)

    def run(*args):
        result = workdir.snakemake(*decision, "--cores", "2", *storage, *args, *TARGETS, bids_dir=bids, timeout=900)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    first = run()
    assert _jobs(first.stderr + first.stdout) == {
        "fmri_estimate_head_motion": 1, "eeg_remove_gradient_artifact": 1, "eeg_remove_bcg_artifact": 1,
        "report_summarize_dataset": 1}
    outputs = gcs.objects("study1/results")
    for target in TARGETS:
        assert target.removeprefix("results/") in outputs, target
    assert "work/sub-01/eeg/sub-01_task-rest_desc-gradient_eeg.fif" in outputs  # an intermediate, in the bucket
    summary = outputs["report/dataset_summary.tsv"].download_as_text().splitlines()
    assert len(summary) == 3 and "subject" in summary[0]
    motion = outputs[MOTION.removeprefix("results/")].download_as_text().splitlines()
    truth = (small_dataset / "derivatives/simulation/sub-01/func/sub-01_task-rest_desc-truemotion_timeseries.tsv")
    assert len(motion) == len(truth.read_text().splitlines())  # one row per volume
    index = json.loads(outputs["neurofuse/dataset_index.json"].download_as_bytes())
    assert index["bids_dir"] == bids and len(index["runs"]) == 2
    # Each job fetched its own inputs only: sub-01's BOLD and recording, nothing of sub-02,
    # and no BIDS file was downloaded to build the index.
    retrieved = re.findall(r"Retrieving from storage: (\S+)", first.stderr + first.stdout)
    raw = sorted(url.removeprefix(bids + "/") for url in retrieved if url.startswith(bids))
    assert raw == ["sub-01/eeg/sub-01_task-rest_eeg.eeg", "sub-01/eeg/sub-01_task-rest_eeg.vhdr",
                   "sub-01/eeg/sub-01_task-rest_eeg.vmrk", "sub-01/func/sub-01_task-rest_bold.nii.gz"]
    # Nothing of the dataset stays on the machine but the sparse index mirror.
    assert not list((workdir.path / ".snakemake" / "storage").rglob("*.nii.gz"))

    again = run()
    assert "Nothing to be done" in again.stderr + again.stdout

    gcs.client.bucket(gcs.bucket).blob("study1/" + MOTION).delete()
    remade = run()
    assert _jobs(remade.stderr + remade.stdout) == {"fmri_estimate_head_motion": 1}
    assert MOTION.removeprefix("results/") in gcs.objects("study1/results")


def test_gs_paths_without_storage_settings_are_refused_before_any_job(workdir, tmp_path):
    result = workdir.snakemake("-n", bids_dir="gs://nf-lab/study1/bids")
    assert result.returncode == 1
    assert "bids_dir is a gs:// URL but Snakemake has no default storage provider" in result.stderr
    assert "--profile gcp" in result.stderr


def test_a_missing_bucket_is_named_before_any_job(gcs, workdir):
    storage = ("--default-storage-provider", "gcs", "--default-storage-prefix", gcs.url("out"))
    result = workdir.snakemake("-n", *storage, bids_dir="gs://no-such-bucket-nf/bids")
    assert result.returncode == 1
    assert "bucket 'no-such-bucket-nf' does not exist" in result.stderr and "emulator" in result.stderr
