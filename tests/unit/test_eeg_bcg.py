"""R-peak detection and BCG removal (neurofuse.eeg.bcg) on small synthetic recordings."""

from __future__ import annotations

import json

import mne
import numpy as np
import pytest

from neurofuse.eeg._testing import make_run
from neurofuse.eeg.bcg import (
    deconvolve_artifact,
    detect_rpeaks,
    remove_bcg,
    remove_bcg_artifact_file,
    rpeaks_from_raw,
)
from neurofuse.eeg.metrics import band_correlation, match_events
from neurofuse.errors import NeuroFuseError

SF = 250.0


@pytest.fixture(scope="module")
def run():
    # 90 s at 250 Hz (as after gradient removal), 8 EEG channels, BCG up to 100 µV with
    # 10 % beat-to-beat gain, no blinks or line noise.
    return make_run(duration=90.0, sfreq=SF, n_eeg=8, seed=5, in_scanner=False, blink_uv=0, line_uv=0, bcg_uv=100.0)


def _ecg(run):
    return run.raw.get_data(picks="ecg")[0]


def test_rpeaks_f1_with_residual_slice_artifact_and_inverted_polarity(run):
    t = np.arange(run.raw.n_times) / SF
    rng = np.random.default_rng(0)
    residual = sum(0.05e-3 * rng.uniform(0.5, 1) * np.sin(2 * np.pi * 12.5 * k * t + rng.uniform(0, 6)) for k in (1, 2, 3))
    for sign in (1.0, -1.0):
        ecg = sign * _ecg(run) + residual + 20e-6 * rng.standard_normal(len(t))
        found = detect_rpeaks(ecg, SF)
        score = match_events(found, run.rpeaks, tolerance=0.02)
        assert score["f1"] > 0.98, score
        assert score["median_abs_error_s"] < 0.004, score


def test_rpeaks_mne_detector_and_errors(run):
    score = match_events(detect_rpeaks(_ecg(run), SF, method="mne"), run.rpeaks, 0.02)
    assert score["f1"] > 0.95, score
    with pytest.raises(NeuroFuseError):
        detect_rpeaks(np.zeros(100), SF)
    with pytest.raises(ValueError):
        detect_rpeaks(_ecg(run), SF, method="nope")
    eeg_only = run.raw.copy().pick("eeg")
    with pytest.raises(NeuroFuseError, match="no ECG channel"):
        rpeaks_from_raw(eeg_only)


def test_match_events_counts():
    s = match_events(np.array([1.0, 2.01, 3.5]), np.array([1.0, 2.0, 3.0]), tolerance=0.02)
    assert s["sensitivity"] == pytest.approx(2 / 3) and s["precision"] == pytest.approx(2 / 3)


def test_bcg_removal_methods_against_truth(run):
    """Measured here (median correlation with the clean EEG, 1-40 Hz): none 0.48,
    deconv 0.994, aas 0.963, obs 0.744."""
    truth = run.clean
    results = {}
    for method in ("deconv", "aas", "obs"):
        out, log = remove_bcg(run.raw, rpeaks=run.rpeaks, method=method)
        results[method] = np.median(band_correlation(out.get_data(picks="eeg"), truth, SF))
        assert log["n_rpeaks"] == len(run.rpeaks)
    none = np.median(band_correlation(run.raw.get_data(picks="eeg"), truth, SF))
    assert none < 0.6
    assert results["deconv"] > 0.985, results
    assert results["deconv"] > max(results["aas"], results["obs"]), results
    # ECG and EOG channels are left alone
    out, _ = remove_bcg(run.raw, rpeaks=run.rpeaks)
    np.testing.assert_array_equal(out.get_data(picks="ecg"), run.raw.get_data(picks="ecg"))


def test_deconvolution_recovers_beat_gains(run):
    data = run.bcg  # the artifact alone: the per-beat gains are known up to scale
    art, beats = deconvolve_artifact(data, SF, run.rpeaks, block_s=1e9)
    assert np.sqrt(np.mean((art - data) ** 2)) < 0.05 * np.sqrt(np.mean(data**2))
    assert np.std(beats["gain"]) > 0.05  # the synthetic beats vary by 10 %
    assert np.max(np.abs(beats["delay"])) < 0.004  # no delay jitter in this synthetic run


def test_bcg_file_step_writes_outputs(run, tmp_path):
    src = tmp_path / "in_eeg.fif"
    run.raw.save(src, verbose="error")
    log = remove_bcg_artifact_file(
        src, tmp_path / "out_eeg.fif", rpeaks_tsv=tmp_path / "rpeaks.tsv", log_json=tmp_path / "log.json",
        qc_png=tmp_path / "psd.png", rpeaks_png=tmp_path / "rpeaks.png",
    )
    assert mne.io.read_raw(tmp_path / "out_eeg.fif", verbose="error").n_times == run.raw.n_times
    lines = (tmp_path / "rpeaks.tsv").read_text().splitlines()
    assert lines[0] == "onset\tduration\ttrial_type" and len(lines) - 1 == log["n_rpeaks"]
    assert json.loads((tmp_path / "log.json").read_text())["method"].startswith("least-squares")
    assert (tmp_path / "rpeaks.png").stat().st_size > 10_000 and (tmp_path / "psd.png").stat().st_size > 10_000
