"""Resources from measured figures (workflow/resources.yaml) and the benchmark summary."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from neurofuse.config import REPO_ROOT
from neurofuse.errors import NeuroFuseError
from neurofuse.resources import (
    GCP_MACHINES,
    ResourceModel,
    gcp_machine_type,
    load_resource_model,
    read_benchmarks,
    summarize_benchmarks,
)

MODEL = load_resource_model(REPO_ROOT / "workflow" / "resources.yaml")
RULE_FILES = sorted((REPO_ROOT / "workflow" / "rules").glob("*.smk"))


def test_every_rule_asks_for_its_own_measured_resources():
    for path in RULE_FILES:
        for block in re.split(r"(?m)^(?=rule \w+:)", path.read_text())[1:]:
            rule = re.match(r"rule (\w+):", block).group(1)
            assert f'**measured("{rule}")' in block, f"{path.name}: {rule} does not use measured({rule!r})"
            assert rule in MODEL.models, f"{rule} has no measurements in workflow/resources.yaml"


@pytest.mark.parametrize("rule", sorted(MODEL.models))
def test_requests_cover_every_measurement_with_the_margin(rule):
    model = MODEL[rule]
    for m in model.measurements:
        assert model.mem_mb(m.input_mb) >= 1.5 * m.max_rss_mb
        assert model.runtime(m.input_mb) * 60 >= 3.0 * m.cpu_seconds
        assert model.max_run_seconds(m.input_mb) >= max(3600, 2 * 60 * model.runtime(m.input_mb))
    sizes = [0, 10, 100, 1000, 10000]
    mems = [model.mem_mb(x) for x in sizes]
    assert mems == sorted(mems) and mems[0] >= 1000  # grows with the input, never below the floor
    assert model.mem_mb(500, attempt=2) == 2 * model.mem_mb(500)
    assert model.runtime(500, attempt=3) == 3 * model.runtime(500)


def test_big_inputs_get_more_than_the_demo():
    gradient = MODEL["eeg_remove_gradient_artifact"]
    demo = gradient.mem_mb(199.8)
    # a 20-minute, 64-channel 5 kHz recording (float32 .eeg, ~1.5 GB) needs far more memory
    assert gradient.mem_mb(1465) > 5 * demo
    assert gcp_machine_type(1, gradient.mem_mb(1465)) not in ("n2-standard-2", "n2-highmem-2")


def test_machine_types_fit_threads_and_memory():
    assert gcp_machine_type(1, 1000) == "n2-standard-2"
    assert gcp_machine_type(1, 7168) == "n2-standard-2" and gcp_machine_type(1, 7169) == "n2-highmem-2"
    assert gcp_machine_type(4, 1000) == "n2-highmem-4"
    assert gcp_machine_type(1, 10**7) == GCP_MACHINES[-1][0]


def test_snakemake_resources_are_callables_of_input_and_attempt(tmp_path):
    class Input(list):  # a job's input files, as Snakemake passes them
        pass

    (tmp_path / "a.eeg").write_bytes(b"\0" * (3 * 1024**2))
    (tmp_path / "a.vhdr").write_bytes(b"\0" * 1024**2)
    files = Input([str(tmp_path / "a.eeg"), str(tmp_path / "a.vhdr"), str(tmp_path / "not-yet-made.fif")])
    res = MODEL.snakemake_resources("eeg_remove_gradient_artifact")
    model = MODEL["eeg_remove_gradient_artifact"]
    assert res["mem_mb"](None, files, 2) == model.mem_mb(4.0, 2) == res["googlebatch_memory"](None, files, 2)
    assert res["runtime"](None, files, 1) == model.runtime(4.0)
    assert res["googlebatch_max_run_duration"](None, files, 1) == f"{model.max_run_seconds(4.0)}s"
    assert res["googlebatch_machine_type"](None, files, 1, 1) == gcp_machine_type(1, model.mem_mb(4.0))
    bigger = Input([str(tmp_path / "a.eeg")])  # another job: sized afresh, not from the memo
    assert res["mem_mb"](None, bigger, 1) == model.mem_mb(3.0)


@pytest.mark.parametrize("data,words", [
    ({}, "no rules with measurements"),
    ({"rules": {"x": [{"input_mb": 1}]}}, "needs input_mb, cpu_seconds and max_rss_mb"),
    ({"rules": {"x": []}}, "has no measurements"),
])
def test_bad_measurement_files_are_named(data, words):
    with pytest.raises(NeuroFuseError, match=words):
        ResourceModel(data)
    with pytest.raises(NeuroFuseError, match="no measured resources for rule nope"):
        MODEL["nope"]


def _write_benchmarks(root: Path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    rows = {
        "fmri_estimate_head_motion/sub-01/sub-01_task-rest.tsv": "13.4\t0:00:13\t205.7\t1\t1\t1\t1\t1\t1\t5.3\n",
        "fmri_estimate_head_motion/sub-02/sub-02_task-rest.tsv": "16.7\t0:00:16\t206.0\t1\t1\t1\t1\t1\t1\t5.1\n",
        "anat_register_t1w_to_template/sub-01/sub-01.tsv": "129.3\t0:02:09\t564.6\t1\t1\t1\t1\t1\t1\t35.8\n",
        "fusion_train_model/task-rest.tsv": "66.9\t0:01:06\t2239.0\t1\t1\t1\t1\t1\t1\t50.8\n",
    }
    for rel, row in rows.items():
        path = root / "benchmarks" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + row)


def test_benchmark_summary_per_rule_and_subject(tmp_path):
    _write_benchmarks(tmp_path)
    summary = summarize_benchmarks(read_benchmarks(tmp_path))
    motion = summary["rules"]["fmri_estimate_head_motion"]
    assert motion["jobs"] == 2 and motion["max_s"] == 16.7 and motion["max_rss_mb"] == 206.0
    assert motion["mean_s"] == pytest.approx(15.05)
    assert summary["subjects"]["01"]["jobs"] == 2 and summary["subjects"]["01"]["wall_s"] == pytest.approx(142.7)
    assert summary["subjects"]["(group)"]["max_rss_mb"] == 2239.0
    cli = subprocess.run([str(Path(sys.executable).with_name("neurofuse")), "benchmarks", str(tmp_path)],
                         capture_output=True, text=True)
    assert cli.returncode == 0 and "fusion_train_model" in cli.stdout and "2239" in cli.stdout
    with pytest.raises(NeuroFuseError, match="no benchmarks folder"):
        read_benchmarks(tmp_path / "nothing")
