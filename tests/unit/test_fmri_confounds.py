"""Confounds table: DVARS by hand, fMRIPrep columns, units, n/a, outlier spikes."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from neurofuse.fmri.confounds import confounds_table, cosine_basis, dvars, outlier_columns, write_confounds
from neurofuse.transforms import PARAM_NAMES, framewise_displacement


def test_dvars_hand_computed():
    # voxel A: 1 2 3 5 ; voxel B: 2 2 4 4
    data = np.array([[1.0, 2.0, 3.0, 5.0], [2.0, 2.0, 4.0, 4.0]])
    d, s = dvars(data, intensity_normalization=None)
    # differences A: 1 1 2, B: 0 2 0  ->  DVARS = sqrt((1+0)/2), sqrt((1+4)/2), sqrt((4+0)/2)
    assert np.isnan(d[0]) and np.isnan(s[0])
    assert np.allclose(d[1:], [np.sqrt(0.5), np.sqrt(2.5), np.sqrt(2.0)])
    # robust sd: IQR ("lower" percentiles) = 3 - 1 = 2 for A, 4 - 2 = 2 for B -> 2 / 1.349
    # lag-1 Yule-Walker: A demeaned (-1.75 -0.75 0.25 2.25): 1.6875 / 8.75 ; B (-1 -1 1 1): 1 / 4
    sd = 2 / 1.349
    expected = np.mean([np.sqrt(2 * (1 - 1.6875 / 8.75)) * sd, np.sqrt(2 * (1 - 0.25)) * sd])
    assert expected == pytest.approx(1.84973, abs=1e-4)
    assert np.allclose(s[1:], d[1:] / expected)


def test_dvars_scaling_and_constant_voxels():
    rng = np.random.default_rng(0)
    data = 500 + rng.normal(size=(50, 30))
    d1, s1 = dvars(data)
    d2, s2 = dvars(3 * data)  # normalised to median 1000: scale-free
    assert np.allclose(d1[1:], d2[1:]) and np.allclose(s1[1:], s2[1:])
    d3, s3 = dvars(np.vstack([data, np.zeros((20, 30))]))  # constant (out-of-FOV) voxels ignored
    assert np.allclose(s1[1:], s3[1:])
    # white noise: standardised DVARS ~ 1
    assert 0.8 < np.nanmean(s1) < 1.2
    d_raw, _ = dvars(data, intensity_normalization=None)
    assert np.allclose(d_raw[1:], np.sqrt(np.mean(np.diff(data, axis=1) ** 2, axis=0)))


def test_table_columns_units_and_na(tmp_path):
    n = 12
    params = np.zeros((n, 6))
    params[6:, 0] = 0.8  # a 0.8 mm jump at volume 6
    params[9:, 3] = 0.004  # 0.2 mm at 50 mm at volume 9 (below threshold)
    std = np.ones(n)
    std[0] = np.nan
    std[3] = 2.0  # a DVARS spike
    table = confounds_table(params, std * 10, std)
    assert list(table.columns[:6]) == list(PARAM_NAMES)
    for name in PARAM_NAMES:
        for suffix in ("_derivative1", "_power2", "_derivative1_power2"):
            assert f"{name}{suffix}" in table
    assert {"framewise_displacement", "dvars", "std_dvars"} <= set(table.columns)
    fd = table["framewise_displacement"].to_numpy()
    assert np.isnan(fd[0])
    assert np.allclose(fd[1:], framewise_displacement(params)[1:])
    assert fd[6] == pytest.approx(0.8) and fd[9] == pytest.approx(0.2)
    outliers = [c for c in table if c.startswith("motion_outlier")]
    assert outliers == ["motion_outlier00", "motion_outlier01"]
    assert np.flatnonzero(table["motion_outlier00"]) == [3]
    assert np.flatnonzero(table["motion_outlier01"]) == [6]

    bold = np.ones((4, 4, 4, n), np.float32) * 100 + np.random.default_rng(1).normal(size=(4, 4, 4, n))
    nib.save(nib.Nifti1Image(bold.astype(np.float32), np.eye(4)), tmp_path / "bold.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)), tmp_path / "mask.nii.gz")
    pd.DataFrame(params, columns=PARAM_NAMES).to_csv(tmp_path / "motion.tsv", sep="\t", index=False)
    write_confounds(
        tmp_path / "motion.tsv", tmp_path / "conf.tsv", out_json=tmp_path / "conf.json",
        bold_file=tmp_path / "bold.nii.gz", mask_file=tmp_path / "mask.nii.gz",
    )
    lines = (tmp_path / "conf.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    first = dict(zip(header, lines[1].split("\t")))
    assert first["framewise_displacement"] == "n/a" and first["dvars"] == "n/a" and first["std_dvars"] == "n/a"
    assert first["trans_x_derivative1"] == "n/a" and first["trans_x"] == "0"
    assert "motion_outlier00" in header  # the 0.8 mm jump
    meta = json.loads((tmp_path / "conf.json").read_text())
    assert set(meta) == set(header)
    assert meta["trans_x"]["Units"] == "mm" and meta["rot_z"]["Units"] == "rad"
    assert meta["rot_x_power2"]["Units"] == "rad^2"
    assert meta["framewise_displacement"]["Units"] == "mm"
    assert "0.5 mm" in meta["motion_outlier00"]["Description"]


def test_thresholds_configurable():
    fd = np.array([np.nan, 0.2, 0.6, 0.3])
    sd = np.array([np.nan, 1.0, 1.0, 1.7])
    assert list(outlier_columns(fd, sd)) == ["motion_outlier00", "motion_outlier01"]
    assert list(outlier_columns(fd, sd, fd_threshold=1.0, dvars_threshold=2.0)) == []
    strict = outlier_columns(fd, sd, fd_threshold=0.1, dvars_threshold=5)
    assert strict.to_numpy().sum(axis=0).tolist() == [1, 1, 1]


def test_bad_shapes(tmp_path):
    with pytest.raises(ValueError):
        confounds_table(np.zeros((5, 3)))
    with pytest.raises(ValueError):
        confounds_table(np.zeros((5, 6)), np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError):
        dvars(np.zeros(5))


def test_nilearn_reads_our_confounds_as_fmriprep_output(tmp_path):
    """nilearn's fMRIPrep reader (``load_confounds``) finds our TSV next to the preprocessed
    BOLD by fMRIPrep's naming and picks the right columns for its strategies, its default
    (motion, high_pass, wm_csf) included."""
    from nilearn.image import resample_img
    from nilearn.interfaces.fmriprep import load_confounds

    from neurofuse.fmri.registration import load_template_mask

    n, tr = 40, 2.0
    rng = np.random.default_rng(0)
    params = np.cumsum(rng.normal(size=(n, 6)) * np.r_[[0.03] * 3, [0.0005] * 3], axis=0)
    params[12:, 1] += 0.9  # a 0.9 mm jump at volume 12
    pd.DataFrame(params, columns=PARAM_NAMES).to_csv(tmp_path / "motion.tsv", sep="\t", index=False)
    # an MNI-space run on a 6 mm grid (small), the template brain as its mask
    mask_img = resample_img(load_template_mask(2), target_affine=np.diag([6.0, 6.0, 6.0]), interpolation="nearest",
                            force_resample=True, copy_header=True)
    mask_data = np.asarray(mask_img.dataobj) > 0
    bold = tmp_path / "sub-01_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    series = (500 + rng.normal(size=mask_data.shape + (n,))) * mask_data[..., None]
    series[..., 20:] *= 1.01  # a global step: global_signal must see it
    nib.save(nib.Nifti1Image(series.astype(np.float32), mask_img.affine), bold)
    mask = tmp_path / "sub-01_task-rest_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz"
    nib.save(nib.Nifti1Image(mask_data.astype(np.uint8), mask_img.affine), mask)
    stem = tmp_path / "sub-01_task-rest_desc-confounds_timeseries"
    write_confounds(tmp_path / "motion.tsv", f"{stem}.tsv", out_json=f"{stem}.json", bold_file=bold, mask_file=mask,
                    tr=tr)

    conf, sample_mask = load_confounds(str(bold), strategy=("motion",), motion="basic", demean=False)
    assert sorted(conf.columns) == sorted(PARAM_NAMES) and sample_mask is None
    assert np.allclose(conf[list(PARAM_NAMES)].to_numpy(), params, atol=1e-7)
    conf, _ = load_confounds(str(bold), strategy=("motion",), motion="full")
    assert len(conf.columns) == 24 and "rot_z_derivative1_power2" in conf
    assert not conf.isna().any().any()  # nilearn fills our first-row n/a
    # nilearn's default strategy: motion + high_pass (our cosineNN) + wm_csf
    conf, _ = load_confounds(str(bold), demean=False)
    cosines = sorted(c for c in conf if c.startswith("cosine"))
    assert len(cosines) == int(np.floor(2 * n * tr / 128)) - 1 == 0 or cosines
    assert {"csf", "white_matter", *PARAM_NAMES} <= set(conf.columns)
    conf, _ = load_confounds(str(bold), strategy=("motion", "wm_csf", "global_signal", "high_pass"),
                             motion="basic", wm_csf="full", global_signal="full", demean=False)
    assert {"global_signal_derivative1_power2", "csf_power2", "white_matter_derivative1"} <= set(conf.columns)
    gs = conf["global_signal"].to_numpy()
    assert gs[20:].mean() / gs[:20].mean() == pytest.approx(1.01, abs=1e-3)
    # scrubbing from framewise_displacement / std_dvars: volume 12 (FD 0.9 mm) is removed
    conf, sample_mask = load_confounds(str(bold), strategy=("motion", "scrub"), motion="basic", scrub=0,
                                       fd_threshold=0.5, std_dvars_threshold=100.0)
    assert 12 not in sample_mask and len(sample_mask) == n - 1
    # our one-hot spike regressors (fMRIPrep's motion_outlierNN) flag the same volume
    # (and the global step at 20 as a DVARS spike)
    table = pd.read_csv(f"{stem}.tsv", sep="\t", na_values="n/a")
    assert [int(np.flatnonzero(table[c])[0]) for c in table if c.startswith("motion_outlier")] == [12, 20]


def test_cosine_basis_matches_nilearn():
    from nilearn.glm.first_level import make_first_level_design_matrix

    n, tr = 200, 1.5
    ours = cosine_basis(n, tr)
    theirs = make_first_level_design_matrix(np.arange(n) * tr, drift_model="cosine", high_pass=1 / 128.0)
    cols = [c for c in theirs if c.startswith("drift")]
    # fMRIPrep (nipype's _cosine_drift) keeps floor(2 n TR / 128) - 1 cosines, nilearn's design
    # matrix one more; the shared ones are the same functions up to scale
    assert ours.shape == (n, 3) and len(cols) == 4
    for k, c in enumerate(cols[:3]):
        assert abs(np.corrcoef(ours[:, k], theirs[c])[0, 1]) > 0.9999
