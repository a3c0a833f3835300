"""neurofuse deidentify: the copy scans clean, the input is untouched, data and timing survive."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
import pytest

from neurofuse.cli import main
from neurofuse.errors import NeuroFuseError
from neurofuse.privacy import scan_dataset
from neurofuse.privacy.deidentify import deidentify_dataset
from privacy_phi import seed_phi


def _digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def deidentified(small_dataset, tmp_path_factory):
    base = tmp_path_factory.mktemp("deid")
    src = base / "ds"
    shutil.copytree(small_dataset, src, ignore=shutil.ignore_patterns("derivatives"))
    seed_phi(src)
    before = _digest(src)
    out = base / "clean"
    result = deidentify_dataset(src, out, seed=7, shifts_file=base / "shifts.json")
    return src, out, result, before, base


def test_input_is_never_modified(deidentified):
    src, _, _, before, _ = deidentified
    assert _digest(src) == before


def test_scan_of_the_copy_finds_nothing(deidentified):
    _, out, result, _, _ = deidentified
    assert result.clean, result.remaining.table()
    assert scan_dataset(out).findings == []


def test_left_out_files_are_listed(deidentified):
    _, out, result, _, _ = deidentified
    assert set(result.left_out) == {"sourcedata/sub-01/IM0001", "sourcedata/sub-01/T1.PAR",
                                    "sub-01/eeg/sub-01_acq-cap_photo.jpg", "sub-02/anat/sub-02_T1w.json"}
    assert "fix it and run again" in result.left_out["sub-02/anat/sub-02_T1w.json"]
    assert not (out / "sourcedata/sub-01/T1.PAR").exists()


def test_dates_shifted_consistently_per_subject(deidentified):
    src, out, _, _, base = deidentified
    shifts = json.loads((base / "shifts.json").read_text())["days_moved_back"]
    assert shifts["01"] % 7 == 0  # whole weeks: weekdays kept
    scans_in = (src / "sub-01/sub-01_scans.tsv").read_text().splitlines()[1:]
    scans_out = (out / "sub-01/sub-01_scans.tsv").read_text().splitlines()[1:]
    for a, b in zip(scans_in, scans_out):
        t_in = dt.datetime.fromisoformat(a.split("\t")[1])
        t_out = dt.datetime.fromisoformat(b.split("\t")[1])
        assert t_in - t_out == dt.timedelta(days=shifts["01"]) and t_out.year <= 1925
    vmrk = (out / "sub-01/eeg/sub-01_task-rest_eeg.vmrk").read_text()
    marker = dt.datetime.strptime(vmrk.split("New Segment,,1,1,0,")[1][:14], "%Y%m%d%H%M%S")
    assert dt.datetime(2021, 3, 1, 9, 10) - marker == dt.timedelta(days=shifts["01"])
    sidecar = json.loads((out / "sub-01/func/sub-01_task-rest_bold.json").read_text())
    assert dt.datetime.fromisoformat(sidecar["AcquisitionDateTime"]) == dt.datetime(2021, 3, 1, 9, 10) - dt.timedelta(days=shifts["01"])
    fif = mne.io.read_info(out / "sub-03/eeg/sub-03_task-outside_eeg.fif", verbose="error")
    assert fif["meas_date"] == dt.datetime(2021, 3, 1, 9, 10, tzinfo=dt.timezone.utc) - dt.timedelta(days=shifts["03"])


def test_identifiers_removed_and_data_kept(deidentified):
    src, out, _, _, _ = deidentified
    sidecar = json.loads((out / "sub-01/func/sub-01_task-rest_bold.json").read_text())
    assert not {"PatientName", "PatientID", "PatientBirthDate", "InstitutionAddress"} & set(sidecar)
    assert sidecar["FlipAngle"] == json.loads((src / "sub-01/func/sub-01_task-rest_bold.json").read_text())["FlipAngle"]
    assert sidecar["Notes"]["Operator"] == "call [removed] if the subject moves"
    table = (out / "participants.tsv").read_text().splitlines()
    assert table[0].split("\t") == ["participant_id", "age", "sex", "handedness"]
    assert table[2].split("\t")[1] == "89+"
    described = json.loads((out / "participants.json").read_text())
    assert "name" in json.loads((src / "participants.json").read_text()) and "name" not in described and "age" in described
    a, b = nib.load(src / "sub-01/anat/sub-01_T1w.nii.gz"), nib.load(out / "sub-01/anat/sub-01_T1w.nii.gz")
    assert np.array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj)) and np.allclose(a.affine, b.affine)
    assert b.header["descrip"].item() == b"" and len(nib.load(out / "sub-02/func/sub-02_task-rest_bold.nii.gz").header.extensions) == 0
    edf_in = mne.io.read_raw_edf(src / "sub-03/eeg/sub-03_task-rest_eeg.edf", verbose="error")
    edf_out = mne.io.read_raw_edf(out / "sub-03/eeg/sub-03_task-rest_eeg.edf", verbose="error")
    assert np.array_equal(edf_in.get_data(), edf_out.get_data())
    assert edf_out.info["subject_info"].get("last_name") in (None, "X")
    info = mne.io.read_info(out / "sub-03/eeg/sub-03_task-outside_eeg.fif", verbose="error")
    assert info["subject_info"].get("first_name") == "mne_anonymize" and "birthday" not in info["subject_info"]
    assert (out / "README").read_text().endswith("Contact the authors: lab@example.org. Pilot: name: [removed], [removed]\n")
    assert "Participant name: [removed]" in (out / "sourcedata/sub-01/rest_task.log").read_text()
    raw_in = mne.io.read_raw_brainvision(src / "sub-01/eeg/sub-01_task-rest_eeg.vhdr", verbose="error")
    raw_out = mne.io.read_raw_brainvision(out / "sub-01/eeg/sub-01_task-rest_eeg.vhdr", verbose="error")
    assert np.array_equal(raw_in.get_data(), raw_out.get_data())


def test_date_labels_are_shifted_with_their_references(deidentified):
    _, out, result, _, base = deidentified
    days = json.loads((base / "shifts.json").read_text())["days_moved_back"]["02"]
    label = (dt.date(2021, 3, 1) - dt.timedelta(days=days)).strftime("%Y%m%d")
    renamed = f"sub-02/ses-{label}/anat/sub-02_ses-{label}_T2w.json"
    assert (out / renamed).is_file() and not (out / "sub-02/ses-20210301").exists()
    assert json.loads((out / renamed).read_text())["IntendedFor"] == f"bids::sub-02/ses-{label}/func/x_bold.nii.gz"


def test_refuses_to_overwrite_or_nest(deidentified, tmp_path):
    src, out, _, _, _ = deidentified
    with pytest.raises(NeuroFuseError, match="not empty"):
        deidentify_dataset(src, out)
    with pytest.raises(NeuroFuseError, match="outside the dataset"):
        deidentify_dataset(src, src / "derivatives" / "clean")
    with pytest.raises(NeuroFuseError, match="inside the copy"):
        deidentify_dataset(src, tmp_path / "new", shifts_file=tmp_path / "new" / "shifts.json")
    assert not (tmp_path / "new").exists()


def test_cli_exit_codes(small_dataset, tmp_path, capsys):
    src = tmp_path / "ds"
    shutil.copytree(small_dataset, src, ignore=shutil.ignore_patterns("derivatives"))
    assert main(["privacy-check", str(src), "--quiet"]) == 1
    assert main(["deidentify", str(src), str(tmp_path / "clean"), "--quiet", "--hardlink"]) == 0
    assert "the scan of the copy finds nothing" in capsys.readouterr().out
    assert main(["privacy-check", str(tmp_path / "clean"), "--quiet"]) == 0
    assert (tmp_path / "clean/sub-01/func/sub-01_task-rest_bold.nii.gz").stat().st_nlink == 2
