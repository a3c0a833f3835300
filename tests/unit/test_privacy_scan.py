"""neurofuse privacy-check: every seeded identifier is found, by file and field; clean data passes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from neurofuse.cli import main
from neurofuse.privacy import scan_dataset
from neurofuse.privacy.text import classify_text, find_dates, mask
from privacy_phi import NIBABEL_DATA, seed_phi, write_edf

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="module")
def phi_dataset(small_dataset, tmp_path_factory) -> tuple[Path, set]:
    root = tmp_path_factory.mktemp("phi") / "ds"
    shutil.copytree(small_dataset, root, ignore=shutil.ignore_patterns("derivatives"))
    return root, seed_phi(root)


def test_every_seeded_identifier_is_found_and_nothing_else(phi_dataset):
    root, expected = phi_dataset
    report = scan_dataset(root)
    found = {(f.file, f.field) for f in report.findings}
    assert expected - found == set(), "missed"
    assert found - expected == set(), "false positives"


def test_severities_and_actions(phi_dataset):
    root, _ = phi_dataset
    by = {(f.file, f.field): f for f in scan_dataset(root).findings}
    side = "sub-01/func/sub-01_task-rest_bold.json"
    assert by[(side, "PatientName")].severity == "high"
    assert by[(side, "AcquisitionDateTime")].severity == "medium"
    assert "1925" in by[(side, "AcquisitionDateTime")].action
    assert by[("participants.tsv", "column 'age'")].found == "1 of 2 ages are 89 or over"
    assert by[("sub-02/anat/sub-02_T1w.json", "(file)")].found.startswith("unreadable: not UTF-8")
    edf = by[("sub-03/eeg/sub-03_task-rest_eeg.edf", "patient (name)")]
    assert edf.severity == "high" and edf.subject == "03"


def test_report_never_repeats_the_identifiers(phi_dataset):
    root, _ = phi_dataset
    text = scan_dataset(root).to_json()
    for secret in ["Jane", "Doe", "448812", "1951-05-02", "19510502", "555-201", "Hospital Road", "example.org"]:
        assert secret not in text


def test_cli_table_json_and_exit_codes(phi_dataset, tmp_path, capsys):
    root, expected = phi_dataset
    out = tmp_path / "scan.json"
    assert main(["privacy-check", str(root), "--json", str(out), "--quiet"]) == 1
    printed = capsys.readouterr().out
    assert re.search(r"^sub-01/func/sub-01_task-rest_bold\.json +PatientName +high ", printed, re.MULTILINE)
    data = json.loads(out.read_text())
    assert {(f["file"], f["field"]) for f in data["findings"]} == expected
    assert data["counts"]["high"] > 0 and data["files_checked"] == data["files_total"]


def test_fail_on_threshold(tmp_path, capsys):
    (tmp_path / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.9.0"}')
    (tmp_path / "task-rest_bold.json").write_text('{"InstitutionName": "Somewhere Hospital", "RepetitionTime": 2}')
    assert main(["privacy-check", str(tmp_path), "--quiet"]) == 1
    assert main(["privacy-check", str(tmp_path), "--fail-on", "medium", "--quiet"]) == 0
    assert "nothing at or above --fail-on medium" in capsys.readouterr().out


def test_simulated_raw_dataset_has_only_its_acquisition_dates(small_dataset, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(small_dataset, root, ignore=shutil.ignore_patterns("derivatives"))
    found = {(f.file, f.field) for f in scan_dataset(root).findings}
    assert found == {("sub-01/sub-01_scans.tsv", "column 'acq_time'"), ("sub-02/sub-02_scans.tsv", "column 'acq_time'")}


def test_real_siemens_sidecars_and_recorder_file():
    """ds002336 (CC0) keeps InstitutionAddress and the scanner's serial number; MNE's BrainVision test file has a date."""
    found = {(f.file, f.field, f.severity) for f in scan_dataset(SHARED / "ds002336_meta").findings}
    t1 = "sub-xp101_anat_sub-xp101_T1w.json"
    assert {(t1, "InstitutionAddress", "low"), (t1, "DeviceSerialNumber", "medium"), (t1, "StationName", "low")} <= found
    assert not any(f[1].startswith(("SliceTiming", "ShimSetting", "ImageType")) for f in found)
    bv = scan_dataset(SHARED / "brainvision_mne").findings
    assert [(f.file, f.field, f.found) for f in bv] == [("test.vmrk", "New Segment date", "the measurement date (2013)")]


def test_nibabel_par_headers():
    """Philips PAR headers shipped with nibabel: a named one is flagged, the anonymised one is not."""
    root = NIBABEL_DATA
    named = {(f.field, f.severity) for f in scan_dataset(root, faces=False).findings if f.file == "T1.PAR"}
    assert named == {("Patient name", "high"), ("Examination date/time", "medium")}
    assert not [f for f in scan_dataset(root, faces=False).findings if f.file == "umass_anonymized.PAR"]


def test_empty_placeholder_images_are_unreadable_findings():
    report = scan_dataset(SHARED / "eeg_rest_fmri")
    unreadable = {f.file for f in report.findings if f.field == "(file)"}
    assert "sub-32/anat/sub-32_acq-y224_T1w.nii.gz" in unreadable


def test_anonymised_edf_is_clean(tmp_path):
    write_edf(tmp_path / "sub-01_eeg.edf", patient="X X X X", recording="Startdate X X X X", startdate="01.01.85")
    assert scan_dataset(tmp_path).findings == []


def test_sampling_is_said(phi_dataset):
    root, _ = phi_dataset
    report = scan_dataset(root, max_files=10, faces=False)
    assert report.sampled and report.files_checked == 10 < report.files_total
    assert any("were NOT checked" in note for note in report.notes)
    assert "SAMPLED" in report.summary()


def test_not_a_folder(tmp_path, capsys):
    assert main(["privacy-check", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "not a folder" in err and "\n" not in err.strip()


@pytest.mark.parametrize("text,expected", [
    ("seen on 2021-03-01", ["medium"]),
    ("shifted to 1921-03-01", []),
    ("mail jane@x.org", ["high"]),
    ("call +44 20 7946 0958", ["high"]),
    ("SliceTiming 0.0 1.0 2.0", []),
    ("TR 2.16 s, 30 slices", []),
    ("v1.0.20190902", []),
])
def test_text_patterns(text, expected):
    assert [hit.severity for hit in classify_text(text)] == expected


def test_mask_and_dates():
    assert mask("Jane Doe") == "'J*** D**' (8 characters)"
    assert mask("19510502") == "a date in 1951"
    assert [d.isoformat() for d in find_dates("02-MAY-1951 and 01.03.2021")] == ["2021-03-01", "1951-05-02"]
