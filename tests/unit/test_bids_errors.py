"""Bad input: every problem is ONE line "path: problem -> hint" naming the file and the fix."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from neurofuse.bids import build_index
from neurofuse.bids.skeleton import write_skeleton
from neurofuse.errors import BIDSError

BOLD = "sub-01/func/sub-01_task-rest_bold.nii.gz"
EEG = "sub-01/eeg/sub-01_task-rest_eeg"


def make(root: Path, files: dict, **spec) -> Path:
    write_skeleton(root, {"files": files, **spec})
    return root


def error_of(root: Path, **kwargs) -> str:
    with pytest.raises(BIDSError) as info:
        build_index(root, **kwargs)
    message = str(info.value)
    assert "\n" not in message and " -> " in message, message
    return message


def _nifti(shape, **extra) -> dict:
    return {"nifti": {"shape": list(shape), **extra}}


def test_folder_missing(tmp_path: Path):
    msg = error_of(tmp_path / "nowhere")
    assert msg.startswith(f"{tmp_path / 'nowhere'}: the BIDS folder does not exist -> check bids_dir")


def test_no_dataset_description(tmp_path: Path):
    make(tmp_path, {BOLD: None}, dataset_description=None)
    msg = error_of(tmp_path)
    assert msg.startswith(f"{tmp_path}: not a BIDS dataset: dataset_description.json is missing -> ")
    assert "point bids_dir at the dataset root" in msg


def test_repetition_time_missing(tmp_path: Path):
    make(tmp_path, {"task-rest_bold.json": {"EchoTime": 0.03}, BOLD: None})
    msg = error_of(tmp_path, check_images=False)
    assert msg.startswith(f"{tmp_path / BOLD}: RepetitionTime is missing")
    assert "task-rest_bold.json" in msg and 'add "RepetitionTime": <seconds> to task-rest_bold.json' in msg


def test_repetition_time_missing_without_any_sidecar(tmp_path: Path):
    make(tmp_path, {BOLD: None})
    msg = error_of(tmp_path, check_images=False)
    assert "there are none" in msg and "sub-01/func/sub-01_task-rest_bold.json" in msg


@pytest.mark.parametrize("value, shown, hint", [
    ("2.0", "'2.0' (a string)", "without quotes"),
    (0, "got 0", "time between volumes"),
    (-2, "got -2", "time between volumes"),
    (True, "true (a boolean)", "time between volumes"),
])
def test_repetition_time_not_positive_number(tmp_path: Path, value, shown, hint):
    make(tmp_path, {"task-rest_bold.json": {"RepetitionTime": 2.0}, BOLD: None,
                    "sub-01/func/sub-01_task-rest_bold.json": {"RepetitionTime": value}})
    msg = error_of(tmp_path, check_images=False)
    # names the sidecar that sets the bad value, and the BOLD it applies to
    assert msg.startswith(f"{tmp_path / 'sub-01/func/sub-01_task-rest_bold.json'}: RepetitionTime must be a positive")
    assert shown in msg and "applies to sub-01_task-rest_bold.nii.gz" in msg and hint in msg


def test_slice_timing_length_vs_slices(tmp_path: Path):
    make(tmp_path, {"task-rest_bold.json": {"RepetitionTime": 2.0, "SliceTiming": [0, 0.5, 1.0, 1.5]},
                    BOLD: _nifti((4, 4, 3, 5))})
    msg = error_of(tmp_path)
    assert msg.startswith(f"{tmp_path / BOLD}: SliceTiming has 4 values but the image has 3 slices (axis k)")
    assert "fix SliceTiming in task-rest_bold.json" in msg
    build_index(tmp_path, check_images=False)  # needs the header: not checked without images


def test_slice_timing_other_axis(tmp_path: Path):
    make(tmp_path, {"task-rest_bold.json": {"RepetitionTime": 2.0, "SliceTiming": [0, 0.5, 1.0, 1.5],
                                            "SliceEncodingDirection": "i-"},
                    BOLD: _nifti((4, 4, 3, 5))})
    assert build_index(tmp_path).runs[0].bold.n_volumes == 5  # 4 slices along i


@pytest.mark.parametrize("timing, index, value", [([0, 1.0, 2.0], 2, "2.0"), ([0, -0.1], 1, "-0.1"),
                                                  ([0, 500, 1000], 1, "500")])
def test_slice_timing_outside_tr(tmp_path: Path, timing, index, value):
    make(tmp_path, {"task-rest_bold.json": {"RepetitionTime": 2.0, "SliceTiming": timing}, BOLD: None})
    msg = error_of(tmp_path, check_images=False)
    assert msg.startswith(f"{tmp_path / 'task-rest_bold.json'}: SliceTiming[{index}] = {value} s is outside "
                          "[0, RepetitionTime = 2.0 s)")
    assert "sub-01_task-rest_bold.nii.gz" in msg and "milliseconds?" in msg


def test_slice_timing_not_numbers(tmp_path: Path):
    make(tmp_path, {"task-rest_bold.json": {"RepetitionTime": 2.0, "SliceTiming": "0 0.5 1"}, BOLD: None})
    msg = error_of(tmp_path, check_images=False)
    assert "SliceTiming must be a list of numbers" in msg and "task-rest_bold.json" in msg


def test_3d_bold(tmp_path: Path):
    make(tmp_path, {"task-rest_bold.json": {"RepetitionTime": 2.0}, BOLD: _nifti((4, 5, 3))})
    msg = error_of(tmp_path)
    assert msg.startswith(f"{tmp_path / BOLD}: a _bold image must be 4D (x, y, z, time), this one is 3D "
                          "with shape 4x5x3 -> ")
    assert "_sbref" in msg


@pytest.mark.parametrize("name", ["sub-01_task-rest_bold.nii.gz", "sub-01_task-rest_bold.nii"])
def test_truncated_nifti(tmp_path: Path, name: str):
    path = f"sub-01/func/{name}"
    make(tmp_path, {"task-rest_bold.json": {"RepetitionTime": 2.0}, path: _nifti((8, 8, 6, 10))})
    if name.endswith(".gz"):  # cut the compressed stream
        data = (tmp_path / path).read_bytes()
        (tmp_path / path).write_bytes(data[: len(data) - 20])
    else:
        with open(tmp_path / path, "r+b") as fh:
            fh.truncate(352 + 100)
    msg = error_of(tmp_path)
    assert msg.startswith(f"{tmp_path / path}: image is truncated")
    assert "copy it again from the source" in msg


def test_truncated_gzip_with_intact_stream(tmp_path: Path):
    """A complete gzip stream of an incomplete image: ISIZE differs, decompression is short."""
    make(tmp_path, {"task-rest_bold.json": {"RepetitionTime": 2.0}, BOLD: _nifti((8, 8, 6, 10))})
    raw = gzip.decompress((tmp_path / BOLD).read_bytes())
    (tmp_path / BOLD).write_bytes(gzip.compress(raw[:-200]))
    msg = error_of(tmp_path)
    assert f"image is truncated: it decompresses to {len(raw) - 200} bytes, the header needs {len(raw)}" in msg


@pytest.mark.parametrize("content, reason", [(b"", "the file is empty"), (b"not a nifti at all" * 30, "")])
def test_unreadable_nifti(tmp_path: Path, content: bytes, reason: str):
    make(tmp_path, {"task-rest_bold.json": {"RepetitionTime": 2.0}, "sub-01/func/sub-01_task-rest_bold.nii": None})
    (tmp_path / "sub-01/func/sub-01_task-rest_bold.nii").write_bytes(content)
    msg = error_of(tmp_path)
    assert msg.startswith(f"{tmp_path / 'sub-01/func/sub-01_task-rest_bold.nii'}: cannot read the NIfTI header ({reason}")
    assert "damaged or not a NIfTI image" in msg


def _paired_files(eeg_run: str = "", vmrk=None, **more) -> dict:
    files = {"task-rest_bold.json": {"RepetitionTime": 2.0}, "task-rest_eeg.json": {"SamplingFrequency": 5000},
             BOLD: None, f"sub-01/eeg/sub-01_task-rest{eeg_run}_eeg.vhdr": {"vhdr": {"sfreq": 5000}},
             f"sub-01/eeg/sub-01_task-rest{eeg_run}_eeg.vmrk": vmrk}
    files.update(more)
    return files


def test_unpaired_eeg_warn_error_ignore(tmp_path: Path):
    make(tmp_path, _paired_files(eeg_run="_run-2"))
    index = build_index(tmp_path, check_images=False)  # unpaired_eeg="warn"
    assert [r.id for r in index.runs] == ["sub-01_task-rest", "sub-01_task-rest_run-2"]
    eeg_only = index.run("sub-01_task-rest_run-2")
    assert eeg_only.bold is None and eeg_only.eeg.pairing is None
    assert index.paired_runs() == [] and len(index.eeg_runs()) == 1
    [warning] = index.warnings
    assert warning.startswith(f"{tmp_path / EEG.replace('_eeg', '_run-2_eeg')}.vhdr: EEG run without a BOLD partner, "
                              "kept as EEG-only (no fusion): no BOLD run with the same entities and no acq_time")
    assert "name the EEG with the entities of its BOLD run" in warning
    msg = error_of(tmp_path, check_images=False, unpaired_eeg="error")
    assert msg.startswith(f"{tmp_path}/sub-01/eeg/sub-01_task-rest_run-2_eeg.vhdr: EEG run without a BOLD partner")
    assert build_index(tmp_path, check_images=False, unpaired_eeg="ignore").warnings == []
    with pytest.raises(ValueError, match="unpaired_eeg"):
        build_index(tmp_path, unpaired_eeg="maybe")


def test_ambiguous_acq_time(tmp_path: Path):
    scans = ("filename\tacq_time\nfunc/sub-01_task-rest_acq-a_bold.nii.gz\t2020-01-01T10:00:00\n"
             "func/sub-01_task-rest_acq-b_bold.nii.gz\t2020-01-01T10:01:00\n"
             "eeg/sub-01_task-rest_eeg.vhdr\t2020-01-01T10:00:30\n")
    make(tmp_path, {"task-rest_bold.json": {"RepetitionTime": 2.0}, "task-rest_eeg.json": {"SamplingFrequency": 500},
                    "sub-01/func/sub-01_task-rest_acq-a_bold.nii.gz": None,
                    "sub-01/func/sub-01_task-rest_acq-b_bold.nii.gz": None,
                    f"{EEG}.vhdr": None, "sub-01/sub-01_scans.tsv": scans})
    msg = error_of(tmp_path, check_images=False, unpaired_eeg="error")
    assert msg.startswith(f"{tmp_path / EEG}.vhdr: EEG run without a BOLD partner: pairing by acq_time is ambiguous: "
                          "sub-01_task-rest_acq-a, sub-01_task-rest_acq-b")
    index = build_index(tmp_path, check_images=False)
    assert len(index.runs) == 3 and "ambiguous" in index.warnings[0]


def test_two_eegs_claim_one_bold(tmp_path: Path):
    scans = ("filename\tacq_time\nfunc/sub-01_task-rest_acq-mb_bold.nii.gz\t2020-01-01T10:00:00\n"
             "eeg/sub-01_task-rest_run-1_eeg.vhdr\t2020-01-01T09:59:50\n"
             "eeg/sub-01_task-rest_run-2_eeg.vhdr\t2020-01-01T10:00:10\n")
    make(tmp_path, {"task-rest_bold.json": {"RepetitionTime": 2.0}, "task-rest_eeg.json": {"SamplingFrequency": 500},
                    "sub-01/func/sub-01_task-rest_acq-mb_bold.nii.gz": None,
                    "sub-01/eeg/sub-01_task-rest_run-1_eeg.vhdr": None,
                    "sub-01/eeg/sub-01_task-rest_run-2_eeg.vhdr": None, "sub-01/sub-01_scans.tsv": scans})
    msg = error_of(tmp_path, check_images=False, unpaired_eeg="error")
    assert "ambiguous: sub-01_task-rest_run-2_eeg.vhdr also started closest to sub-01_task-rest_acq-mb" in msg


def test_participant_label_not_in_dataset(tmp_path: Path):
    make(tmp_path, {"task-rest_bold.json": {"RepetitionTime": 2.0},
                    "sub-01/func/sub-01_task-rest_bold.nii.gz": None, "sub-02/func/sub-02_task-rest_bold.nii.gz": None})
    msg = error_of(tmp_path, participant_label=["sub-01", "sub-7", "8"], check_images=False)
    assert msg == (f"{tmp_path}: participant label(s) not in the dataset: 7, 8 -> labels present: 01, 02 "
                   "(with or without the 'sub-' prefix)")


def test_markers_disagree_with_repetition_time(tmp_path: Path):
    # 2.1 s between volume markers at 5 kHz, RepetitionTime 2.0 s
    make(tmp_path, _paired_files(vmrk={"volumes": {"n": 50, "interval": 10500, "start": 300}}))
    msg = error_of(tmp_path, check_images=False)
    assert msg.startswith(f"{tmp_path / EEG}.vmrk: the 50 'Response/R128' markers imply TR = 2.1 s but "
                          "RepetitionTime of sub-01_task-rest_bold.nii.gz is 2 s (tolerance 0.0004 s")
    assert "check RepetitionTime in task-rest_bold.json" in msg and "one marker per volume (not per slice)" in msg


def test_slice_markers_given_as_volume_marker(tmp_path: Path):
    vmrk = {"volumes": {"n": 320, "interval": 312, "name": "Scanner/s"}}
    make(tmp_path, _paired_files(vmrk=vmrk))
    msg = error_of(tmp_path, check_images=False, volume_marker="Scanner/s ")
    assert "the 320 'Scanner/s' markers imply TR = 0.0624 s" in msg


def test_markers_within_sample_quantisation_pass(tmp_path: Path):
    """Onsets rounded to the sample grid (±1 sample) and 50 ppm clock drift are accepted."""
    sfreq, tr = 5000.0, 2.0
    samples = [round(i * tr * sfreq * (1 + 50e-6)) + (i % 2) for i in range(100)]
    make(tmp_path, _paired_files(vmrk={"markers": [["Response", "R128", s] for s in samples]}))
    run = build_index(tmp_path, check_images=False).runs[0]
    assert run.eeg.n_volume_markers == 100 and run.eeg.tr_from_markers == pytest.approx(2.0, abs=2e-4)


def test_no_volume_markers_warns(tmp_path: Path):
    make(tmp_path, _paired_files(vmrk={"markers": [["Stimulus", "S  1", 10], ["Stimulus", "S  1", 20]]}))
    index = build_index(tmp_path, check_images=False)
    [warning] = index.warnings
    assert warning.startswith(f"{tmp_path / EEG}.vmrk: no 'Response/R128' volume markers in this EEG although it is "
                              "paired with sub-01_task-rest_bold.nii.gz (recorded outside the scanner?)")
    assert "markers present: Stimulus/S  1 (2), New Segment/ (1)" in warning and "set volume_marker" in warning
    assert index.paired_runs()[0].eeg.n_volume_markers == 0


def test_duplicate_runs(tmp_path: Path):
    make(tmp_path, {"task-rest_bold.json": {"RepetitionTime": 2.0}, BOLD: None,
                    "sub-01/func/sub-01_task-rest_bold.nii": None})
    msg = error_of(tmp_path, check_images=False)
    assert "two BOLD files for the same run: sub-01_task-rest_bold.nii and sub-01_task-rest_bold.nii.gz" in msg
    assert "keep one of them" in msg


def test_duplicate_eeg_and_zero_padded_runs(tmp_path: Path):
    make(tmp_path, {"task-rest_eeg.json": {"SamplingFrequency": 500},
                    "sub-01/eeg/sub-01_task-rest_run-1_eeg.edf": None,
                    "sub-01/eeg/sub-01_task-rest_run-01_eeg.vhdr": None})
    msg = error_of(tmp_path, check_images=False)
    assert "two EEG recordings for the same run: sub-01_task-rest_run-01_eeg.vhdr and sub-01_task-rest_run-1_eeg.edf" \
        in msg


def test_empty_after_filters(tmp_path: Path):
    make(tmp_path, {"task-rest_bold.json": {"RepetitionTime": 2.0}, "sub-01/ses-1/func/sub-01_ses-1_task-rest_bold.nii": None})
    msg = error_of(tmp_path, task="motor", check_images=False)
    assert msg == (f"{tmp_path}: no BOLD or EEG runs left after the filters (task=motor) -> tasks in the dataset: rest; "
                   "sessions: 1; change or remove the filters")
    msg = error_of(tmp_path, session="2", check_images=False)
    assert "(session=2)" in msg and "sessions: 1" in msg


def test_empty_dataset(tmp_path: Path):
    make(tmp_path, {"README": "nothing yet"})
    assert "no sub-<label> folders: the dataset is empty" in error_of(tmp_path)
    make(tmp_path, {"sub-01/anat/sub-01_T1w.nii.gz": None})
    assert "no BOLD or EEG runs found -> expected sub-<label>/" in error_of(tmp_path)


def test_invalid_json_sidecar(tmp_path: Path):
    make(tmp_path, {BOLD: None, "task-rest_bold.json": None})
    (tmp_path / "task-rest_bold.json").write_text('{\n  "RepetitionTime": 2.0,\n  "EchoTime": 0.03,\n}\n')
    msg = error_of(tmp_path, check_images=False)
    assert msg.startswith(f"{tmp_path / 'task-rest_bold.json'}: invalid JSON at line 4, column 1: ")
    assert "fix the JSON syntax" in msg


def test_invalid_json_dataset_description(tmp_path: Path):
    make(tmp_path, {BOLD: None}, dataset_description=None)
    (tmp_path / "dataset_description.json").write_text('{"Name": "x" "BIDSVersion": "1.9"}')
    msg = error_of(tmp_path)
    assert msg.startswith(f"{tmp_path / 'dataset_description.json'}: invalid JSON at line 1, column 14: Expecting ',' delimiter")


def test_sidecar_not_an_object(tmp_path: Path):
    make(tmp_path, {BOLD: None, "task-rest_bold.json": [2.0]})
    assert "a JSON sidecar must hold an object {...}, this one holds a list" in error_of(tmp_path, check_images=False)


def test_file_in_wrong_folder(tmp_path: Path):
    make(tmp_path, {"task-rest_bold.json": {"RepetitionTime": 2.0}, "sub-01/func/sub-02_task-rest_bold.nii.gz": None})
    msg = error_of(tmp_path, check_images=False)
    assert "sub-02_task-rest_bold.nii.gz: the file name does not match its folder (expected it to start with sub-01_)" \
        in msg


def test_eeg_sampling_frequency(tmp_path: Path):
    make(tmp_path, {f"{EEG}.vhdr": None})
    msg = error_of(tmp_path)
    assert msg.startswith(f"{tmp_path / EEG}.vhdr: the sampling frequency is unknown")
    shutil.rmtree(tmp_path / "sub-01")
    make(tmp_path, {"task-rest_eeg.json": {"SamplingFrequency": 1000}, f"{EEG}.vhdr": {"vhdr": {"sfreq": 500}}})
    index = build_index(tmp_path, check_images=False)  # a header without its .eeg data file
    assert index.runs[0].eeg.sampling_frequency == 500.0
    assert "SamplingFrequency 1000 Hz in task-rest_eeg.json disagrees with the file header (500 Hz)" in index.warnings[0]


def test_unreadable_eeg(tmp_path: Path):
    make(tmp_path, {"task-rest_eeg.json": {"SamplingFrequency": 500}, "sub-01/eeg/sub-01_task-rest_eeg.edf": "garbage"})
    msg = error_of(tmp_path)
    assert msg.startswith(f"{tmp_path}/sub-01/eeg/sub-01_task-rest_eeg.edf: cannot read the EDF header/markers (")
    assert "complete EDF files" in msg


def test_missing_marker_file_and_annex_symlink(tmp_path: Path):
    files = _paired_files()
    del files[f"{EEG}.vmrk"]
    make(tmp_path, files)
    [warning] = build_index(tmp_path, check_images=False).warnings
    assert warning.startswith(f"{tmp_path / EEG}.vhdr: no marker file next to this EEG") and ".vmrk" in warning
    (tmp_path / BOLD).unlink()
    (tmp_path / BOLD).symlink_to(tmp_path / ".git/annex/objects/XX/missing")
    msg = error_of(tmp_path)
    assert msg.startswith(f"{tmp_path / BOLD}: cannot read the NIfTI header") and "'datalad get'" in msg


def test_missing_marker_inside_a_long_run_warns(tmp_path: Path):
    """One missing marker among 600 at 250 Hz passes the mean check but is reported as a gap."""
    samples = [100 + 540 * i for i in range(600) if i != 300]
    files = _paired_files(vmrk={"markers": [["Scanner", "Scan Start", s] for s in samples]})
    files["task-rest_bold.json"] = {"RepetitionTime": 2.16}
    files[f"{EEG}.vhdr"] = {"vhdr": {"sfreq": 250}}
    files["task-rest_eeg.json"] = {"SamplingFrequency": 250}
    make(tmp_path, files)
    index = build_index(tmp_path, check_images=False, volume_marker="Scanner/Scan Start")
    [warning] = index.warnings
    assert warning.startswith(f"{tmp_path / EEG}.vmrk: 1 gap(s) longer than 1.5 x RepetitionTime between "
                              "'Scanner/Scan Start' markers, the first after 646.24 s")


def test_in_scanner_run_without_volume_markers(tmp_path: Path):
    """eeg.recorded_in: scanner makes a run without volume markers an error (auto: a warning)."""
    make(tmp_path, _paired_files(vmrk={"markers": [["Stimulus", "S  1", 10], ["Stimulus", "S  1", 20]]}))
    msg = error_of(tmp_path, check_images=False, eeg_recorded_in="scanner")
    assert msg.startswith(f"{tmp_path / EEG}.vmrk: no 'Response/R128' volume markers in this EEG, but the run is "
                          "declared recorded in the scanner (eeg.recorded_in: scanner); markers present: Stimulus/S  1 (2)")
    assert "set eeg.volume_marker" in msg
    # an EEG-only run too, and one without any marker file
    make(tmp_path, {f"{EEG.replace('_eeg', '_run-2_eeg')}.vhdr": {"vhdr": {"sfreq": 5000}}})
    (tmp_path / f"{EEG}.vmrk").unlink()
    msg = error_of(tmp_path, check_images=False, eeg_recorded_in="scanner")
    assert "declared recorded in the scanner (eeg.recorded_in: scanner) but has no marker file" in msg
    # outside: no marker checks, no warning about the missing markers
    assert not any("volume markers" in w for w in build_index(tmp_path, check_images=False,
                                                              eeg_recorded_in="outside").warnings)
    with pytest.raises(ValueError, match="eeg_recorded_in"):
        build_index(tmp_path, eeg_recorded_in="sometimes")


def test_volume_markers_vs_bold_volumes_with_tolerance(tmp_path: Path):
    """20 BOLD volumes; 27 markers (2 s apart): both numbers in the message; dummy scans and
    the tolerance decide between a warning and an error."""
    files = _paired_files(vmrk={"volumes": {"n": 27, "interval": 10000, "start": 500}})
    files[BOLD] = _nifti((4, 4, 3, 20))
    make(tmp_path, files)
    (tmp_path / f"{EEG}.eeg").write_bytes(bytes(2 * 270_000))  # the data file (one INT_16 channel, 54 s)
    msg = error_of(tmp_path, volume_mismatch_tolerance=5)
    assert msg.startswith(f"{tmp_path / EEG}.vmrk: 27 'Response/R128' volume markers but sub-01_task-rest_bold.nii.gz "
                          "has 20 volumes (difference +7), more than eeg.volume_mismatch_tolerance = 5")
    assert "eeg.dummy_scans" in msg
    # 5 dummy scans: 22 against 20 is within the tolerance -> a warning with both numbers
    [warning] = build_index(tmp_path, volume_mismatch_tolerance=5, dummy_scans=5).warnings
    assert "27 'Response/R128' volume markers (5 of them dummy scans, eeg.dummy_scans) but " in warning
    assert "has 20 volumes (difference +2)" in warning
    # exactly accounted for: no warning; no tolerance (library default): a warning only
    assert build_index(tmp_path, volume_mismatch_tolerance=0, dummy_scans=7).warnings == []
    assert "difference +7" in build_index(tmp_path).warnings[0]
