"""`snakemake -n` on a study-sized skeleton (50 subjects x 2 sessions x 2 runs, the shape of
benchmarks/bench_dag.py at 1,000 subjects): one job per step and run, and no step whose cost
grows faster than the number of runs (the DAG once looked each run up in a list)."""

import re
import sys
import time

import pytest
import yaml

from neurofuse.bids.skeleton import write_skeleton
from neurofuse.config import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
from bench_index import skeleton_spec  # noqa: E402

pytestmark = pytest.mark.xdist_group("snakemake_dry")

PER_RUN = ("fmri_estimate_head_motion", "fmri_correct_slice_timing", "fmri_register_bold_reference",
           "fmri_resample_bold_to_template", "fmri_compute_confounds", "fmri_plot_qc",
           "eeg_remove_gradient_artifact", "eeg_remove_bcg_artifact", "eeg_clean_signal", "eeg_compute_band_power",
           "fusion_fit_glm")


def test_dry_run_of_50_subjects_has_one_job_per_step_and_run(workdir, tmp_path):
    subjects, runs = 50, 50 * 2 * 2
    write_skeleton(tmp_path / "bids", skeleton_spec(subjects, vmrk_markers=10))
    config_file = workdir.path / "config" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["index"]["check_images"] = False  # empty placeholder images
    config_file.write_text(yaml.safe_dump(config))
    t0 = time.perf_counter()
    result = workdir.snakemake("-n", "--quiet", "host", "rules", bids_dir=tmp_path / "bids")
    seconds = time.perf_counter() - t0
    assert result.returncode == 0, result.stderr[-2000:]
    table = result.stdout.split("Job stats:", 1)[1]
    jobs = {name: int(n) for name, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}
    assert {rule: jobs.get(rule) for rule in PER_RUN} == dict.fromkeys(PER_RUN, runs)
    assert jobs["anat_register_t1w_to_template"] == subjects and jobs["report_build_subject"] == subjects
    for rule in ("fusion_train_model", "fusion_combine_glm", "report_build_group", "report_summarize_dataset", "all"):
        assert jobs[rule] == 1, rule
    assert jobs["total"] == len(PER_RUN) * runs + 2 * subjects + 5 == 2305
    # ~5 s here (2 ms per job); a step that scans every run for every job would take minutes.
    assert seconds < 90, f"{seconds:.0f} s for {jobs['total']} jobs"
