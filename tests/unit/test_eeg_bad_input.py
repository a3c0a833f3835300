"""Bad input to the EEG steps: each a one-line error naming the file and the fix, or a warning.

(Index-level cases, in tests/unit/test_bids_errors.py: an in-scanner run without volume
markers, marker count against the BOLD volumes with dummy scans and tolerance. Flat and
clipped channels: tests/unit/test_eeg_clean.py.)
"""

from __future__ import annotations

import json

import mne
import numpy as np
import pandas as pd
import pytest

from neurofuse.eeg._testing import make_run
from neurofuse.eeg.bcg import remove_bcg_artifact_file
from neurofuse.eeg.gradient import remove_gradient_artifact, remove_gradient_artifact_file
from neurofuse.eeg.io import read_raw
from neurofuse.errors import NeuroFuseError


@pytest.fixture(scope="module")
def bcg_input(tmp_path_factory):
    """30 s of 8 EEG channels + ECG + VEOG at 250 Hz (as after gradient removal)."""
    run = make_run(duration=30.0, sfreq=250.0, n_eeg=8, seed=2, in_scanner=False, blink_uv=0, line_uv=0)
    return run


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg and " -> " in msg, msg
    return msg


def test_gradient_refuses_a_sampling_rate_below_1_khz(tmp_path):
    run = make_run(duration=12.0, sfreq=500.0, n_eeg=4, n_slices=10, seed=1, bcg_uv=0, blink_uv=0, grad_fmax=200.0)
    src = tmp_path / "sub-01_task-rest_eeg.fif"
    run.raw.save(src, verbose="error")
    with pytest.raises(NeuroFuseError) as err:
        remove_gradient_artifact_file(src, tmp_path / "out_eeg.fif", n_slices=10)
    msg = _one_line(err)
    assert msg.startswith(f"{src}: the EEG is sampled at 500 Hz, too low for gradient artifact correction "
                          "(needs >= 1000 Hz")
    assert "original rate" in msg and not (tmp_path / "out_eeg.fif").exists()
    # the threshold is a parameter
    out, log = remove_gradient_artifact(run.raw, n_slices=10, min_sfreq=400.0, sfreq_out=250.0)
    assert log["sfreq_in"] == 500.0 and out.info["sfreq"] == 250.0


def test_bcg_without_ecg_channel_error_lists_the_channels(bcg_input, tmp_path):
    raw = bcg_input.raw.copy().drop_channels(["ECG"])
    src = tmp_path / "sub-01_desc-gradient_eeg.fif"
    raw.save(src, verbose="error")
    with pytest.raises(NeuroFuseError) as err:
        remove_bcg_artifact_file(src, tmp_path / "bcg_eeg.fif")
    msg = _one_line(err)
    assert msg.startswith(f"{src}: no ECG channel in the recording (none named ECG/EKG or typed ecg); channels found: "
                          "Fp1, Fp2, F3, F4, C3, C4, P3, P4, VEOG")
    assert "eeg.ecg_channel" in msg and "eeg.missing_ecg: skip" in msg
    with pytest.raises(NeuroFuseError, match=r"ECG channel 'EKG1' \(eeg.ecg_channel\) is not in the recording; "
                                             r"channels found: Fp1, Fp2"):
        remove_bcg_artifact_file(src, tmp_path / "bcg_eeg.fif", ecg_channel="EKG1")
    assert not (tmp_path / "bcg_eeg.fif").exists()


