"""The workflow through a real SLURM cluster: one node on 127.0.0.1 (Debian slurm-wlm + munge,
started by this test and stopped by PID), the slurm profile, the small demo dataset."""

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from neurofuse.config import REPO_ROOT
from neurofuse.resources import load_resource_model

pytestmark = [pytest.mark.xdist_group("snakemake"), pytest.mark.slow]

MODEL = load_resource_model(REPO_ROOT / "workflow" / "resources.yaml")
# A reduced target of the small demo: head motion of both runs and the dataset summary (which
# reads the stored index), three SLURM jobs. On a shared file system every rule runs the same
# way, so the other steps only add minutes.
TARGETS = (
    "results/work/sub-01/func/sub-01_task-rest_desc-hmc_motion.tsv",
    "results/work/sub-02/func/sub-02_task-rest_desc-hmc_motion.tsv",
    "results/report/dataset_summary.tsv",
)


@pytest.fixture(scope="module")
def slurm():
    from slurm_cluster import SlurmCluster, missing_binaries

    missing = missing_binaries()
    why = f"SLURM is not installed ({', '.join(missing)} missing; .ci/run installs slurm-wlm and munge)" if missing \
        else "starting munged and slurmd needs root" if os.geteuid() != 0 else None
    if why:
        if os.environ.get("NEUROFUSE_REQUIRE_SLURM"):
            pytest.fail(why)
        pytest.skip(why)
    # Not under pytest's tmp folders (0700): munged runs as user munge and must reach its files.
    root = Path(tempfile.mkdtemp(prefix="nf-slurm-"))
    cluster = SlurmCluster(root).start()
    yield cluster
    cluster.stop()
    shutil.rmtree(root, ignore_errors=True)


def _scontrol_jobs(env):
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, env=env, timeout=30)
    jobs = []
    for line in out.stdout.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        jobs.append(fields)
    return jobs


def test_small_demo_through_slurm(slurm, workdir, small_dataset, monkeypatch):
    for name, value in slurm.env.items():
        monkeypatch.setenv(name, value)
    result = workdir.snakemake(
        *TARGETS, "--profile", str(REPO_ROOT / "profiles" / "slurm"),
        # No accounting on this cluster: job states from squeue; poll every 2 s instead of 40 s.
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
        "--seconds-between-status-checks", "2", "--latency-wait", "5",
        "--set-resources", "fusion_train_model:gpu=0",  # no GPU on this node
        bids_dir=small_dataset, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:] + slurm.logs()[-3000:]
    for target in TARGETS:
        assert (workdir.path / target).stat().st_size > 100, target
    truth = small_dataset / "derivatives/simulation/sub-01/func/sub-01_task-rest_desc-truemotion_timeseries.tsv"
    motion = (workdir.path / TARGETS[0]).read_text().splitlines()
    assert len(motion) == len(truth.read_text().splitlines())
    # Every job ran as a SLURM job, completed, with the memory and time of its measured resources.
    jobs = [job for job in _scontrol_jobs(dict(os.environ)) if job.get("JobName", "").startswith("neurofuse")]
    assert sorted(job["Comment"] for job in jobs) == ["rule_fmri_estimate_head_motion_wildcards_sub-01_sub-01_task-rest",
                                                      "rule_fmri_estimate_head_motion_wildcards_sub-02_sub-02_task-rest",
                                                      "rule_report_summarize_dataset"], jobs
    assert all(job["JobState"] == "COMPLETED" for job in jobs), jobs
    model = MODEL["fmri_estimate_head_motion"]
    for job in jobs:
        if "head_motion" in job["Comment"]:
            sub = job["Comment"].rsplit("_", 2)[-2]
            bold_mb = (small_dataset / f"{sub}/func/{sub}_task-rest_bold.nii.gz").stat().st_size / 1024**2
            assert job["MinMemoryNode"] == f"{model.mem_mb(bold_mb)}M", job
            assert job["TimeLimit"] == f"00:{model.runtime(bold_mb):02d}:00", job
    # A second run has nothing to submit.
    again = workdir.snakemake(*TARGETS, "--profile", str(REPO_ROOT / "profiles" / "slurm"),
                              "--slurm-status-command", "squeue", bids_dir=small_dataset, timeout=300)
    assert again.returncode == 0 and "Nothing to be done" in again.stderr + again.stdout
