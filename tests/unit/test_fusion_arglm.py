"""The bias-corrected AR GLM against known noise: null z-scores standard normal, AR(1)
coefficients recovered, effects unbiased; nilearn's uncorrected AR(1) as the reference."""

import numpy as np
import pytest
from nilearn.glm.contrasts import compute_contrast
from nilearn.glm.first_level import make_first_level_design_matrix, run_glm, spm_hrf

from neurofuse.fusion import arglm

N, TR, VOXELS = 120, 2.0, 6000


@pytest.fixture(scope="module")
def design():
    rng = np.random.default_rng(0)
    hrf = spm_hrf(TR, oversampling=1)
    bands = np.stack([np.convolve(rng.standard_normal(N), hrf)[:N] for _ in range(5)], axis=1)
    motion = 0.1 * rng.standard_normal((N, 6)).cumsum(axis=0)
    add = np.column_stack([(bands - bands.mean(0)) / bands.std(0), motion])
    return make_first_level_design_matrix(np.arange(N) * TR, drift_model="cosine", high_pass=0.01,
                                          add_regs=add).to_numpy()


def _ar1_noise(rho, seed):
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((N, VOXELS))
    y = e.copy()
    for t in range(1, N):
        y[t] = rho * y[t - 1] + e[t]
    return y


def _z(labels, results, design):
    contrast = np.zeros(design.shape[1])
    contrast[0] = 1.0
    return compute_contrast(labels, results, contrast, stat_type="t").z_score()


def _pooled(gamma):
    return np.repeat(gamma.mean(axis=1, keepdims=True), gamma.shape[1], axis=1)  # ideal spatial regularisation


@pytest.mark.parametrize("rho", [0.0, 0.4])
def test_null_z_is_standard_normal_where_nilearn_is_too_wide(design, rho):
    y = _ar1_noise(rho, seed=int(rho * 10) + 1)
    z = _z(*arglm.fit(y, design, "ar1", smooth=_pooled), design)
    assert abs(z.std() - 1) < 0.04 and abs(np.mean(np.abs(z) > 1.96) - 0.05) < 0.012, (z.std(),)
    z_voxelwise = _z(*arglm.fit(y, design, "ar1"), design)
    z_nilearn = _z(*run_glm(y, design, noise_model="ar1"), design)
    assert z_voxelwise.std() < z_nilearn.std() - 0.05  # the bias correction alone already helps
    assert z_nilearn.std() > 1.08


def test_ar_coefficients_are_recovered_and_effects_unbiased(design):
    y = _ar1_noise(0.5, seed=7)
    residuals = y - design @ (np.linalg.pinv(design) @ y)
    rho = arglm.ar_coefficients(arglm.autocovariances(residuals, design, 1), 1)[:, 0]
    assert abs(rho.mean() - 0.5) < 0.08  # uncorrected Yule-Walker on residuals: about 0.38
    naive = np.sum(residuals[1:] * residuals[:-1], axis=0) / np.sum(residuals**2, axis=0)
    assert naive.mean() < rho.mean() - 0.05
    signal = y + 0.8 * design[:, [0]]
    labels, results = arglm.fit(signal, design, "ar2", smooth=_pooled)
    contrast = np.zeros(design.shape[1])
    contrast[0] = 1.0
    effect = compute_contrast(labels, results, contrast, stat_type="t").effect_size()
    assert abs(effect.mean() - 0.8) < 0.03


def test_bad_noise_model_is_refused(design):
    with pytest.raises(ValueError, match="ols' or 'ar<p>'"):
        arglm.fit(np.zeros((N, 3)), design, "arma")
