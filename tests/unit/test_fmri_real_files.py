"""A real run through the whole fMRI chain: nibabel's ``functional.nii`` (a real
SPM-normalised series, 17 x 21 x 3 voxels of 4 x 4 x 8 mm, 20 volumes, int16 with a scale
factor, no background around the brain, no SliceTiming, no T1w)."""

import os

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from neurofuse.fmri.pipeline import preprocess_run

pytestmark = pytest.mark.slow


def test_functional_nii_through_the_chain(tmp_path, caplog):
    from nibabel.testing import data_path

    caplog.set_level("WARNING")
    bold = os.path.join(data_path, "functional.nii")
    out = preprocess_run(bold, {"RepetitionTime": 2.0}, tmp_path, resolution=3.0, registration_resolution=3.0,
                         figures=False)
    files = out["files"]
    # no SliceTiming: skipped with a warning (fMRIPrep's behaviour); no T1w: BOLD -> template
    assert "no SliceTiming" in caplog.text and "no T1w for this run" in caplog.text
    assert out["metadata"]["SliceTimingCorrected"] is False
    # no background to separate: the mask is every voxel with signal, said so
    assert "no background in the BOLD reference" in caplog.text
    # the plain .nii input was re-written as .nii.gz (the skip used to copy its bytes under a .gz name)
    stc = nib.load(files["stc"])
    assert np.allclose(np.asarray(stc.dataobj), np.asarray(nib.load(bold).dataobj), rtol=1e-6)

    preproc = nib.load(files["preproc"])
    assert preproc.shape[3] == 20 and np.allclose(np.diag(preproc.affine)[:3], 3.0)
    data = np.asarray(preproc.dataobj)
    mask = np.asarray(nib.load(files["mask"]).dataobj) > 0
    assert np.isfinite(data).all() and mask.sum() > 500
    inside = data[mask].mean()
    assert 2000 < inside < 6000  # the series' own intensity range (630-5570), carried over

    table = pd.read_csv(files["confounds"], sep="\t", na_values="n/a")
    assert len(table) == 20
    motion = table[["trans_x", "trans_y", "trans_z"]].to_numpy()
    assert np.abs(motion).max() < 1.0  # a realigned, normalised series: little motion left (measured 0.25 mm)
    assert {"global_signal", "csf", "white_matter", "dvars", "std_dvars"} <= set(table.columns)
    assert not any(c.startswith("cosine") for c in table)  # 20 x 2 s is shorter than one 128 s period
