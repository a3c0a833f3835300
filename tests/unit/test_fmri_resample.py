"""One-shot resampling: motion direction, ANTs transform composition, mask output."""

import nibabel as nib
import numpy as np
import pytest
from fmri_phantom import grid_affine, moving_series, phantom, random_motion

from neurofuse.errors import NeuroFuseError
from neurofuse.fmri.registration import _ants, load_template, read_ants_affine
from neurofuse.fmri.resample import compose_transforms, resample_bold_to_template
from neurofuse.transforms import rigid_matrix

RES = 4  # mm: small output grid keeps the tests fast


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resample")
    params = random_motion(6, np.random.default_rng(3), trans_mm=0.6, rot_rad=0.01)
    data, affine = moving_series(params, shape=(40, 44, 32), voxel=(4.0, 4.0, 4.5), noise=0.0, edge=12.0)
    bold = tmp / "bold.nii.gz"
    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms((4.0, 4.0, 4.5, 2.0))
    nib.save(img, bold)
    ref = tmp / "ref.nii.gz"
    nib.save(nib.Nifti1Image(data[..., 0], affine), ref)
    return tmp, params, bold, ref


def _template_points():
    tpl = load_template(RES)
    ijk = np.indices(tpl.shape[:3]).reshape(3, -1)
    return tpl, (tpl.affine[:3, :3] @ ijk + tpl.affine[:3, 3:4]).T


def test_motion_is_undone_in_template_space(run):
    tmp, params, bold, ref = run
    meta = resample_bold_to_template(
        bold, tmp / "out.nii.gz", reference_file=ref, transforms=[], motion=params, resolution=RES, order=3,
    )
    assert meta["SpatialReference"] == "MNI152NLin2009cAsym" and meta["RepetitionTime"] == 2.0
    out = nib.load(tmp / "out.nii.gz")
    tpl, pts = _template_points()
    assert out.shape == tpl.shape[:3] + (6,)
    assert np.allclose(out.affine, tpl.affine)
    assert out.header.get_zooms()[3] == 2.0
    truth = phantom(pts, 12.0).reshape(tpl.shape[:3])  # volume 0 pose == identity
    inside = truth > 300
    data = out.get_fdata()
    err = np.abs(data[inside] - truth[inside][:, None])
    assert np.median(err) < 1.0  # intensity ~600-1100; measured median 0.05-0.14 per volume
    # without motion correction the later volumes are far off
    resample_bold_to_template(bold, tmp / "raw.nii.gz", reference_file=ref, transforms=[], motion=None, resolution=RES)
    raw = nib.load(tmp / "raw.nii.gz").get_fdata()
    err_raw = np.abs(raw[inside][:, -1] - truth[inside])
    assert np.median(err_raw) > 10 * np.median(err[:, -1])  # measured 21.6 vs 0.11


def test_motion_tsv_input_equals_array(run):
    tmp, params, bold, ref = run
    from neurofuse.fmri.motion import write_motion_tsv

    write_motion_tsv(params, tmp / "m.tsv")
    resample_bold_to_template(bold, tmp / "a.nii.gz", reference_file=ref, transforms=[], motion=params, resolution=RES, order=1)
    resample_bold_to_template(bold, tmp / "b.nii.gz", reference_file=ref, transforms=[], motion=tmp / "m.tsv", resolution=RES, order=1)
    assert np.allclose(nib.load(tmp / "a.nii.gz").get_fdata(), nib.load(tmp / "b.nii.gz").get_fdata(), atol=1e-3)
    with pytest.raises(NeuroFuseError):
        resample_bold_to_template(bold, tmp / "c.nii.gz", reference_file=ref, transforms=[], motion=params[:3], resolution=RES)


def _write_affine(path, ras_matrix):
    """ITK affine file for a RAS fixed->moving matrix (ITK works in LPS)."""
    ants = _ants(42, 1)
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    lps = flip @ ras_matrix @ flip
    tx = ants.create_ants_transform(
        transform_type="AffineTransform", precision="double", dimension=3,
        matrix=lps[:3, :3], translation=lps[:3, 3], center=np.zeros(3),
    )
    ants.write_transform(tx, str(path))
    return str(path)


