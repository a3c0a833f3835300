"""Each cluster/cloud profile is accepted by Snakemake and its executor plugin (a dry run with
the profile; no cluster or cloud is contacted: the bucket is the local GCS emulator), and
every job asks for what it should: GPU on training only, memory and time from the measured
figures, Google Batch run limits above each rule's runtime."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from gcs_emulator import privacy_decision

from neurofuse.config import REPO_ROOT
from neurofuse.resources import GCP_MACHINES, load_resource_model
from neurofuse.upload import plan_upload, run_upload

pytestmark = pytest.mark.xdist_group("snakemake_dry")

PROFILES = REPO_ROOT / "profiles"
MODEL = load_resource_model(REPO_ROOT / "workflow" / "resources.yaml")
NEUROFUSE = str(Path(sys.executable).with_name("neurofuse"))
IMAGE = "europe-west4-docker.pkg.dev/nf-test/neurofuse/neurofuse:0.0.0@sha256:" + "0" * 64
ALL_RULES = {"anat_register_t1w_to_template", "fmri_estimate_head_motion",
             "fmri_resample_bold_to_template", "fmri_compute_confounds",
             "eeg_remove_gradient_artifact", "eeg_remove_bcg_artifact", "eeg_clean_signal",
             "eeg_compute_band_power", "fusion_fit_glm", "fusion_combine_glm", "fusion_train_model",
             "report_summarize_dataset", "report_build_subject", "report_build_group", "report_write_methods",
             "privacy_write_findings"}
#: Memory of the Compute Engine machine types (MiB): the N2 shapes the rules choose from, the GPU VM.
MACHINE_MIB = {name: mib for name, _, mib in GCP_MACHINES} | {"n1-standard-8": 30720}


def job_resources(text: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job block of a dry run (``threads`` included)."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", text):
        head = re.match(r"(?:local)?rule (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, flags=re.M)
        if not head or head.group(1) == "all" or not res:
            continue
        values = dict(item.split("=", 1) for item in res.group(1).split(", "))
        threads = re.search(r"^\s+threads: (\d+)$", block, flags=re.M)
        values["threads"] = threads.group(1) if threads else "1"
        jobs.append((head.group(1), values))
    return jobs


def profile_default(name: str, key: str) -> str:
    return re.search(rf"^{key}: (\S+)", (PROFILES / name / "config.v8+.yaml").read_text(), flags=re.M).group(1)


def dry_run(workdir, *args, **kwargs):
    result = workdir.snakemake("-n", *args, **kwargs)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    jobs = job_resources(result.stdout + result.stderr)
    assert {rule for rule, _ in jobs} == ALL_RULES
    return jobs


def assert_measured(jobs, dataset: Path):
    """mem_mb/runtime are the measured model's, at least the floors; exact where the input exists."""
    bold_mb = (dataset / "sub-01/func/sub-01_task-rest_bold.nii.gz").stat().st_size / 1024**2
    for rule, res in jobs:
        assert int(res["mem_mb"]) >= 1000 and int(res["runtime"]) >= 5, (rule, res)
    motion = [res for rule, res in jobs if rule == "fmri_estimate_head_motion"][0]
    model = MODEL["fmri_estimate_head_motion"]
    assert int(motion["mem_mb"]) == model.mem_mb(bold_mb) and int(motion["runtime"]) == model.runtime(bold_mb)


@pytest.fixture
def bucket_dataset(gcs, small_dataset):
    plan = plan_upload(small_dataset, gcs.url("study/bids"), client=gcs.client, check_dataset=False)
    run_upload(plan, client=gcs.client, progress=False)
    return gcs


def cloud_args(gcs, profile):
    return ("--profile", str(PROFILES / profile), "--default-storage-prefix", gcs.url("study"))


def test_slurm_profile_by_name_after_install(workdir, small_dataset, tmp_path, monkeypatch):
    config_home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    installed = subprocess.run([NEUROFUSE, "profiles", "install", "slurm"], capture_output=True, text=True)
    assert installed.returncode == 0 and (config_home / "snakemake" / "slurm" / "config.v8+.yaml").is_file()
    jobs = dry_run(workdir, "--profile", "slurm", bids_dir=small_dataset)
    for rule, res in jobs:
        assert ("gpu" in res) == (rule == "fusion_train_model"), rule
    assert [res["gpu"] for rule, res in jobs if rule == "fusion_train_model"] == ["1"]
    assert_measured(jobs, small_dataset)


