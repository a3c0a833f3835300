"""Head-motion estimation against known motion of an analytic phantom."""

import time

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from fmri_phantom import moving_series, random_motion

from neurofuse.errors import NeuroFuseError
from neurofuse.fmri.motion import (
    estimate_motion,
    estimate_motion_array,
    motion_matrices,
    read_motion_tsv,
    reference_volume,
    write_motion_tsv,
)
from neurofuse.transforms import PARAM_NAMES, framewise_displacement, rigid_matrix, rigid_params


@pytest.fixture(scope="module")
def series():
    params = random_motion(16, np.random.default_rng(1))
    data, affine = moving_series(params)
    return params, data, affine


def _relative_error(truth_params, matrices):
    """Error of the estimated motion relative to volume 0 (removes the reference pose)."""
    truth = rigid_matrix(truth_params)
    truth_rel = np.linalg.inv(truth[0]) @ truth
    est_rel = np.linalg.inv(matrices[0]) @ matrices
    return rigid_params(np.linalg.inv(truth_rel) @ est_rel)


def test_recovers_known_motion(series):
    params, data, affine = series
    start = time.perf_counter()
    result = estimate_motion_array(data, affine, reference=0)
    elapsed = time.perf_counter() - start
    err = _relative_error(params, result.matrices)
    # measured: RMS 0.008 mm / 0.0004 rad; max 0.02 mm / 0.001 rad
    assert np.sqrt(np.mean(err[:, :3] ** 2)) < 0.03
    assert np.sqrt(np.mean(err[:, 3:] ** 2)) < 0.0015
    assert np.abs(err[:, :3]).max() < 0.08
    # with reference 0 the parameters are the truth itself
    assert np.allclose(result.params, params, atol=0.1)
    assert np.allclose(result.params[0], 0, atol=1e-3)
    fd_true = framewise_displacement(params)[1:]
    fd_est = framewise_displacement(result.params)[1:]
    assert np.corrcoef(fd_true, fd_est)[0, 1] > 0.99
    assert np.abs(fd_true - fd_est).max() < 0.15
    assert elapsed < 3.0  # measured ~0.15 s for 16 volumes of 40x44x32


def test_median_reference_and_matrices_agree_with_params(series):
    params, data, affine = series
    result = estimate_motion_array(data, affine, reference="median", n_reference=5)
    err = _relative_error(params, result.matrices)
    assert np.sqrt(np.mean(err[:, :3] ** 2)) < 0.03
    assert np.sqrt(np.mean(err[:, 3:] ** 2)) < 0.0015
    assert np.allclose(motion_matrices(result.params), result.matrices, atol=1e-9)


def test_reference_index_is_identity(series):
    _, data, affine = series
    result = estimate_motion_array(data, affine, reference=7)
    assert np.abs(result.params[7]).max() < 1e-3
    assert result.reference.shape == data.shape[:3]


def test_no_motion_gives_zero():
    params = np.zeros((5, 6))
    data, affine = moving_series(params, shape=(32, 36, 28), noise=2.0)
    result = estimate_motion_array(data, affine, reference=0)
    assert np.abs(result.params[:, :3]).max() < 0.02
    assert np.abs(result.params[:, 3:]).max() < 5e-4


def test_reference_volume_options():
    data = np.arange(2 * 2 * 2 * 5, dtype=np.float32).reshape(2, 2, 2, 5)
    data[..., 0] += 100  # a bright first volume
    assert np.array_equal(reference_volume(data, 2), data[..., 2])
    assert np.array_equal(reference_volume(data, -1), data[..., 4])
    assert np.allclose(reference_volume(data, "median", 3), data[..., 2])  # bright volume 0 ignored
    assert np.allclose(reference_volume(data, "mean", 2), data[..., :2].mean(axis=3))
    with pytest.raises(ValueError):
        reference_volume(data, 5)
    with pytest.raises(ValueError):
        reference_volume(data, "first")


def test_file_api_writes_tsv_reference_and_mask(series, tmp_path):
    params, data, affine = series
    bold = tmp_path / "bold.nii.gz"
    nib.save(nib.Nifti1Image(data[..., :6], affine), bold)
    result = estimate_motion(
        bold, tmp_path / "motion.tsv", out_reference=tmp_path / "ref.nii.gz",
        out_mask=tmp_path / "mask.nii.gz", reference=0,
    )
    table = pd.read_csv(tmp_path / "motion.tsv", sep="\t")
    assert list(table.columns) == list(PARAM_NAMES)
    assert len(table) == 6
    assert np.allclose(table.to_numpy(), result.params, atol=1e-6)
    ref = nib.load(tmp_path / "ref.nii.gz")
    assert np.allclose(ref.affine, affine)
    assert np.allclose(ref.get_fdata(), data[..., 0], atol=1e-3)
    mask = nib.load(tmp_path / "mask.nii.gz").get_fdata()
    assert set(np.unique(mask)) <= {0, 1} and mask.sum() > 1000
    assert np.allclose(read_motion_tsv(tmp_path / "motion.tsv"), result.params, atol=1e-6)


def test_tsv_roundtrip_and_validation(tmp_path):
    params = np.array([[0.0, -0.0, 1.5, 0.01, -0.02, 0.0], [1, 2, 3, 0.1, 0.2, 0.3]])
    write_motion_tsv(params, tmp_path / "m.tsv")
    text = (tmp_path / "m.tsv").read_text()
    assert "-0\t" not in text and text.splitlines()[0] == "\t".join(PARAM_NAMES)
    assert np.allclose(read_motion_tsv(tmp_path / "m.tsv"), params)
    with pytest.raises(ValueError):
        write_motion_tsv(np.zeros((3, 5)), tmp_path / "bad.tsv")
    pd.DataFrame({"trans_x": [0.0]}).to_csv(tmp_path / "short.tsv", sep="\t", index=False)
    with pytest.raises(NeuroFuseError):
        read_motion_tsv(tmp_path / "short.tsv")


def test_rejects_3d_and_empty(tmp_path):
    with pytest.raises(NeuroFuseError):
        estimate_motion_array(np.zeros((8, 8, 8)), np.eye(4))
    with pytest.raises(NeuroFuseError):
        estimate_motion_array(np.zeros((8, 8, 8, 3), np.float32), np.eye(4), reference=0)
