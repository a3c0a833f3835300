"""The one BIDS index: real layouts, inheritance, filters, images, JSON round trip.

Real files (../shared/data, see its README): ``eeg_rest_fmri`` (bids-standard/bids-examples,
CC-BY-4.0), ``ds002336_meta`` (OpenNeuro ds002336, CC0), nibabel's test images.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest

from neurofuse.bids import DatasetIndex, build_index
from neurofuse.bids.skeleton import write_skeleton
from neurofuse.errors import BIDSError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
REST = SHARED / "eeg_rest_fmri"
DS2336 = SHARED / "ds002336_meta"
needs_rest = pytest.mark.skipif(not REST.is_dir(), reason=f"real data not found at {REST} (shared/ beside the repo)")
needs_2336 = pytest.mark.skipif(not DS2336.is_dir(), reason=f"real data not found at {DS2336}")


def _nib_data(name: str) -> Path:
    from nibabel.testing import data_path

    return Path(data_path) / name


# --------------------------------------------------------------------------- eeg_rest_fmri


@needs_rest
def test_real_eeg_rest_fmri_layout():
    index = build_index(REST, check_images=False)  # its images are empty placeholders
    assert index.subjects == ["32", "35", "36"]
    assert index.sessions == [] and index.tasks == ["rest"]
    assert index.name.startswith("EEG, fMRI and NODDI at rest")
    assert len(index.runs) == 3 and len(index.paired_runs()) == 3
    expected_st = json.loads((REST / "task-rest_bold.json").read_text())["SliceTiming"]
    for run, sub in zip(index.runs, ["32", "35", "36"]):
        assert run.id == f"sub-{sub}_task-rest" and run.subdir == f"sub-{sub}"
        assert run.bold.path == f"sub-{sub}/func/sub-{sub}_task-rest_bold.nii.gz"
        assert run.bold.repetition_time == 2.16
        assert run.bold.slice_timing == expected_st and len(run.bold.slice_timing) == 30
        assert run.bold.sidecars == ["task-rest_bold.json"]  # inherited from the top level
        assert run.bold.metadata["PulseSequenceType"] == "GE-EPI"
        assert run.bold.n_volumes is None  # images not read
        assert run.eeg.path == f"sub-{sub}/eeg/sub-{sub}_task-rest_eeg.vhdr"
        assert run.eeg.format == "BrainVision" and run.eeg.pairing == "entities"
        assert run.eeg.sampling_frequency == 5000.0 and run.eeg.metadata["SamplingFrequency"] == 5000
        assert run.eeg.metadata["EEGReference"] == "FCz"
        assert run.eeg.marker_file == f"sub-{sub}/eeg/sub-{sub}_task-rest_eeg.vmrk"
        assert run.eeg.n_volume_markers == 0  # raw recorder markers are SyncStatus only
        assert run.eeg.n_samples == 0 and run.eeg.duration == 0.0  # the .eeg placeholder is empty
        assert run.bold.n_slices == 30 and run.bold.duration is None
        assert run.t1w == f"sub-{sub}/anat/sub-{sub}_acq-y224_T1w.nii.gz"
        assert index.anat[sub] == [f"sub-{sub}/anat/sub-{sub}_acq-y224_T1w.nii.gz",
                                   f"sub-{sub}/anat/sub-{sub}_acq-y232_T1w.nii.gz"]
    # derivatives/ (Analyzer exports) are not indexed; the missing volume triggers are reported
    assert not any("derivatives" in r.eeg.path for r in index.runs)
    assert len(index.warnings) == 3
    assert all("no 'Response/R128' volume markers" in w and "SyncStatus/Sync On" in w for w in index.warnings)


@needs_rest
def test_real_layout_filters_and_no_marker_check():
    index = build_index(REST, participant_label=["sub-35", "36"], exclude_participant_label="36",
                        volume_marker=None, check_images=False)
    assert index.subjects == ["35"] and index.warnings == []
    assert index.runs[0].eeg.n_volume_markers is None
    assert index.filters["participant_label"] == ["35", "36"]


@needs_rest
def test_real_layout_refuses_placeholder_images():
    with pytest.raises(BIDSError, match=r"sub-32_task-rest_bold\.nii\.gz: cannot read the NIfTI header \(the file is empty\)"):
        build_index(REST, check_images=True)


# --------------------------------------------------------------------------- inheritance (ds002336 sidecars)


@pytest.fixture
def ds2336(tmp_path: Path) -> Path:
    """The ds002336 sidecars at their real BIDS paths, with empty data files."""
    if not DS2336.is_dir():
        pytest.skip(f"real data not found at {DS2336}")
    root = tmp_path / "ds002336"
    for flat in DS2336.iterdir():
        name = flat.name
        if name.startswith("sub-xp101_"):
            _, datatype, rest = name.split("_", 2)
            dest = root / "sub-xp101" / datatype / rest
        elif name.startswith("derivatives_"):
            continue
        else:
            dest = root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(flat, dest)
    write_skeleton(root, {"dataset_description": None, "files": {
        "sub-xp101/func/sub-xp101_task-eegfmriNF_bold.nii.gz": None,
        "sub-xp101/anat/sub-xp101_T1w.nii.gz": None,
        "sub-xp101/eeg/sub-xp101_task-eegfmriNF_eeg.vhdr": None,
        "sub-xp101/eeg/sub-xp101_task-eegfmriNF_eeg.vmrk": None,
        "sub-xp102/func/sub-xp102_task-eegfmriNF_bold.nii.gz": None,
    }})
    return root


def test_inheritance_ds002336(ds2336: Path):
    top = json.loads((ds2336 / "task-eegfmriNF_bold.json").read_text())
    own = json.loads((ds2336 / "sub-xp101/func/sub-xp101_task-eegfmriNF_bold.json").read_text())
    assert top["SliceTiming"] != own["SliceTiming"]  # the test is meaningful only if they differ
    index = build_index(ds2336, check_images=False)
    r101, r102 = index.run("sub-xp101_task-eegfmriNF"), index.run("sub-xp102_task-eegfmriNF")
    # xp101: its own sidecar overrides the top-level one, top-level-only keys are inherited
    assert r101.bold.sidecars == ["task-eegfmriNF_bold.json", "sub-xp101/func/sub-xp101_task-eegfmriNF_bold.json"]
    assert r101.bold.slice_timing == own["SliceTiming"] and len(r101.bold.slice_timing) == 32
    assert r101.bold.metadata["Instructions"] == top["Instructions"]
    assert r101.bold.metadata["SeriesDescription"] == "NEUROFEEDBACK_BOLD_IRMF-EEG1"
    assert r101.bold.repetition_time == 2.0
    # xp102 has only the top-level sidecar
    assert r102.bold.sidecars == ["task-eegfmriNF_bold.json"] and r102.bold.slice_timing == top["SliceTiming"]
    assert "SeriesDescription" not in r102.bold.metadata
    # EEG: sampling rate from the top-level eeg.json (the .vhdr is empty)
    assert r101.eeg.sampling_frequency == 5000.0 and r101.eeg.pairing == "entities"
    assert r102.eeg is None
    assert index.anat == {"xp101": ["sub-xp101/anat/sub-xp101_T1w.nii.gz"]}


def test_inheritance_levels_and_non_matching_sidecars(tmp_path: Path):
    write_skeleton(tmp_path, {"subjects": ["01"], "sessions": ["1"], "files": {
        "task-rest_bold.json": {"RepetitionTime": 3.0, "Level": "root", "Root": 1},
        "bold.json": {"Generic": True, "Level": "root-generic"},          # fewer entities: applied first
        "task-other_bold.json": {"RepetitionTime": 99.0},                 # other task: not applied
        "task-rest_eeg.json": {"RepetitionTime": 98.0},                   # other suffix: not applied
        "sub-01/sub-01_task-rest_bold.json": {"Level": "subject", "Sub": 1},
        "sub-01/ses-1/sub-01_ses-1_bold.json": {"Level": "session", "RepetitionTime": 2.5},
        "sub-01/ses-1/func/sub-01_ses-1_task-rest_run-2_bold.json": {"RepetitionTime": 99.0},  # run-2 only
        "sub-01/ses-1/func/sub-01_ses-1_task-rest_run-1_bold.json": {"Level": "file"},
        "sub-01/ses-1/func/sub-01_ses-1_task-rest_run-1_bold.nii.gz": None,
    }})
    run = build_index(tmp_path, check_images=False).runs[0]
    assert run.bold.sidecars == [
        "bold.json", "task-rest_bold.json", "sub-01/sub-01_task-rest_bold.json",
        "sub-01/ses-1/sub-01_ses-1_bold.json", "sub-01/ses-1/func/sub-01_ses-1_task-rest_run-1_bold.json"]
    md = run.bold.metadata
    assert md["Level"] == "file" and md["Root"] == 1 and md["Sub"] == 1 and md["Generic"] is True
    assert run.bold.repetition_time == 2.5


def test_conflicting_sidecars_in_one_folder_warn(tmp_path: Path):
    write_skeleton(tmp_path, {"files": {
        "task-rest_bold.json": {"RepetitionTime": 2.0},
        "run-1_bold.json": {"RepetitionTime": 2.0},
        "sub-01/func/sub-01_task-rest_run-1_bold.nii.gz": None}})
    index = build_index(tmp_path, check_images=False)
    assert any("equally specific" in w and "run-1_bold.json" in w for w in index.warnings)


# --------------------------------------------------------------------------- filters


@pytest.fixture
def three_subjects(tmp_path: Path) -> Path:
    write_skeleton(tmp_path, {"subjects": ["01", "02", "03"], "sessions": ["a", "b"], "files": {
        "task-rest_bold.json": {"RepetitionTime": 2.0},
        "task-motor_bold.json": {"RepetitionTime": 2.0},
        "sub-{sub}/ses-{ses}/func/sub-{sub}_ses-{ses}_task-rest_bold.nii.gz": None,
        "sub-{sub}/ses-{ses}/func/sub-{sub}_ses-{ses}_task-motor_bold.nii.gz": None,
        "sub-{sub}/ses-a/anat/sub-{sub}_ses-a_T1w.nii.gz": None,
    }})
    return tmp_path


def test_filters(three_subjects: Path):
    root = three_subjects
    assert len(build_index(root, check_images=False).runs) == 12
    ix = build_index(root, participant_label=["sub-01", "03"], check_images=False)
    assert ix.subjects == ["01", "03"] and len(ix.runs) == 8
    ix = build_index(root, exclude_participant_label=["sub-02"], task="motor", check_images=False)
    assert ix.subjects == ["01", "03"] and ix.tasks == ["motor"] and len(ix.runs) == 4
    ix = build_index(root, session="ses-b", task=["task-rest"], check_images=False)
    assert ix.sessions == ["b"] and len(ix.runs) == 3
    # the T1w of session a serves the session-b runs even though session a is filtered out
    assert ix.runs[0].t1w == "sub-01/ses-a/anat/sub-01_ses-a_T1w.nii.gz"


def test_filters_act_during_discovery(three_subjects: Path):
    """A broken file in an excluded subject or session is never opened."""
    (three_subjects / "sub-02/ses-a/func/sub-02_ses-a_task-rest_bold.json").write_text("{broken")
    (three_subjects / "sub-03/ses-b/sub-03_ses-b_bold.json").write_text("{broken")
    build_index(three_subjects, participant_label="01", check_images=False)
    build_index(three_subjects, exclude_participant_label="02", session="a", check_images=False)
    with pytest.raises(BIDSError, match="invalid JSON"):
        build_index(three_subjects, check_images=False)


def test_exclude_unknown_label_warns(three_subjects: Path):
    ix = build_index(three_subjects, exclude_participant_label="sub-99", check_images=False)
    assert any("exclude_participant_label '99'" in w for w in ix.warnings)


def test_bad_filter_label(three_subjects: Path):
    with pytest.raises(BIDSError, match="invalid sub label 'sub-0_1'"):
        build_index(three_subjects, participant_label="sub-0_1")


# --------------------------------------------------------------------------- images (check_images=True)


def test_check_images_on_real_nibabel_files(tmp_path: Path):
    write_skeleton(tmp_path, {"files": {
        "task-rest_bold.json": {"RepetitionTime": 2.0, "SliceTiming": [i * 0.08 for i in range(24)]},
        "task-rest_eeg.json": {"SamplingFrequency": 5000},
        "sub-01/eeg/sub-01_task-rest_eeg.vhdr": {"vhdr": {"sfreq": 5000}},
        "sub-01/eeg/sub-01_task-rest_eeg.vmrk": {"volumes": {"n": 3, "interval": 10000}},
        "sub-02/func/sub-02_task-motor_bold.json": {"RepetitionTime": 2.0, "SliceTiming": [0, 0.6, 1.2]},
    }})
    (tmp_path / "sub-01/func").mkdir(parents=True)
    shutil.copy(_nib_data("example4d.nii.gz"), tmp_path / "sub-01/func/sub-01_task-rest_bold.nii.gz")
    shutil.copy(_nib_data("functional.nii"), tmp_path / "sub-02/func/sub-02_task-motor_bold.nii")
    (tmp_path / "sub-01/eeg/sub-01_task-rest_eeg.eeg").write_bytes(bytes(2 * 40_000))  # 1 channel, INT_16
    index = build_index(tmp_path)  # check_images=True by default
    r1, r2 = index.runs
    assert r1.bold.shape == [128, 96, 24, 2] and r1.bold.n_volumes == 2
    assert r1.bold.zooms[:3] == pytest.approx([2.0, 2.0, 2.2], abs=1e-5)
    assert r2.bold.shape == [17, 21, 3, 20] and r2.bold.n_volumes == 20
    assert r1.bold.n_slices == 24 and r2.bold.n_slices == 3 and r2.bold.duration == 40.0
    assert r1.eeg.n_samples == 40_000 and r1.eeg.duration == 8.0  # from the .eeg data file's size
    # 3 volume markers but 2 volumes: a warning, not an error
    assert any("3 'Response/R128' volume markers" in w and "has 2 volumes" in w for w in index.warnings)
    # example4d's header says TR = 2000 "seconds" (milliseconds): explained, and the sidecar's 2.0 s is used
    ms = [w for w in index.warnings if "milliseconds labelled as seconds" in w]
    assert len(ms) == 1 and "sub-01_task-rest_bold.nii.gz" in ms[0] and "TR = 2000 s" in ms[0]
    assert r1.bold.repetition_time == 2.0
    assert not any("sub-02_task-motor_bold" in w and "header gives TR" in w for w in index.warnings)  # 2 s = 2 s


def test_multi_member_gzip_is_not_truncated(tmp_path: Path):
    """The ISIZE trailer of a multi-member gzip disagrees; full decompression clears it."""
    raw = gzip.decompress(_nib_data("example4d.nii.gz").read_bytes())
    write_skeleton(tmp_path, {"files": {"task-rest_bold.json": {"RepetitionTime": 2.0}}})
    (tmp_path / "sub-01/func").mkdir(parents=True)
    path = tmp_path / "sub-01/func/sub-01_task-rest_bold.nii.gz"
    path.write_bytes(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    assert int.from_bytes(path.read_bytes()[-4:], "little") != len(raw)
    assert build_index(tmp_path).runs[0].bold.n_volumes == 2


# --------------------------------------------------------------------------- JSON


def test_json_round_trip_deterministic_atomic(three_subjects: Path, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    index = build_index(three_subjects, check_images=False)
    path = out / "index" / "dataset.json"
    index.to_json(path)
    first = path.read_bytes()
    assert first == build_index(three_subjects, check_images=False).to_bytes()  # same input, same bytes
    data = json.loads(first)
    assert list(data) == sorted(data) and data["format"] == "neurofuse-bids-index/1"
    again = DatasetIndex.from_json(path)
    assert again == index and again.to_bytes() == first
    assert [r.id for r in again.bold_runs()] == [r.id for r in index.runs]
    # unchanged content: the file is not rewritten, its mtime stays
    os.utime(path, (1_000_000_000, 1_000_000_000))
    again.to_json(path)
    assert path.stat().st_mtime == 1_000_000_000
    # changed content: rewritten, and no temporary file is left behind
    again.warnings.append("x: y -> z")
    again.to_json(path)
    assert path.stat().st_mtime != 1_000_000_000
    assert DatasetIndex.from_json(path).warnings[-1] == "x: y -> z"
    assert sorted(p.name for p in path.parent.iterdir()) == ["dataset.json"]


def test_from_json_errors(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        DatasetIndex.from_json(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(BIDSError, match="not a NeuroFuse dataset index"):
        DatasetIndex.from_json(tmp_path / "bad.json")


def test_selections_and_lookup(three_subjects: Path):
    index = build_index(three_subjects, check_images=False)
    assert index.eeg_runs() == [] and index.paired_runs() == [] and len(index.bold_runs()) == 12
    run = index.run("sub-02_ses-b_task-motor")
    assert run.subject == "02" and run.session == "b" and run.task == "motor" and run.subdir == "sub-02/ses-b"
    with pytest.raises(KeyError):
        index.run("sub-09_task-rest")


def test_gunzip_size_members_padding_and_damage(tmp_path: Path):
    from neurofuse.bids.index import _gunzip_size

    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(b"a" * 3000) + gzip.compress(b"b" * 5000) + b"\0" * 64)
    assert _gunzip_size(str(path)) == (8000, True, None)
    data = gzip.compress(bytes(range(256)) * 400)
    path.write_bytes(data[:-30])
    total, complete, error = _gunzip_size(str(path))
    assert not complete and error is None and 0 < total < 102400
    path.write_bytes(data[:100] + b"\xff" * 50 + data[150:])
    assert _gunzip_size(str(path))[2] is not None
