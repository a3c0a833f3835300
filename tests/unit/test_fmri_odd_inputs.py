"""Odd BOLD input: each case stops with a clear error at the first fMRI step or is handled
and said so (3D, single volume, too short, empty volumes, NaN voxels). Oblique and
anisotropic grids are scored in test_fmri_unseen.py and test_fmri_real_motion.py, a
SliceTiming longer than TR and a missing SliceTiming in test_fmri_slice_timing.py, the
example4d header TR in milliseconds in test_bids_index.py."""

import logging

import nibabel as nib
import numpy as np
import pytest

from fmri_phantom import moving_series, random_motion
from neurofuse.errors import NeuroFuseError
from neurofuse.fmri.backends import run_backend_motion
from neurofuse.fmri.checks import check_bold_series, finite_series
from neurofuse.fmri.slice_timing import correct_slice_timing
from neurofuse.simulate.moved import motion_errors


@pytest.fixture(scope="module")
def series():
    params = random_motion(12, np.random.default_rng(2))
    data, affine = moving_series(params, shape=(28, 32, 24), voxel=(5.0, 5.0, 6.0))
    return params, data, affine


def _save(path, data, affine):
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), affine), path)
    return path


def test_3d_image_is_a_clear_error(series, tmp_path):
    _, data, affine = series
    path = _save(tmp_path / "sub-01_task-rest_bold.nii.gz", data[..., 0], affine)
    with pytest.raises(NeuroFuseError, match="must be 4D") as err:
        run_backend_motion("native", path, tmp_path / "motion.tsv")
    assert "sub-01_task-rest_bold.nii.gz" in str(err.value) and "_sbref" in str(err.value)
    assert not (tmp_path / "motion.tsv").exists()


@pytest.mark.parametrize("n", [1, 4])
def test_too_short_run_is_a_clear_error_below_the_configured_minimum(series, tmp_path, n):
    _, data, affine = series
    path = _save(tmp_path / "bold.nii.gz", data[..., :n], affine)
    with pytest.raises(NeuroFuseError, match=f"has {n} volume.*fmri.min_volumes = 10") as err:
        run_backend_motion("native", path, tmp_path / "motion.tsv", min_volumes=10)
    assert "lower fmri.min_volumes" in str(err.value)
    assert not (tmp_path / "motion.tsv").exists()
    if n > 1:  # the minimum is configurable
        run_backend_motion("native", path, tmp_path / "motion.tsv", min_volumes=n)
        assert (tmp_path / "motion.tsv").is_file()


@pytest.mark.parametrize("fill", [0.0, np.nan], ids=["all-zero", "all-nan"])
def test_empty_volumes_are_a_clear_error(series, tmp_path, fill):
    _, data, affine = series
    bad = data.copy()
    bad[..., 3] = fill
    bad[..., 7] = fill
    path = _save(tmp_path / "bold.nii.gz", bad, affine)
    with pytest.raises(NeuroFuseError, match=r"volumes 3, 7 \(0-based\) of 12 are empty") as err:
        check_bold_series(path)
    assert "remove these volumes" in str(err.value)


def test_nan_voxels_are_zeroed_with_a_warning_and_motion_stays_accurate(series, tmp_path, caplog):
    params, data, affine = series
    bad = data.copy()
    rng = np.random.default_rng(0)
    for t in (2, 5, 9):  # a few hundred NaN / inf voxels in three volumes
        idx = tuple(rng.integers(0, n, 150) for n in bad.shape[:3])
        bad[idx + (t,)] = np.nan
    bad[10, 10, 10, 6] = np.inf
    path = _save(tmp_path / "bold.nii.gz", bad, affine)
    caplog.set_level(logging.WARNING)
    res = run_backend_motion("native", path, tmp_path / "motion.tsv", reference=0)
    assert "NaN or infinite voxel values in volume(s) 2, 5, 6, 9" in caplog.text
    assert np.isfinite(res.params).all()
    e = motion_errors(params, res.matrices)
    assert e["median_mm"] < 0.05 and e["median_deg"] < 0.05 and e["fd_r"] > 0.99, e
    # slice timing: one NaN voxel must not spread over its time series through the FFT
    times = list(np.linspace(0, 1.8, bad.shape[2]))
    correct_slice_timing(path, tmp_path / "stc.nii.gz", times, 2.0)
    out = nib.load(tmp_path / "stc.nii.gz").get_fdata()
    assert np.isfinite(out).all()
    clean = ~np.isnan(bad).any(axis=3) & ~np.isinf(bad).any(axis=3)
    assert np.abs(out[clean].mean() - data[clean].mean()) < 1.0
    assert finite_series(np.array([np.nan, np.inf, -np.inf, 2.0])).tolist() == [0.0, 0.0, 0.0, 2.0]
