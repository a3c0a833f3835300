"""neurofuse assess: measured facts, ratings, the recommendation's rules and the IRB checklist."""

from __future__ import annotations

import json
import shutil

import pytest

from neurofuse.cli import main
from neurofuse.privacy.assess import assess, measure


@pytest.fixture(scope="module")
def raw(small_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("assess") / "ds"
    shutil.copytree(small_dataset, root, ignore=shutil.ignore_patterns("derivatives"))
    return root


def test_measured_facts(raw):
    facts = measure(raw)
    size = sum(p.stat().st_size for p in raw.rglob("*") if p.is_file())
    assert facts["gigabytes"] == round(size / 1e9, 3) and facts["files"] == sum(1 for p in raw.rglob("*") if p.is_file())
    assert facts["subjects"] == 2 and facts["datatypes"] == {"anat": 2, "eeg": 2, "func": 2}


@pytest.mark.parametrize("skills,support,budget,expected", [
    ("novice", "none", None, "local"),
    ("hpc", "hpc", None, "HPC"),
    ("scripting", "cloud", 500.0, "local"),  # small dataset: one machine is enough
])
def test_recommendation_rules(raw, skills, support, budget, expected):
    result = assess(raw, skills=skills, support=support, budget=budget)
    assert result.recommendation == expected
    rated = {d.name: d for d in result.dimensions}
    assert rated["privacy"].value == "2 medium" and rated["privacy"].basis == "measured"
    assert rated["researcher skills"].basis == "answered"


def test_large_dataset_with_cloud_support_goes_to_the_cloud(raw, monkeypatch):
    import neurofuse.privacy.assess as module

    real = module.measure
    monkeypatch.setattr(module, "measure", lambda root: {**real(root), "gigabytes": 3500.0})
    result = assess(raw, skills="cloud", support="cloud", budget=2000)
    assert result.recommendation == "cloud" and result.profile.startswith("profiles/gcp")
    assert any("3500 GB is more than a download should move" in r for r in result.reasons)
    assert any("CMEK" in item for _, item in result.checklist)
    no_budget = assess(raw, skills="cloud", support="cloud", budget=None)
    assert no_budget.recommendation != "cloud"


def test_checklist_reflects_the_scan(raw):
    items = dict((item.split(":")[0], done) for done, item in assess(raw, skills="novice", support="none",
                                                                       budget=None).checklist)
    assert items["identifying data"] is False and items["2 dates, ages or serial numbers remain"] is False


def test_cli_markdown_and_json(raw, tmp_path, capsys):
    out = tmp_path / "assessment.md"
    assert main(["assess", str(raw), "--skills", "hpc", "--support", "hpc", "--format", "markdown", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| privacy | 2 medium | quasi-identifiers (de-identify first) | any | measured |" in text
    assert "## Recommendation: HPC (`profiles/slurm" in text
    capsys.readouterr()
    assert main(["assess", str(raw), "--skills", "novice", "--support", "none", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["recommendation"] == "local" and data["facts"]["privacy_counts"]["medium"] == 2
    assert {"done": False, "item": "a named person is responsible for the data and for reporting a breach"} in data["checklist"]


def test_budget_compared_with_the_cost_estimate(raw, tmp_path):
    from neurofuse.cost import CostEstimate

    estimate = CostEstimate(subjects=40, region="test-1", currency="USD", pricing="Spot", source="x", lines=[],
                            per_subject=12.5, once=20.0, total=520.0, prices=[], assumptions=[])
    path = tmp_path / "cost.json"
    path.write_text(estimate.to_json())
    low = assess(raw, skills="cloud", support="cloud", budget=400, cost_estimate=path)
    budget = next(d for d in low.dimensions if d.name == "budget")
    assert budget.rating == "below the estimate" and "estimate 520.00 USD for 40 subjects (Spot, test-1)" in budget.value
    assert any("below the Google Cloud estimate (520.00 USD" in r for r in low.reasons)
    high = assess(raw, skills="cloud", support="cloud", budget=600, cost_estimate=path)
    assert next(d for d in high.dimensions if d.name == "budget").rating == "covers the estimate"
    assert not any("below the Google Cloud estimate" in r for r in high.reasons)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(Exception, match="cannot read the cost estimate"):
        assess(raw, skills="cloud", support="cloud", budget=600, cost_estimate=tmp_path / "bad.json")
