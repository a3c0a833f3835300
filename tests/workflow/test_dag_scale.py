"""`snakemake -n` on a study-sized skeleton (50 subjects x 2 sessions x 2 runs, the shape of
benchmarks/bench_dag.py at 1,000 subjects): one job per step and run, and no step whose cost
grows faster than the number of runs (the DAG once looked each run up in a list)."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from neurofuse.bids.skeleton import write_skeleton
from neurofuse.config import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
from bench_index import skeleton_spec  # noqa: E402

pytestmark = pytest.mark.xdist_group("snakemake_dry")

PER_RUN = ("fmri_estimate_head_motion", "fmri_resample_bold_to_template", "fmri_compute_confounds",
           "eeg_remove_gradient_artifact", "eeg_remove_bcg_artifact", "eeg_clean_signal", "eeg_compute_band_power",
           "fusion_fit_glm")


def _skeleton_project(workdir, bids, subjects):
    """A skeleton of ``subjects`` x 2 sessions x 2 runs at ``bids``; the project set not to read its images."""
    write_skeleton(bids, skeleton_spec(subjects, vmrk_markers=10))
    config_file = workdir.path / "config" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["index"]["check_images"] = False  # empty placeholder images
    config_file.write_text(yaml.safe_dump(config))


def test_dry_run_of_50_subjects_has_one_job_per_step_and_run(workdir, tmp_path):
    subjects, runs = 50, 50 * 2 * 2
    _skeleton_project(workdir, tmp_path / "bids", subjects)
    t0 = time.perf_counter()
    result = workdir.snakemake("-n", "--quiet", "host", "rules", bids_dir=tmp_path / "bids")
    seconds = time.perf_counter() - t0
    assert result.returncode == 0, result.stderr[-2000:]
    table = result.stdout.split("Job stats:", 1)[1]
    jobs = {name: int(n) for name, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}
    assert {rule: jobs.get(rule) for rule in PER_RUN} == dict.fromkeys(PER_RUN, runs)
    assert jobs["anat_register_t1w_to_template"] == subjects and jobs["report_build_subject"] == subjects
    once = ("fusion_train_model", "fusion_combine_glm", "report_build_group", "report_summarize_dataset",
            "report_write_methods", "privacy_write_findings", "all")
    for rule in once:
        assert jobs[rule] == 1, rule
    assert jobs["total"] == len(PER_RUN) * runs + 2 * subjects + len(once) == 1707
    # ~5 s here (2 ms per job); a step that scans every run for every job would take minutes.
    assert seconds < 90, f"{seconds:.0f} s for {jobs['total']} jobs"


def _job_blocks(listing: str) -> list[str]:
    """The jobs of a ``snakemake -n`` listing (rule line and its indented lines), job ids left out, sorted."""
    blocks, current = [], None
    for line in listing.splitlines():
        if line.startswith(("rule ", "localrule ")):
            current = [line]
            blocks.append(current)
        elif current is not None and line.startswith("    ") and not line.strip().startswith("jobid:"):
            current.append(line)
        else:
            current = None
    return sorted("\n".join(block) for block in blocks)


# `snakemake` with every job of the DAG written to DUMP_FILE (JSON) on exit: rule, wildcards,
# input, output, log, params, threads and resources, as the job would get them.
DUMP_JOBS = """
import atexit, json, os, sys
import snakemake.api
from snakemake.cli import main
from snakemake.dag import DAG

dags, init = [], DAG.__init__
def keep(self, *args, **kwargs):
    init(self, *args, **kwargs)
    dags.append(self)
DAG.__init__ = keep

def named(items):
    return [list(items), sorted((k, repr(v)) for k, v in items.items())]

def dump():
    jobs = [dict(rule=job.rule.name, wildcards=sorted(job.wildcards_dict.items()),
                 input=named(job.input), output=named(job.output), log=named(job.log),
                 params=[[repr(v) for v in job.params], sorted((k, repr(v)) for k, v in job.params.items())],
                 threads=job.threads, resources=sorted((k, repr(v)) for k, v in job.resources.items()))
            for dag in dags for job in dag.jobs]
    with open(os.environ["DUMP_FILE"], "w") as f:
        json.dump(sorted(jobs, key=json.dumps), f, default=str)
atexit.register(dump)
sys.argv[0] = "snakemake"
sys.exit(main())
"""


def test_snakemake_shortcuts_leave_every_job_as_it_was(workdir, tmp_path):
    """neurofuse.dag makes the DAG cheaper to build; every job (rule, wildcards, inputs, outputs,
    logs, params, threads, resources, and the reasons `snakemake -n` lists) is the same as with
    Snakemake's own code."""
    from neurofuse.dag import PLAIN_ENV

    _skeleton_project(workdir, tmp_path / "bids", 2)
    script = tmp_path / "dump_jobs.py"
    script.write_text(DUMP_JOBS)
    listings, dumps = {}, {}
    for plain in ("1", "0"):
        dump = tmp_path / f"jobs-{plain}.json"
        env = dict(os.environ, PYTHONHASHSEED="0", DUMP_FILE=str(dump), **{PLAIN_ENV: plain})
        cmd = [sys.executable, str(script), "-s", str(REPO_ROOT / "workflow" / "Snakefile"),
               "--directory", str(workdir.path), "-n", "--config", f"bids_dir={tmp_path / 'bids'}"]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        listings[plain] = _job_blocks(result.stdout + result.stderr)
        dumps[plain] = json.loads(dump.read_text())
    assert len(listings["0"]) == len(dumps["0"]) == 2 * 2 * 2 * len(PER_RUN) + 2 * 2 + 7 == 75
    assert any(job["params"][0] for job in dumps["0"]) and all(job["resources"] for job in dumps["0"])
    assert dumps["0"] == dumps["1"]
    assert listings["0"] == listings["1"]
    # With the job descriptions quieted (built only when shown): the same output, job stats included.
    quiet = {}
    for plain in ("1", "0"):
        env = dict(os.environ, PYTHONHASHSEED="0", **{PLAIN_ENV: plain})
        snakemake = [str(Path(sys.executable).with_name("snakemake")), *cmd[2:], "--quiet", "host", "rules"]
        result = subprocess.run(snakemake, capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        quiet[plain] = result.stdout + result.stderr
    assert "Job stats:" in quiet["0"] and quiet["0"] == quiet["1"]
