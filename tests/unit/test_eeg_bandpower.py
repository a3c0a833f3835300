"""Band power per fMRI volume (neurofuse.eeg.bandpower)."""

from __future__ import annotations

import json

import mne
import numpy as np
import pytest

from neurofuse.eeg._testing import make_run
from neurofuse.eeg.bandpower import DEFAULT_BANDS, band_power_file, band_power_table, volume_windows

SF = 250.0
TR = 2.0
LEAD = 3.3  # the EEG recorder starts 3.3 s before the first volume


@pytest.fixture(scope="module")
def run():
    return make_run(duration=124.0, sfreq=SF, n_eeg=10, seed=3, in_scanner=False, bcg_uv=0, blink_uv=0, line_uv=0)


def _with_markers(run, n_vol=60, lead=LEAD):
    raw = mne.io.RawArray(run.clean, mne.create_info(run.eeg_names, SF, "eeg"), verbose="error")
    raw.set_annotations(mne.Annotations(lead + TR * np.arange(n_vol), 0.0, "Response/R128"))
    return raw


def test_one_row_per_volume_and_every_column_documented(run):
    raw = _with_markers(run)
    cols, values, sidecar, info = band_power_table(raw)
    assert values.shape == (60, len(cols))
    assert info["first_onset_s"] == pytest.approx(LEAD, abs=1 / SF) and info["tr"] == pytest.approx(TR)
    names = run.eeg_names
    expected = [f"{b}_{c}{s}" for b in DEFAULT_BANDS for s in ("", "_hrf") for c in [*names, "mean"]]
    assert sorted(cols) == sorted(expected)
    assert cols[:3] == ["delta_Fp1", "delta_Fp2", "delta_F3"]
    assert set(sidecar) == set(cols)
    for entry in sidecar.values():
        assert set(entry) == {"LongName", "Description", "Units"} and entry["Units"] == "uV^2"
    assert np.isfinite(values).all() and (values[:, cols.index("alpha_mean")] > 0).all()


def test_alpha_power_follows_the_true_envelope(run):
    """Measured: r = 0.92 between alpha_mean and the true alpha envelope² per volume
    (-0.10 with windows counted from the start of the EEG instead of the markers)."""
    raw = _with_markers(run)
    cols, values, _, _ = band_power_table(raw)
    env2 = run.alpha_envelope**2
    onsets = LEAD + TR * np.arange(60)
    true = np.array([env2[int(o * SF) : int((o + TR) * SF)].mean() for o in onsets])
    r = np.corrcoef(values[:, cols.index("alpha_mean")], true)[0, 1]
    assert r > 0.9, r
    # windows that ignore the markers (start of recording) line up worse
    fixed = band_power_table(raw, volume_marker=None, window_s=TR)
    r_fixed = np.corrcoef(fixed[1][:60, fixed[0].index("alpha_mean")], true)[0, 1]
    assert r_fixed < r


def test_hrf_column_is_the_nilearn_regressor_of_the_demeaned_power(run):
    from nilearn.glm.first_level import compute_regressor

    raw = _with_markers(run)
    cols, values, _, _ = band_power_table(raw, slice_time_ref=0.5)
    power = values[:, cols.index("alpha_O1")]
    onsets = TR * np.arange(60)
    reg, _ = compute_regressor(np.vstack([onsets, np.full(60, TR), power - power.mean()]), "spm", onsets + 0.5 * TR)
    np.testing.assert_allclose(values[:, cols.index("alpha_O1_hrf")], reg[:, 0], rtol=1e-10, atol=1e-12)
    # the HRF delays the series: best lag 2-3 volumes (4-6 s)
    hrf = values[:, cols.index("alpha_O1_hrf")]
    lags = [np.corrcoef(power[: 60 - k], hrf[k:])[0, 1] for k in range(6)]
    assert int(np.argmax(lags)) in (2, 3), lags


def test_volume_count_mismatch_and_recordings_without_markers(run):
    raw = _with_markers(run, n_vol=60)  # the last window ends at 123.3 s, the EEG at 124 s
    onsets, length, info = volume_windows(raw, n_volumes=50)
    assert len(onsets) == 50 and info["markers_dropped"] == 10
    cols, values, _, info = band_power_table(raw, n_volumes=65)  # the EEG stopped early
    assert values.shape[0] == 65 and info["volumes_extrapolated"] == 5
    power = values[:, cols.index("alpha_mean")]
    assert np.isfinite(power[:60]).all() and np.isnan(power[60:]).all()
    # outside the scanner: consecutive 4-s windows
    plain = mne.io.RawArray(run.clean, mne.create_info(run.eeg_names, SF, "eeg"), verbose="error")
    cols, values, _, info = band_power_table(plain, window_s=4.0)
    assert values.shape[0] == int(plain.times[-1] // 4.0) and info["mode"].startswith("fixed")


def test_band_power_file_writes_tsv_and_sidecar(run, tmp_path):
    raw = _with_markers(run, n_vol=61)
    src = tmp_path / "clean_eeg.fif"
    raw.save(src, verbose="error")
    tsv = tmp_path / "sub-01_task-rest_desc-eegbands_timeseries.tsv"
    log = band_power_file(src, tsv, bands={"alpha": (8.0, 13.0), "beta": (13.0, 30.0)}, n_volumes=61)
    lines = tsv.read_text().splitlines()
    assert len(lines) == 1 + 61 == 1 + log["n_rows"]
    header = lines[0].split("\t")
    assert header[0] == "alpha_Fp1" and "beta_mean_hrf" in header
    assert "n/a" in lines[-1]  # the last volume ends after the EEG
    sidecar = json.loads(tsv.with_suffix(".json").read_text())
    assert set(sidecar) == set(header)
