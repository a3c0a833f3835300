"""BrainVision markers: real Analyzer exports and recorder files, edge cases, the TR check.

Real files (../shared/data, see its README): ``eeg_rest_fmri`` (bids-standard/bids-examples,
CC-BY-4.0, Deligianni et al.) and MNE-Python's BrainVision test recording (BSD-3-Clause).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from neurofuse.bids.markers import (
    implied_tr,
    marker_counts,
    read_eeg_header,
    read_vhdr,
    read_vmrk,
    scan_eeg,
    scan_vmrk_onsets,
    tr_tolerance,
    volume_onsets,
)
from neurofuse.bids.skeleton import vhdr_text, vmrk_text

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
REST = SHARED / "eeg_rest_fmri"
needs_rest = pytest.mark.skipif(not REST.is_dir(), reason=f"real data not found at {REST} (shared/ beside the repo)")
needs_mne_files = pytest.mark.skipif(not (SHARED / "brainvision_mne").is_dir(),
                                     reason=f"real data not found at {SHARED / 'brainvision_mne'}")

# per subject: number of 'Pulse Artifact/R' (R-peak) markers in the Analyzer export
ANALYZER = {"32": 745, "35": 734, "36": 845}


def _derivative(sub: str, ext: str) -> Path:
    return REST / "derivatives" / f"sub-{sub}" / "eeg" / f"sub-{sub}_task-rest_eeg{ext}"


@needs_rest
@pytest.mark.parametrize("sub", sorted(ANALYZER))
def test_analyzer_markers_imply_the_sidecar_tr(sub: str):
    """The ~300 'Scanner/Scan Start' markers (250 Hz) agree with RepetitionTime 2.16 s."""
    import json

    tr = json.loads((REST / "task-rest_bold.json").read_text())["RepetitionTime"]
    header = read_vhdr(_derivative(sub, ".vhdr"))
    sfreq = header.sampling_frequency
    assert sfreq == 250.0 and header.data_points > 150_000 and header.bytes_per_sample == 4
    markers = read_vmrk(_derivative(sub, ".vmrk"))
    onsets = volume_onsets(markers, "Scanner/Scan Start")
    assert 280 <= onsets.size <= 320
    assert abs(implied_tr(onsets, sfreq) - tr) <= 1 / sfreq
    assert abs(implied_tr(onsets, sfreq) - tr) <= tr_tolerance(sfreq, tr)
    # every single interval is one volume (no marker missing or doubled)
    assert np.all(np.abs(np.diff(onsets) / sfreq - tr) <= 1 / sfreq)


@needs_rest
@pytest.mark.parametrize("sub", sorted(ANALYZER))
def test_analyzer_marker_counts(sub: str):
    counts = marker_counts(read_vmrk(_derivative(sub, ".vmrk")))
    assert counts["Pulse Artifact/R"] == ANALYZER[sub]
    assert counts["Scanner/s"] == 9000  # written as "Scanner,s " (trailing space) in the file
    assert counts["Scanner/Scan Start"] == 300
    assert "Scanner/s " not in counts
    # a name given with the trailing space still matches
    assert volume_onsets(read_vmrk(_derivative(sub, ".vmrk")), "Scanner/s ").size == 9000


@needs_rest
@pytest.mark.parametrize("sub", sorted(ANALYZER))
def test_analyzer_slice_markers_give_the_slice_onsets(sub: str):
    """The 9,000 'Scanner/s' markers: 30 per volume (= len(SliceTiming)), the first on each
    volume marker, the others TR/30 = 72 ms (18 samples at 250 Hz) apart, as the gradient
    step derives them from the sidecar. The sidecar's SliceTiming steps by 72.5 ms (rounded:
    its last slice would end at 2.17 s > TR), so it drifts up to 9.5 ms from the markers."""
    import json

    import mne

    from neurofuse.eeg.gradient import artifact_onsets

    bold = json.loads((REST / "task-rest_bold.json").read_text())
    tr, slice_timing = bold["RepetitionTime"], np.sort(bold["SliceTiming"])
    sfreq = read_vhdr(_derivative(sub, ".vhdr")).sampling_frequency
    markers = read_vmrk(_derivative(sub, ".vmrk"))
    volumes = volume_onsets(markers, "Scanner/Scan Start")
    slices = volume_onsets(markers, "Scanner/s")
    assert slices.size == volumes.size * len(slice_timing) == 9000
    # per volume: its 30 slice markers, the first on the volume marker, then every 18 samples
    per_volume = slices.reshape(volumes.size, len(slice_timing))
    np.testing.assert_array_equal(per_volume[:, 0], volumes)
    assert np.all(per_volume - volumes[:, None] == np.arange(30)[None, :] * 18)
    assert 18 / sfreq == pytest.approx(tr / len(slice_timing))
    offsets = (per_volume[0] - volumes[0]) / sfreq
    assert np.max(np.abs(offsets - slice_timing)) == pytest.approx(0.0095, abs=1e-6)
    # the gradient step, reading the same file through MNE: slice epochs from the markers,
    # and the ones it would derive from n_slices agree with them to the sample
    ann = mne.read_annotations(_derivative(sub, ".vmrk"), sfreq=sfreq)
    n_times = read_vhdr(_derivative(sub, ".vhdr")).data_points
    raw = mne.io.RawArray(np.zeros((1, n_times)), mne.create_info(["Fp1"], sfreq, "eeg"), verbose="error")
    raw.set_annotations(ann)
    vols, epochs, kind = artifact_onsets(raw, volume_marker="Scanner/Scan Start", slice_marker="Scanner/s")
    assert kind == "slice" and vols.size == 300 and epochs.size == 9000
    np.testing.assert_allclose(vols * sfreq, volumes, atol=1e-6)
    _, derived, _ = artifact_onsets(raw, volume_marker="Scanner/Scan Start", n_slices=30, tr=tr)
    np.testing.assert_allclose(derived, epochs, atol=0.5 / sfreq)


@needs_rest
@pytest.mark.parametrize("sub", sorted(ANALYZER))
def test_analyzer_rpeaks_fit_our_detector_assumptions(sub: str):
    """The Analyzer's R-peak markers ('Pulse Artifact/R'; the signal itself is not in the
    example dataset, so our detector cannot run on it): heart rate 50-80 bpm, and no RR
    interval shorter than the detector's refractory period (0.33 s) or long enough to
    trigger its gap search (1.6 x median) more than a few times."""
    sfreq = 250.0
    rpeaks = volume_onsets(read_vmrk(_derivative(sub, ".vmrk")), "Pulse Artifact/R") / sfreq
    rr = np.diff(rpeaks)
    assert 50 <= 60 / np.median(rr) <= 80
    assert rr.min() > 0.33
    assert np.sum(rr > 1.6 * np.median(rr)) <= 3
    # the beats cover the scan: the first within 1 s of the first volume, none missing for 2 s
    volumes = volume_onsets(read_vmrk(_derivative(sub, ".vmrk")), "Scanner/Scan Start") / sfreq
    inside = rpeaks[(rpeaks >= volumes[0]) & (rpeaks <= volumes[-1] + 2.16)]
    assert inside[0] - volumes[0] < 1.0 and np.diff(inside).max() < 2.0


@needs_rest
def test_same_markers_as_mne():
    """Names (modulo trailing spaces) and 0-based samples match mne.read_annotations."""
    import mne

    path = _derivative("35", ".vmrk")
    ours = read_vmrk(path)
    ann = mne.read_annotations(path, sfreq=250.0)
    assert ours[0].name == "New Segment/"  # MNE drops the first New Segment marker
    assert Counter(m.name for m in ours[1:]) == Counter(d.rstrip() for d in ann.description)
    assert [m.sample for m in ours[1:]] == [int(round(o * 250.0)) for o in ann.onset]


@needs_rest
def test_raw_recorder_files():
    header = read_eeg_header(REST / "sub-32" / "eeg" / "sub-32_task-rest_eeg.vhdr")
    assert header.sampling_frequency == 5000.0
    assert header.marker_file.endswith("sub-32_task-rest_eeg.vmrk")
    counts = marker_counts(header.markers)
    assert set(counts) == {"New Segment/", "SyncStatus/Sync On"}


@needs_mne_files
def test_mne_test_recording():
    bv = SHARED / "brainvision_mne"
    assert read_vhdr(bv / "test.vhdr").sampling_frequency == 1000.0
    markers = read_vmrk(bv / "test.vmrk")
    assert markers[1].name == "Stimulus/S253" and markers[1].sample == 486 and markers[1].size == 0
    assert {m.type for m in markers} >= {"Stimulus", "Response", "SyncStatus"}


def test_escaping_numbering_and_fields(tmp_path: Path):
    text = (
        "Brain Vision Data Exchange Marker File, Version 2.0\r\n\r\n[Common Infos]\r\nCodepage=UTF-8\r\n\r\n"
        "[Marker Infos]\r\n"
        "Mk1=New Segment,,1,1,0,20200101000000000000\r\n"
        "Mk3=Comment,a\\1b\\1c,30,,\r\n"      # escaped commas, empty size and channel
        "Mk2=Response,R128,20,1,0\r\n"        # out of order: sorted by number
        "Mk10=Scanner,s   ,40,1,3,,false\r\n"  # trailing spaces, extra fields
        "\r\n[Marker User Infos]\r\nProp1=Mk2,int,x,1\r\n"
    )
    path = tmp_path / "m.vmrk"
    path.write_text(text, encoding="utf-8")
    markers = read_vmrk(path)
    assert [m.number for m in markers] == [1, 2, 3, 10]
    assert markers[2].description == "a,b,c" and markers[2].size == 0 and markers[2].channel == 0
    assert markers[1].name == "Response/R128" and markers[1].sample == 19
    assert markers[3].name == "Scanner/s" and markers[3].channel == 3


def test_latin1_file_with_utf8_declared(tmp_path: Path):
    body = "Brain Vision Data Exchange Marker File, Version 1.0\n[Common Infos]\nCodepage=UTF-8\n[Marker Infos]\n"
    body += "Mk1=Comment,Stimulus gr\u00fcn \u00b5V,5,1,0\n"
    path = tmp_path / "m.vmrk"
    path.write_bytes(body.encode("latin-1"))  # not valid UTF-8: falls back to latin-1
    assert read_vmrk(path)[0].description == "Stimulus gr\u00fcn \u00b5V"
    path.write_bytes(body.replace("UTF-8", "ANSI").encode("cp1252"))
    assert read_vmrk(path)[0].description == "Stimulus gr\u00fcn \u00b5V"


def test_empty_and_bad_files(tmp_path: Path):
    empty = tmp_path / "e.vmrk"
    empty.write_bytes(b"")
    assert read_vmrk(empty) == []
    (tmp_path / "e.vhdr").write_bytes(b"")
    assert read_vhdr(tmp_path / "e.vhdr").sampling_frequency is None
    bad = tmp_path / "b.vmrk"
    bad.write_text("Brain Vision Data Exchange Marker File, Version 1.0\n[Marker Infos]\nMk1=Response,R1,abc,1,0\n")
    with pytest.raises(ValueError, match="Mk1=Response,R1,abc"):
        read_vmrk(bad)
    other = tmp_path / "o.vmrk"
    other.write_text("just some text\n")
    with pytest.raises(ValueError, match="not a BrainVision marker file"):
        read_vmrk(other)


def test_written_files_round_trip(tmp_path: Path):
    (tmp_path / "x.vhdr").write_text(vhdr_text("x", 5000.0, 3))
    (tmp_path / "x.vmrk").write_text(vmrk_text([("Response", "R128", 0), ("Stim,ulus", "S 1", 7)]))
    header = read_eeg_header(tmp_path / "x.vhdr")
    assert header.sampling_frequency == 5000.0
    assert [m.name for m in header.markers] == ["New Segment/", "Response/R128", "Stim,ulus/S 1"]
    assert header.markers[2].sample == 7


def test_implied_tr_and_tolerance():
    onsets = np.array([100, 10100, 20100, 30100])
    assert implied_tr(onsets, 5000) == pytest.approx(2.0)
    assert implied_tr(onsets[::-1], 5000) == pytest.approx(2.0)  # order does not matter
    with pytest.raises(ValueError, match="at least two"):
        implied_tr(onsets[:1], 5000)
    assert tr_tolerance(250, 2.16) == pytest.approx(1 / 250 + 2.16e-4)
    # one missing volume marker among 300 breaks the check at 250 Hz, sample jitter does not
    tr, sf = 2.16, 250.0
    jittered = np.round(np.arange(300) * tr * sf + np.random.default_rng(0).uniform(-0.5, 0.5, 300))
    assert abs(implied_tr(jittered, sf) - tr) <= tr_tolerance(sf, tr)
    missing = np.delete(jittered, 150)[:-1]
    missing = np.append(missing, missing[-1] + 2 * tr * sf)
    assert abs(implied_tr(missing, sf) - tr) > tr_tolerance(sf, tr)


def test_fif_annotations_through_mne(tmp_path: Path):
    mne = pytest.importorskip("mne")
    info = mne.create_info(["Cz"], 250.0, "eeg")
    raw = mne.io.RawArray(np.zeros((1, 250 * 12)), info, verbose="error")
    raw.set_annotations(mne.Annotations(onset=[1.0, 3.0, 5.0, 7.0], duration=0, description="R128"))
    path = tmp_path / "sub-01_task-rest_eeg.fif"
    raw.save(path, verbose="error")
    header = read_eeg_header(path)
    assert header.sampling_frequency == 250.0
    onsets = volume_onsets(header.markers, "R128")
    assert list(onsets) == [250, 750, 1250, 1750]
    assert implied_tr(onsets, 250.0) == pytest.approx(2.0)


@needs_rest
@pytest.mark.parametrize("name", ["Scanner/Scan Start", "Scanner/s", "Scanner/s ", "Pulse Artifact/R",
                                  "SyncStatus/Sync On", "New Segment/", "Response/R128"])
def test_fast_scan_equals_full_parse(name: str):
    for sub in ANALYZER:
        path = _derivative(sub, ".vmrk")
        assert np.array_equal(scan_vmrk_onsets(path, name), volume_onsets(read_vmrk(path), name))


def test_fast_scan_escapes_and_spaces(tmp_path: Path):
    path = tmp_path / "x.vmrk"
    path.write_text(vmrk_text([("Resp,onse", "R 1", 9), ("Response", "R128", 20), ("Response", "R1280", 25),
                               ("Response", "R128  ", 30), ("Response", "R12", 35)]))
    assert list(scan_vmrk_onsets(path, "Resp,onse/R 1")) == [9]
    assert list(scan_vmrk_onsets(path, "Response/R128")) == [20, 30]
    assert list(volume_onsets(read_vmrk(path), "Response/R128")) == [20, 30]
    (tmp_path / "alone.vhdr").write_text("")  # empty header, no marker file next to it
    header = scan_eeg(tmp_path / "alone.vhdr", "Response/R128")
    assert header.sampling_frequency is None and header.marker_file is None and header.onsets is None


def test_n_samples_from_data_file_and_mne(tmp_path: Path):
    (tmp_path / "x.vhdr").write_text(vhdr_text("x", 500.0, 3))  # INT_16, 3 channels
    (tmp_path / "x.eeg").write_bytes(b"\0" * (2 * 3 * 1500))
    assert read_eeg_header(tmp_path / "x.vhdr").n_samples == 1500
    assert scan_eeg(tmp_path / "x.vhdr", "Response/R128").n_samples == 1500
    mne = pytest.importorskip("mne")
    raw = mne.io.RawArray(np.zeros((1, 777)), mne.create_info(["Cz"], 100.0, "eeg"), verbose="error")
    raw.save(tmp_path / "y_eeg.fif", verbose="error")
    assert scan_eeg(tmp_path / "y_eeg.fif", None).n_samples == 777
