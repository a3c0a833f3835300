"""A small EEG-fMRI fusion dataset with known coupling, for the fusion tests.

Brain: an ellipsoid on a 6 mm grid. Each coupled band has a smooth random driver; its
EEG band power (8 channels, topography per band) is ``exp(0.5 * driver)`` times noise, and
the BOLD of its spherical region changes by ``coupling x (HRF * driver)``. The files look
like the workflow's: preprocessed BOLD + brain mask (NIfTI), band power TSV with raw and
HRF-convolved columns (written by the EEG step's own writer), confounds TSV.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

from neurofuse.eeg.bandpower import DEFAULT_BANDS, hrf_convolve, write_band_power
from neurofuse.fusion.train import RunInput

CHANNELS = ["Fp1", "Fp2", "C3", "C4", "P3", "P4", "O1", "O2"]
TOPOGRAPHY = {  # relative driver gain per channel
    "alpha": [0.2, 0.2, 0.4, 0.4, 0.9, 0.9, 1.0, 1.0],
    "beta": [0.2, 0.2, 1.0, 1.0, 0.4, 0.4, 0.2, 0.2],
    "theta": [1.0, 1.0, 0.6, 0.6, 0.3, 0.3, 0.2, 0.2],
}
AFFINE = np.array([[6.0, 0, 0, -78], [0, 6.0, 0, -114], [0, 0, 6.0, -60], [0, 0, 0, 1]])
SHAPE = (27, 35, 25)


def grid_mm() -> np.ndarray:
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), -1)
    return nib.affines.apply_affine(AFFINE, ijk)


def brain() -> np.ndarray:
    xyz = grid_mm()
    return (((xyz[..., 0]) / 68) ** 2 + ((xyz[..., 1] + 18) / 90) ** 2 + ((xyz[..., 2] - 10) / 62) ** 2) <= 1.0


def sphere(centre, radius) -> np.ndarray:
    return (np.sum((grid_mm() - np.asarray(centre)) ** 2, -1) <= radius**2) & brain()


def _driver(n: int, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    d = gaussian_filter1d(rng.standard_normal(n + 40), 1.5)[20:-20] + 0.5 * gaussian_filter1d(rng.standard_normal(n + 40), 4)[20:-20]
    return (d - d.mean()) / d.std()


def make_dataset(root: Path, *, couplings: dict, n_subjects: int = 3, n_volumes: int = 120, tr: float = 2.0,
                 seed: int = 0, null: bool = False, noise: float = 0.015) -> tuple[list[RunInput], dict]:
    """Write the dataset; ``couplings`` = {band: (coupling, centre_mm, radius_mm)}.

    ``null=True`` permutes the EEG rows in time (then re-convolves): no coupling remains.
    Returns the runs and the truth masks by band.
    """
    from nilearn.glm.first_level import spm_hrf

    rng = np.random.default_rng(seed)
    mask = brain()
    truth = {band: sphere(c, r) for band, (_, c, r) in couplings.items()}
    hrf = spm_hrf(tr, oversampling=1)
    runs = []
    for s in range(1, n_subjects + 1):
        sub = f"{s:02d}"
        run = f"sub-{sub}_task-rest"
        d = root / f"sub-{sub}"
        d.mkdir(parents=True, exist_ok=True)
        base = 1000.0 * (1 + 0.1 * rng.standard_normal(SHAPE))
        bold = base[..., None] * (1 + noise * rng.standard_normal(SHAPE + (n_volumes,)))
        bold += np.linspace(0, 5, n_volumes)  # a slow drift
        power = {b: np.exp(0.3 * rng.standard_normal((n_volumes, len(CHANNELS)))) * 10 for b in DEFAULT_BANDS}
        for band, (coupling, _, _) in couplings.items():
            drv = _driver(n_volumes, rng)
            reg = np.convolve(drv, hrf)[:n_volumes]
            reg = (reg - reg.mean()) / reg.std()
            bold[truth[band]] *= (1 + coupling * reg)[None, :]
            power[band] *= np.exp(0.5 * np.outer(drv, TOPOGRAPHY[band]))
        bold[~mask] = 0
        bold_path = d / f"{run}_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
        nib.save(nib.Nifti1Image(bold.astype(np.float32), AFFINE), bold_path)
        mask_path = d / f"{run}_space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz"
        nib.save(nib.Nifti1Image(mask.astype(np.uint8), AFFINE), mask_path)
        order = rng.permutation(n_volumes) if null else np.arange(n_volumes)
        columns, blocks = [], []
        onsets = np.arange(n_volumes) * tr
        for band in DEFAULT_BANDS:
            raw = power[band][order]
            raw = np.column_stack([raw, raw.mean(1)])
            blocks += [raw, hrf_convolve(raw, onsets, tr, onsets + tr / 2)]
            names = [f"{band}_{c}" for c in CHANNELS + ["mean"]]
            columns += names + [f"{n}_hrf" for n in names]
        bands_path = d / f"{run}_desc-eegbands_timeseries.tsv"
        write_band_power(columns, np.concatenate(blocks, 1), {}, bands_path)
        motion = 0.05 * np.cumsum(rng.standard_normal((n_volumes, 6)), 0) * [1, 1, 1, 0.01, 0.01, 0.01]
        conf_path = d / f"{run}_desc-confounds_timeseries.tsv"
        pd.DataFrame(motion, columns=["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]).to_csv(
            conf_path, sep="\t", index=False)
        runs.append(RunInput(run, sub, str(bold_path), str(mask_path), str(bands_path), str(conf_path), tr))
    return runs, truth