def test_kubernetes_profile(workdir, small_dataset, bucket_dataset, monkeypatch):
    monkeypatch.setenv("NEUROFUSE_IMAGE", IMAGE)
    jobs = dry_run(workdir, *privacy_decision(small_dataset, workdir.path), *cloud_args(bucket_dataset, "kubernetes"),
                   bids_dir=bucket_dataset.url("study/bids"))
    for rule, res in jobs:
        if rule == "fusion_train_model":
            assert res["gpu"] == "1" and res["gpu_manufacturer"] == "nvidia"
        else:
            assert "gpu" not in res and "gpu_manufacturer" not in res, rule
        assert res["disk_mb"] == "<TBD>" or int(res["disk_mb"]) >= 10000
    assert_measured(jobs, small_dataset)


def test_gcp_profile(workdir, small_dataset, bucket_dataset, monkeypatch):
    monkeypatch.setenv("NEUROFUSE_IMAGE", IMAGE)
    monkeypatch.setenv("SNAKEMAKE_GOOGLEBATCH_PROJECT", "nf-test")
    monkeypatch.setenv("SNAKEMAKE_GOOGLEBATCH_REGION", "europe-west4")
    jobs = dry_run(workdir, *privacy_decision(small_dataset, workdir.path), *cloud_args(bucket_dataset, "gcp"),
                   bids_dir=bucket_dataset.url("study/bids"))
    default_machine = profile_default("gcp", "googlebatch-machine-type")
    for rule, res in jobs:
        gpu = res.get("nvidia_gpu")
        assert gpu == ("1" if rule == "fusion_train_model" else None), rule
        machine = res.get("googlebatch_machine_type", default_machine)
        assert (machine == "n1-standard-8") == (rule == "fusion_train_model")  # T4s attach to N1 VMs
        memory, runtime = int(res["googlebatch_memory"]), int(res["runtime"])
        assert memory == int(res["mem_mb"]) and memory + 1024 <= MACHINE_MIB[machine], (rule, res)
        limit = int(res["googlebatch_max_run_duration"].removesuffix("s"))
        assert limit >= max(2 * 60 * runtime, 3600), (rule, res)  # above the runtime, never below 1 h
        assert int(res["googlebatch_cpu_milli"]) == 1000 * int(res["threads"])
        assert res["googlebatch_boot_disk_gb"] == "<TBD>" or int(res["googlebatch_boot_disk_gb"]) >= 30
    assert_measured(jobs, small_dataset)


def test_gcp_profile_without_project_says_what_to_set(workdir, small_dataset, bucket_dataset, monkeypatch):
    monkeypatch.setenv("NEUROFUSE_IMAGE", IMAGE)
    monkeypatch.delenv("SNAKEMAKE_GOOGLEBATCH_PROJECT", raising=False)
    monkeypatch.setenv("SNAKEMAKE_GOOGLEBATCH_REGION", "europe-west4")
    result = workdir.snakemake("-n", *privacy_decision(small_dataset, workdir.path), *cloud_args(bucket_dataset, "gcp"),
                               bids_dir=bucket_dataset.url("study/bids"))
    assert result.returncode != 0 and "SNAKEMAKE_GOOGLEBATCH_PROJECT" in result.stdout + result.stderr


def test_profiles_retry_preempted_and_killed_jobs():
    """A preempted VM, an evicted pod, a requeued SLURM job or a killed run is re-run, not lost."""
    import yaml

    def load(path):
        return yaml.safe_load(path.read_text())

    gcp, k8s, slurm, local = (load(PROFILES / name / "config.v8+.yaml") for name in ("gcp", "kubernetes", "slurm", "local"))
    # Google Batch: every rule on Spot/preemptible VMs (an empty list means all rules), a preempted
    # task re-submitted by Batch up to 3 times, and any other failure retried by Snakemake.
    assert gcp["preemptible-rules"] == [] and gcp["preemptible-retries"] >= 3 and gcp["retries"] >= 1
    # Kubernetes (GKE Spot node pools): an evicted pod fails its Job; Snakemake re-runs it.
    assert k8s["retries"] >= 2
    # SLURM: a preempted or node-failed job is requeued by SLURM, and re-submitted by Snakemake.
    assert slurm["slurm-requeue"] is True and slurm["retries"] >= 2
    for profile in (gcp, k8s, slurm, local):
        assert profile["rerun-incomplete"] is True
    # Every run, with or without --profile: the workflow profile that Snakemake always reads.
    assert load(REPO_ROOT / "workflow" / "profiles" / "default" / "config.v8+.yaml")["rerun-incomplete"] is True
    # The training rule resumes from the checkpoint the previous attempt left in the bucket.
    rules = (REPO_ROOT / "workflow" / "rules" / "fusion.smk").read_text()
    assert "checkpoint_url=" in rules and "checkpoint_dir=" in rules
