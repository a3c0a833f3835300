"""``neurofuse cost``: the arithmetic against a case computed by hand, missing prices named,
the rule table in step with the workflow, and no unsourced figure in the shipped price table."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from neurofuse.config import REPO_ROOT
from neurofuse.cost import DEFAULT_PRICES, GIB, RULES, estimate_cost, load_prices, profile_overrides
from neurofuse.errors import NeuroFuseError
from neurofuse.resources import ResourceModel, load_resource_model

NEUROFUSE = str(Path(sys.executable).with_name("neurofuse"))
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def price(value):
    return {"price": value, "source": "https://example.org/test", "read": "2026-11-24"}


PRICES = {
    "currency": "USD", "default_region": "test-1",
    "regions": {"test-1": {
        "machine_hour": {"spot": {"n2-standard-2": price(0.03), "n1-standard-8": price(0.10)},
                         "on_demand": {"n2-standard-2": price(0.10), "n1-standard-8": price(0.38)}},
        "gpu_hour": {"spot": {"nvidia-tesla-t4": price(0.14)}, "on_demand": {"nvidia-tesla-t4": price(0.35)}},
        "storage_gb_month": {"standard": price(0.02)},
        "egress_gb": {"internet": price(0.12)},
    }},
}
#: A two-rule model: a per-run step and the GPU training step (floors as resources.yaml).
MODEL = ResourceModel({"rules": {
    "fmri_estimate_head_motion": [{"preset": "demo", "input_mb": 30, "cpu_seconds": 5.3, "max_rss_mb": 207}],
    "fusion_train_model": [{"preset": "demo", "input_mb": 310, "cpu_seconds": 23.3, "max_rss_mb": 1599}],
}})
OVERRIDES = {"fusion_train_model": {"machine": "n1-standard-8", "gpus": 1, "gpu_type": "nvidia-tesla-t4"}}


def write_prices(tmp_path, data=PRICES):
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def bench(root, rule, job, seconds, rss):
    path = root / "benchmarks" / rule / f"{job}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:00\t{rss}\t0\t0\t0\t0\t0\t0\t{seconds / 2}\n")


def sized(path, gib):
    """A sparse file of ``gib`` GiB (its size, not its blocks, is what the estimate reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(int(gib * GIB))


@pytest.fixture
def measured_run(tmp_path):
    results, bids = tmp_path / "results", tmp_path / "bids"
    bench(results, "fmri_estimate_head_motion", "sub-01/sub-01_task-rest", 120, 100)
    bench(results, "fmri_estimate_head_motion", "sub-02/sub-02_task-rest", 240, 100)
    bench(results, "fusion_train_model", "task-rest", 1800, 2000)
    sized(results / "sub-01" / "func" / "a.nii.gz", 2)
    sized(results / "sub-02" / "func" / "a.nii.gz", 4)
    sized(results / "group" / "maps.nii.gz", 1)
    sized(bids / "sub-01" / "func" / "sub-01_bold.nii.gz", 0.5)
    sized(bids / "sub-02" / "func" / "sub-02_bold.nii.gz", 1.5)
    sized(bids / "derivatives" / "x" / "sub-01" / "big.nii.gz", 9)  # not uploaded: not stored, not counted
    return results, bids


def test_arithmetic_matches_hand_computation(tmp_path, measured_run):
    results, bids = measured_run
    estimate = estimate_cost(subjects=10, results=results, bids_dir=bids, spot=True, download_results=True,
                             months=2, prices=load_prices(write_prices(tmp_path)), model=MODEL, overrides=OVERRIDES)
    # Per subject: head motion, mean of 120 s and 240 s = 180 s on n2-standard-2 (1.5 x 100 MB -> the
    # 1000 MB floor) at 0.03/h -> 0.05 h x 0.03 = 0.0015; inputs (0.5 + 1.5) / 2 = 1 GiB x 2 months x 0.02
    # = 0.04; outputs (2 + 4) / 2 = 3 GiB x 2 x 0.02 = 0.12; their download 3 x 0.12 = 0.36.
    assert estimate.per_subject == pytest.approx(0.0015 + 0.04 + 0.12 + 0.36)
    # Once: training 1800 s = 0.5 h on n1-standard-8 (0.10/h) + one T4 (0.14/h) = 0.05 + 0.07; group
    # outputs 1 GiB x 2 x 0.02 = 0.04 and their download 0.12.
    assert estimate.once == pytest.approx(0.05 + 0.07 + 0.04 + 0.12)
    assert estimate.total == pytest.approx(10 * 0.5215 + 0.28)
    items = {line.item: line for line in estimate.lines}
    assert items["fmri_estimate_head_motion on n2-standard-2"].quantity == pytest.approx(0.05)
    assert items["fusion_train_model: 1 x nvidia-tesla-t4"].quantity == pytest.approx(0.5)
    # Every price used is listed with its key, source and date.
    assert {p["key"] for p in estimate.prices} == {
        "regions.test-1.machine_hour.spot.n2-standard-2", "regions.test-1.machine_hour.spot.n1-standard-8",
        "regions.test-1.gpu_hour.spot.nvidia-tesla-t4", "regions.test-1.storage_gb_month.standard",
        "regions.test-1.egress_gb.internet"}
    assert "2 subject(s): 01, 02" in estimate.source
    # On-demand, no download, 5 minutes of start-up per job: 180 + 300 s at 0.10/h per subject and
    # 1800 + 300 s at 0.38 + 0.35 once.
    od = estimate_cost(subjects=3, results=results, spot=False, startup_minutes=5,
                       prices=load_prices(write_prices(tmp_path)), model=MODEL, overrides=OVERRIDES)
    compute_once = 2100 / 3600 * (0.38 + 0.35)
    assert od.per_subject == pytest.approx(480 / 3600 * 0.10 + 3 * 1 * 0.02)  # + outputs stored 1 month
    assert od.once == pytest.approx(compute_once + 1 * 0.02)
    assert any("not downloaded" in a for a in od.assumptions)


def test_short_jobs_billed_one_minute_from_presets(tmp_path):
    estimate = estimate_cost(subjects=4, preset="demo", runs_per_subject=2, prices=load_prices(write_prices(tmp_path)),
                             model=MODEL, overrides=OVERRIDES)
    items = {line.item: line for line in estimate.lines}
    # 5.3 s and 23.3 s jobs: each billed the 60 s minimum; two runs per subject.
    assert items["fmri_estimate_head_motion on n2-standard-2"].quantity == pytest.approx(2 * 60 / 3600)
    assert estimate.per_subject == pytest.approx(2 * 60 / 3600 * 0.03)
    assert estimate.once == pytest.approx(60 / 3600 * (0.10 + 0.14))
    assert any("1-minute minimum" in a for a in estimate.assumptions)
    assert any("storage of the inputs" in n for n in estimate.not_priced)


def test_missing_price_names_its_key(tmp_path, measured_run):
    data = yaml.safe_load(yaml.safe_dump(PRICES))
    data["regions"]["test-1"]["gpu_hour"]["spot"]["nvidia-tesla-t4"]["price"] = None
    with pytest.raises(NeuroFuseError, match=r"regions\.test-1\.gpu_hour\.spot\.nvidia-tesla-t4 is needed"):
        estimate_cost(subjects=2, prices=load_prices(write_prices(tmp_path, data)), model=MODEL, overrides=OVERRIDES)
    # Only the prices an estimate needs are required: on-demand still works.
    estimate_cost(subjects=2, spot=False, prices=load_prices(write_prices(tmp_path, data)), model=MODEL,
                  overrides=OVERRIDES)
    with pytest.raises(NeuroFuseError, match="no prices for region europe-west4.*test-1"):
        load_prices(write_prices(tmp_path), region="europe-west4")


def test_cli_shipped_table_stops_naming_the_unsourced_price(tmp_path):
    result = subprocess.run([NEUROFUSE, "cost", "--subjects", "5"], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "regions.us-central1.machine_hour.spot." in result.stderr and "spot-vms/pricing" in result.stderr
    filled = subprocess.run([NEUROFUSE, "cost", "--subjects", "5", "--prices", str(write_prices(tmp_path)),
                             "--format", "json"], capture_output=True, text=True)
    assert filled.returncode == 0, filled.stderr
    assert '"subjects": 5' in filled.stdout and '"assumptions"' in filled.stdout


def test_shipped_prices_are_sourced_or_empty():
    data = yaml.safe_load(DEFAULT_PRICES.read_text())
    entries = []

    def walk(node, key):
        if isinstance(node, dict) and "price" in node:
            entries.append((key, node))
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{key}.{k}")

    walk(data["regions"], "regions")
    assert entries
    for key, entry in entries:
        assert str(entry["source"]).startswith("https://cloud.google.com/"), key
        if entry["price"] is not None:  # a figure only with the date it was read
            assert re.fullmatch(r"\d{4}-\d\d-\d\d", str(entry["read"])), key
        else:
            assert entry["read"] is None, key
    # every VM shape the profile and the rules can choose has a slot
    from neurofuse.resources import GCP_MACHINES

    slots = set(data["regions"]["us-central1"]["machine_hour"]["spot"])
    assert {name for name, _, _ in GCP_MACHINES} | {"n1-standard-8"} <= slots


def test_rule_table_matches_workflow():
    model = load_resource_model(REPO_ROOT / "workflow" / "resources.yaml")
    assert set(RULES) == set(model.models)
    text = "\n".join(p.read_text() for p in (REPO_ROOT / "workflow" / "rules").glob("*.smk"))
    threads = dict(re.findall(r"^rule (\w+):.*?^    threads: (\d+)", text, flags=re.M | re.S))
    assert {rule: int(n) for rule, n in threads.items()} == {rule: t for rule, (_, t) in RULES.items()}
    assert profile_overrides()["fusion_train_model"] == {"machine": "n1-standard-8", "gpus": 1,
                                                         "gpu_type": "nvidia-tesla-t4"}
