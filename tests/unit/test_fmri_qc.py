"""QC figures are written (PNG/SVG), headless, and reflect their input."""

import matplotlib
import nibabel as nib
import numpy as np
import pytest

from neurofuse.fmri.confounds import confounds_table
from neurofuse.fmri.qc import plot_carpet, plot_motion, plot_registration
from neurofuse.fmri.registration import load_template

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def table():
    params = np.zeros((20, 6))
    params[10:, 0] = 1.0  # one 1 mm jump
    params[:, 5] = np.linspace(0, 0.01, 20)
    return confounds_table(params, np.r_[np.nan, np.ones(19)], np.r_[np.nan, np.ones(19)])


def test_backend_is_headless():
    assert matplotlib.get_backend().lower() == "agg"


def test_motion_plot_png_and_svg(table, tmp_path):
    png = plot_motion(table, tmp_path / "motion.png", tr=2.0)
    assert open(png, "rb").read(8) == PNG_MAGIC
    table.to_csv(tmp_path / "conf.tsv", sep="\t", index=False, na_rep="n/a")
    svg = plot_motion(tmp_path / "conf.tsv", tmp_path / "motion.svg")
    text = open(svg).read()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    assert "1 volumes &gt; 0.5 mm" in text or "1 volumes > 0.5 mm" in text  # the jump is counted


def test_carpet_plot(table, tmp_path):
    rng = np.random.default_rng(0)
    data = (100 + rng.normal(size=(6, 6, 6, 20))).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "bold.nii.gz")
    mask = np.zeros((6, 6, 6), np.uint8)
    mask[1:5, 1:5, 1:5] = 1
    nib.save(nib.Nifti1Image(mask, np.eye(4)), tmp_path / "mask.nii.gz")
    out = plot_carpet(tmp_path / "bold.nii.gz", tmp_path / "mask.nii.gz", tmp_path / "carpet.png", confounds=table)
    assert open(out, "rb").read(8) == PNG_MAGIC
    image = matplotlib.image.imread(out)
    assert image.shape[0] > 300 and image.std() > 0.05  # not blank


def test_registration_overlay(tmp_path):
    template = load_template(4)
    noisy = template.get_fdata() * 800 + np.random.default_rng(0).normal(size=template.shape) * 20
    nib.save(nib.Nifti1Image(noisy.astype(np.float32), template.affine), tmp_path / "mean.nii.gz")
    out = plot_registration(tmp_path / "mean.nii.gz", tmp_path / "reg.png", resolution=4)
    image = matplotlib.image.imread(out)
    red = (image[..., 0] > 0.8) & (image[..., 1] < 0.3) & (image[..., 2] < 0.3)
    assert red.sum() > 200  # template edges drawn in red
