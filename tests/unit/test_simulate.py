"""neurofuse.simulate: the dataset as a whole (layout, BIDS validity, determinism, safety)."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from neurofuse.errors import NeuroFuseError
from neurofuse.simulate import PRESETS, TRUTH_DIR, TRUTH_INDEX, SimulationSummary, simulate_dataset

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("simulate_small")]

# a quick configuration for tests that need their own simulation
TINY = {"preset": "small", "n_subjects": 1, "n_volumes": 8}


def _validator() -> str | None:
    found = shutil.which("bids-validator-deno")
    if found:
        return found
    beside = Path(sys.executable).parent / "bids-validator-deno"
    return str(beside) if beside.exists() else None


def _validation_errors(path: Path) -> list[dict]:
    exe = _validator()
    if exe is None:
        pytest.skip("bids-validator-deno is not installed")
    proc = subprocess.run([exe, str(path), "--format", "json"], capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stdout)
    return [i for i in report["issues"]["issues"] if i["severity"] == "error"]


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_presets_match_the_plan():
    demo, small = PRESETS["demo"], PRESETS["small"]
    assert (demo["n_subjects"], demo["n_sessions"], demo["n_runs"], demo["n_volumes"]) == (2, 1, 1, 150)
    assert (demo["tr"], demo["eeg_sfreq"], demo["epi_voxel"], demo["t1w_voxel"]) == (2.0, 5000.0, 3.0, 1.0)
    assert small["n_volumes"] <= 40 and small["epi_voxel"] >= 5 and small["t1w_voxel"] == 2.0


def test_small_dataset_layout(small_dataset):
    root = small_dataset
    for sub in ("01", "02"):
        for rel in (f"sub-{sub}/anat/sub-{sub}_T1w.nii.gz", f"sub-{sub}/func/sub-{sub}_task-rest_bold.nii.gz",
                    f"sub-{sub}/func/sub-{sub}_task-rest_bold.json", f"sub-{sub}/sub-{sub}_scans.tsv",
                    f"sub-{sub}/eeg/sub-{sub}_task-rest_eeg.vhdr", f"sub-{sub}/eeg/sub-{sub}_task-rest_eeg.vmrk",
                    f"sub-{sub}/eeg/sub-{sub}_task-rest_eeg.eeg", f"sub-{sub}/eeg/sub-{sub}_task-rest_eeg.json",
                    f"sub-{sub}/eeg/sub-{sub}_task-rest_channels.tsv",
                    f"sub-{sub}/eeg/sub-{sub}_task-rest_events.tsv"):
            assert (root / rel).is_file(), rel
    for rel in ("dataset_description.json", "participants.tsv", "participants.json", "README",
                "task-rest_bold.json", f"{TRUTH_DIR}/{TRUTH_INDEX}", f"{TRUTH_DIR}/dataset_description.json",
                f"{TRUTH_DIR}/space-MNI152NLin2009cAsym_label-alpha_mask.nii.gz",
                f"{TRUTH_DIR}/space-MNI152NLin2009cAsym_label-beta_mask.json"):
        assert (root / rel).is_file(), rel
    assert not list(root.glob("sub-*/ses-*")), "one session: no ses- folders"
    # nothing left behind next to the dataset
    assert [p.name for p in root.parent.iterdir()] == [root.name]
    truth_dd = json.loads((root / TRUTH_DIR / "dataset_description.json").read_text())
    assert truth_dd["DatasetType"] == "derivative" and truth_dd["GeneratedBy"][0]["Name"] == "neurofuse"


def test_bids_validator_accepts_the_dataset(small_dataset):
    errors = _validation_errors(small_dataset)
    assert errors == [], errors[:5]


def test_bids_validator_accepts_the_truth_derivative(small_dataset):
    # validated as a dataset of its own so that its .bidsignore (non-BIDS truth files) applies
    errors = _validation_errors(small_dataset / TRUTH_DIR)
    assert errors == [], errors[:5]


def test_same_seed_gives_byte_identical_files(small_dataset, tmp_path):
    summary = simulate_dataset(tmp_path / "again", preset="small", seed=42)
    assert isinstance(summary, SimulationSummary)
    assert summary.runs == 2 and summary.subjects == ["01", "02"] and summary.seconds > 0
    assert str(tmp_path / "again") in str(summary) and "\n" not in str(summary)
    first, second = _hashes(small_dataset), _hashes(tmp_path / "again")
    assert sorted(first) == sorted(second)
    different = [name for name in first if first[name] != second[name]]
    assert different == []
    for gz in (tmp_path / "again").rglob("*.gz"):  # no timestamp in the gzip header
        header = gz.read_bytes()[:10]
        assert header[:2] == b"\x1f\x8b" and header[4:8] == b"\0\0\0\0", gz.name
        with gzip.open(gz) as fh:
            fh.read(1)


def test_other_seed_gives_other_data(small_dataset, tmp_path):
    simulate_dataset(tmp_path / "other", preset="small", seed=7, n_subjects=1)
    for rel in ("sub-01/anat/sub-01_T1w.nii.gz", "sub-01/func/sub-01_task-rest_bold.nii.gz",
                "sub-01/eeg/sub-01_task-rest_eeg.eeg",
                f"{TRUTH_DIR}/sub-01/func/sub-01_task-rest_desc-truemotion_timeseries.tsv"):
        a, b = (small_dataset / rel).read_bytes(), (tmp_path / "other" / rel).read_bytes()
        assert a != b, rel


def test_refuses_a_folder_that_is_not_a_simulation(tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(NeuroFuseError) as info:
        simulate_dataset(target, **TINY)
    assert info.value.hint and "notes.txt" not in str(info.value)
    assert (target / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


@pytest.mark.parametrize("kwargs", [{"preset": "huge"}, {"preset": "small", "n_volumes": 2},
                                    {"preset": "small", "tr": -1.0}, {"preset": "small", "n_subjects": 0}])
def test_refuses_bad_parameters(tmp_path, kwargs):
    with pytest.raises(NeuroFuseError):
        simulate_dataset(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_interrupted_run_leaves_no_dataset(tmp_path, monkeypatch):
    from neurofuse.simulate import dataset

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dataset, "_write_anat", boom)
    with pytest.raises(KeyboardInterrupt):
        simulate_dataset(tmp_path / "ds", **TINY)
    assert list(tmp_path.iterdir()) == []


def test_replaces_a_previous_simulation_and_writes_sessions_and_runs(tmp_path, capsys):
    target = tmp_path / "ds"
    (target / TRUTH_DIR).mkdir(parents=True)
    (target / TRUTH_DIR / TRUTH_INDEX).write_text(json.dumps({"generator": {"name": "neurofuse simulate"}}))
    (target / "stale.txt").write_text("from the previous simulation")
    simulate_dataset(target, preset="small", n_subjects=1, n_sessions=2, n_runs=2, n_volumes=8, seed=3,
                     progress=True)
    assert "4.0/4 runs" in capsys.readouterr().err  # the progress bar counted every run
    assert not (target / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    for ses in ("1", "2"):
        base = target / "sub-01" / f"ses-{ses}"
        assert (base / f"sub-01_ses-{ses}_scans.tsv").is_file()
        assert (base / "anat" / f"sub-01_ses-{ses}_T1w.nii.gz").is_file()
        for run in ("1", "2"):
            assert (base / "func" / f"sub-01_ses-{ses}_task-rest_run-{run}_bold.nii.gz").is_file()
            assert (base / "eeg" / f"sub-01_ses-{ses}_task-rest_run-{run}_eeg.vhdr").is_file()
    truth = json.loads((target / TRUTH_DIR / TRUTH_INDEX).read_text())
    assert len(truth["runs"]) == 4 and len(truth["anat"]) == 2
    assert _validation_errors(target) == []