def test_ants_affine_composition_matches_matrix(run, tmp_path):
    _, _, _, ref = run
    ang = 0.08
    mat = np.eye(4)
    mat[:3, :3] = [[np.cos(ang), -np.sin(ang), 0], [np.sin(ang), np.cos(ang), 0], [0, 0, 1.0]]
    mat[:3, 3] = [4.0, -6.0, 2.5]
    path = _write_affine(tmp_path / "aff.mat", mat)
    assert np.allclose(read_ants_affine(path), mat, atol=1e-6)
    tpl, pts = _template_points()
    tmap = compose_transforms([path], ref, tpl)
    expected = pts @ mat[:3, :3].T + mat[:3, 3]
    assert np.abs(tmap.points[:3].T - expected).max() < 1e-3
    # two transforms: the first listed acts first on target points (ANTs order):
    # [A, shift] maps p to shift(A(p))
    shift = np.eye(4)
    shift[:3, 3] = [10.0, 0.0, 0.0]
    path2 = _write_affine(tmp_path / "shift.mat", shift)
    tmap2 = compose_transforms([path, path2], ref, tpl)
    expected2 = pts @ mat[:3, :3].T + mat[:3, 3] + [10.0, 0.0, 0.0]
    assert np.abs(tmap2.points[:3].T - expected2).max() < 1e-3


def test_resample_agrees_with_ants_apply_transforms(run, tmp_path):
    tmp, _, bold, ref = run
    mat = np.eye(4)
    mat[:3, 3] = [3.0, -2.0, 1.0]
    path = _write_affine(tmp_path / "aff.mat", mat)
    ref_img = nib.load(ref)
    nib.save(nib.Nifti1Image((ref_img.get_fdata() > 500).astype(np.uint8), ref_img.affine), tmp_path / "m.nii.gz")
    resample_bold_to_template(
        bold, tmp_path / "ours.nii.gz", reference_file=ref, transforms=[path], resolution=RES, order=1,
        out_reference=tmp_path / "ref_mni.nii.gz", out_mask=tmp_path / "mask.nii.gz", mask_file=tmp_path / "m.nii.gz",
    )
    ants = _ants(42, 1)
    tpl = load_template(RES)
    nib.save(tpl, tmp_path / "tpl.nii.gz")
    theirs = ants.apply_transforms(
        ants.image_read(str(tmp_path / "tpl.nii.gz")), ants.image_read(str(ref)), [path], interpolator="linear",
    ).numpy()
    ours = nib.load(tmp_path / "ref_mni.nii.gz").get_fdata()
    inside = theirs > 100
    assert inside.sum() > 1000
    assert np.abs(ours[inside] - theirs[inside]).max() < 1.0  # same trilinear sample
    first = nib.load(tmp_path / "ours.nii.gz").get_fdata()[..., 0]
    assert np.abs(first[inside] - theirs[inside]).max() < 1.0  # volume 0 = reference, no motion
    # with motion: ANTs with the motion matrix appended (it acts last on template points)
    params = run[1]
    resample_bold_to_template(
        bold, tmp_path / "moved.nii.gz", reference_file=ref, transforms=[path], motion=params, resolution=RES, order=1,
    )
    nib.save(nib.Nifti1Image(nib.load(bold).get_fdata()[..., 5].astype(np.float32), nib.load(bold).affine),
             tmp_path / "vol5.nii.gz")
    motion5 = _write_affine(tmp_path / "motion5.mat", rigid_matrix(params[5]))
    theirs5 = ants.apply_transforms(
        ants.image_read(str(tmp_path / "tpl.nii.gz")), ants.image_read(str(tmp_path / "vol5.nii.gz")),
        [path, motion5], interpolator="linear",
    ).numpy()
    ours5 = nib.load(tmp_path / "moved.nii.gz").get_fdata()[..., 5]
    inside5 = theirs5 > 100
    assert np.percentile(np.abs(ours5[inside5] - theirs5[inside5]), 99.9) < 0.5  # measured 0.002
    mask = nib.load(tmp_path / "mask.nii.gz")
    assert mask.get_data_dtype() == np.uint8 and set(np.unique(mask.get_fdata())) == {0, 1}
    projected = mask.get_fdata() > 0
    expected = ours > 500  # the mask follows the same mapping as the data
    assert 2 * (projected & expected).sum() / (projected.sum() + expected.sum()) > 0.95
    # default mask: nilearn compute_epi_mask of the reference, projected
    resample_bold_to_template(
        bold, tmp_path / "o2.nii.gz", reference_file=ref, transforms=[path], resolution=RES, order=1,
        out_mask=tmp_path / "mask2.nii.gz",
    )
    assert (nib.load(tmp_path / "mask2.nii.gz").get_fdata() > 0)[expected].mean() > 0.5