def test_bcg_skipped_when_configured(bcg_input, tmp_path, caplog):
    raw = bcg_input.raw.copy().drop_channels(["ECG"])
    src = tmp_path / "in_eeg.fif"
    raw.save(src, verbose="error")
    out = tmp_path / "bcg_eeg.fif"
    with caplog.at_level("WARNING"):
        log = remove_bcg_artifact_file(src, out, missing_ecg="skip", rpeaks_tsv=tmp_path / "rpeaks.tsv",
                                       log_json=tmp_path / "log.json", qc_png=tmp_path / "qc.png",
                                       rpeaks_png=tmp_path / "rpeaks.png")
    assert "BCG removal skipped (eeg.missing_ecg: skip)" in caplog.text and "channels found" in caplog.text
    assert log["skipped"] is True and json.loads((tmp_path / "log.json").read_text())["skipped"] is True
    np.testing.assert_array_equal(mne.io.read_raw(out, verbose="error").get_data(),
                                  mne.io.read_raw(src, verbose="error").get_data())
    table = pd.read_csv(tmp_path / "rpeaks.tsv", sep="\t")
    assert list(table.columns) == ["onset", "duration", "trial_type"] and len(table) == 0
    assert (tmp_path / "qc.png").stat().st_size > 5_000 and (tmp_path / "rpeaks.png").stat().st_size > 2_000
    with pytest.raises(ValueError, match="missing_ecg"):
        remove_bcg_artifact_file(src, out, missing_ecg="ignore")


def test_ecg_channel_named_in_the_config(bcg_input, tmp_path):
    """A cap that records the ECG on an EEG-typed channel (ch32 on some BrainAmp MR caps)."""
    raw = bcg_input.raw.copy().rename_channels({"ECG": "ch32"})
    raw.set_channel_types({"ch32": "eeg"}, on_unit_change="ignore", verbose="error")
    src = tmp_path / "in_eeg.fif"
    raw.save(src, verbose="error")
    out = tmp_path / "bcg_eeg.fif"
    log = remove_bcg_artifact_file(src, out, ecg_channel="ch32")
    assert log["ecg_channel"] == "ch32" and "ch32" not in log["channels"]
    assert abs(log["n_rpeaks"] - len(bcg_input.rpeaks)) <= 1
    back = read_raw(out)
    assert back.get_channel_types(picks=["ch32"]) == ["ecg"]
    np.testing.assert_array_equal(back.get_data(picks=["ch32"]), read_raw(src).get_data(picks=["ch32"]))


def _brainvision(tmp_path, run):
    pybv = pytest.importorskip("pybv")
    raw = run.raw
    pybv.write_brainvision(data=raw.get_data(), sfreq=raw.info["sfreq"], ch_names=raw.ch_names,
                           fname_base="sub-01_task-rest_eeg", folder_out=tmp_path, overwrite=True, unit="µV",
                           fmt="binary_float32")
    return tmp_path / "sub-01_task-rest_eeg.vhdr"


def test_marker_and_header_naming_a_missing_data_file(bcg_input, tmp_path, caplog):
    vhdr = _brainvision(tmp_path, bcg_input)
    vmrk, data = vhdr.with_suffix(".vmrk"), vhdr.with_suffix(".eeg")
    # the marker file names a data file that is not there: warning, the header's file is read
    vmrk.write_text(vmrk.read_text().replace("DataFile=sub-01_task-rest_eeg.eeg", "DataFile=old_name.eeg"))
    with caplog.at_level("WARNING"):
        raw = read_raw(vhdr)
    assert raw.n_times == bcg_input.raw.n_times
    assert f"{vmrk}: the marker file names the data file old_name.eeg (DataFile=), which does not exist" in caplog.text
    # the header's data file missing: error naming it and the folder
    data.rename(tmp_path / "elsewhere.eeg")
    with pytest.raises(NeuroFuseError) as err:
        read_raw(vhdr)
    msg = _one_line(err)
    assert msg.startswith(f"{vhdr}: the data file sub-01_task-rest_eeg.eeg named in DataFile= does not exist")
    # an empty placeholder (as in the eeg_rest_fmri example dataset)
    data.write_bytes(b"")
    with pytest.raises(NeuroFuseError, match="is empty"):
        read_raw(vhdr)
    # the file steps report the same one-line error
    with pytest.raises(NeuroFuseError, match="is empty"):
        remove_gradient_artifact_file(vhdr, tmp_path / "out_eeg.fif", n_slices=10)
