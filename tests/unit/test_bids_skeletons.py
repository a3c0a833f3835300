"""Dry BIDS skeletons described in YAML (tests/unit/bids_skeletons/*.yaml) -> expected index.

Each spec holds a layout (see :mod:`neurofuse.bids.skeleton`) and an ``expect`` block.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from neurofuse.bids import DatasetIndex, build_index
from neurofuse.bids.skeleton import expand_files, write_skeleton

SPECS = sorted((Path(__file__).parent / "bids_skeletons").glob("*.yaml"))


def test_the_specs_are_there():
    names = {p.stem for p in SPECS}
    assert {"sessions_runs", "no_sessions", "eeg_only", "bold_only", "acq_time_pairing"} <= names


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: p.stem)
def test_skeleton(spec_path: Path, tmp_path: Path):
    spec = yaml.safe_load(spec_path.read_text())
    write_skeleton(tmp_path, spec)
    index = build_index(tmp_path, check_images=False, **spec.get("build", {}))
    exp = spec["expect"]
    by_id = {r.id: r for r in index.runs}

    assert len(index.runs) == exp["runs"]
    for key, method in (("bold", index.bold_runs), ("eeg", index.eeg_runs), ("paired", index.paired_runs)):
        if key in exp:
            assert len(method()) == exp[key], key
    if "warnings" in exp:
        assert len(index.warnings) == exp["warnings"], index.warnings
    for text in exp.get("warning_contains", []):
        assert any(text in w for w in index.warnings), (text, index.warnings)
    for prop in ("subjects", "sessions", "tasks"):
        if prop in exp:
            assert getattr(index, prop) == exp[prop], prop
    if "run_ids" in exp:
        assert [r.id for r in index.runs] == exp["run_ids"]
    for run_id, t1w in exp.get("t1w", {}).items():
        assert by_id[run_id].t1w == t1w
    for run_id, pairing in exp.get("pairing", {}).items():
        run = by_id[run_id]
        assert (run.eeg.pairing if run.eeg else None) == pairing, run_id
        if pairing is None:
            assert run.bold is None
    for run_id, path in exp.get("eeg_path", {}).items():
        assert by_id[run_id].eeg.path == path
    for run_id, n in exp.get("n_volume_markers", {}).items():
        assert by_id[run_id].eeg.n_volume_markers == n
    for run_id, tr in exp.get("tr_from_markers", {}).items():
        assert by_id[run_id].eeg.tr_from_markers == pytest.approx(tr)
    for run_id, tr in exp.get("repetition_time", {}).items():
        assert by_id[run_id].bold.repetition_time == tr

    # every run survives the JSON round trip unchanged
    index.to_json(tmp_path / "index.json")
    assert DatasetIndex.from_json(tmp_path / "index.json") == index


def test_skeleton_expansion_and_defaults(tmp_path: Path):
    spec = {"subjects": ["a", "b"], "sessions": ["x"],
            "files": {"sub-{sub}/ses-{ses}/f_{sub}.txt": "sub={sub}", "top.json": {"k": 1}}}
    files = expand_files(spec)
    assert files == {"sub-a/ses-x/f_a.txt": "sub=a", "sub-b/ses-x/f_b.txt": "sub=b", "top.json": {"k": 1}}
    written = write_skeleton(tmp_path, spec)
    assert (tmp_path / "dataset_description.json").exists()
    assert (tmp_path / "sub-b/ses-x/f_b.txt").read_text() == "sub=b"
    assert len(written) == 4
    with pytest.raises(ValueError, match="no sessions"):
        expand_files({"subjects": ["a"], "files": {"sub-{sub}/ses-{ses}/x": None}})