def test_grid_mismatch_rejected(run, tmp_path):
    _, _, bold, _ = run
    other = tmp_path / "other.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 10), np.float32), grid_affine((10, 10, 10), (2, 2, 2))), other)
    with pytest.raises(NeuroFuseError):
        resample_bold_to_template(bold, tmp_path / "x.nii.gz", reference_file=other, transforms=[], resolution=RES)


def test_slice_time_and_resample_step_equals_the_two_steps(run, tmp_path):
    """The workflow's one job (slice timing, then the resampling) gives what the two steps give
    one after the other, leaves no scratch file, and resamples the raw series without SliceTiming."""
    from neurofuse.fmri.motion import write_motion_tsv
    from neurofuse.fmri.slice_timing import correct_slice_timing
    from neurofuse.fmri.steps import slice_time_and_resample_step

    tmp, params, bold, ref = run
    write_motion_tsv(params, tmp_path / "motion.tsv")
    n_slices = nib.load(bold).shape[2]
    times = list(np.arange(n_slices) * 2.0 / n_slices)
    common = dict(reference_file=ref, transforms=[], motion=tmp_path / "motion.tsv", resolution=RES)
    stc = correct_slice_timing(bold, tmp_path / "stc.nii.gz", times, 2.0)
    resample_bold_to_template(tmp_path / "stc.nii.gz", tmp_path / "two.nii.gz", **common)
    resample_bold_to_template(bold, tmp_path / "raw.nii.gz", **common)

    out = tmp_path / "out" / "one_bold.nii.gz"
    names = dict(out_bold=out, out_json=out.with_name("one_bold.json"), out_mask=out.with_name("mask.nii.gz"),
                 out_boldref=out.with_name("boldref.nii.gz"), boldref_file=ref, transforms=[],
                 motion_file=tmp_path / "motion.tsv", resolution=RES, sources=["bids:raw:bold.nii.gz"])
    meta = slice_time_and_resample_step(bold, {"RepetitionTime": 2.0, "SliceTiming": times}, **names)
    one, two = nib.load(out).get_fdata(), nib.load(tmp_path / "two.nii.gz").get_fdata()
    assert np.abs(one - two).max() < 1e-3 * np.abs(two).max()
    assert np.abs(one - nib.load(tmp_path / "raw.nii.gz").get_fdata()).max() > 1.0  # slice timing did change it
    assert meta["SliceTimingCorrected"] is True and meta["StartTime"] == stc["StartTime"]
    assert meta["Sources"] == ["bids:raw:bold.nii.gz"] and meta["SkullStripped"] is False
    assert sorted(p.name for p in out.parent.iterdir()) == ["boldref.nii.gz", "mask.nii.gz", "one_bold.json",
                                                           "one_bold.nii.gz"]  # no scratch series left

    meta = slice_time_and_resample_step(bold, {"RepetitionTime": 2.0}, **names)  # no SliceTiming: the raw series
    assert meta["SliceTimingCorrected"] is False
    assert np.abs(nib.load(out).get_fdata() - nib.load(tmp_path / "raw.nii.gz").get_fdata()).max() < 1e-3
    assert len(list(out.parent.iterdir())) == 4
