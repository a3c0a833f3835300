"""One resampling: BOLD volumes -> template grid through every transform at once.

For a point ``p`` of the output grid (template space, RAS mm) the sample of volume ``t``
is taken at

    v_t(p) = A_bold^-1 · M_t · T(p)

where ``T`` is the composition of the registration transforms (template -> T1w -> BOLD
reference, i.e. SyN warp, T1w affine, BOLD->T1w affine; or the direct BOLD->template
transforms when there is no T1w), ``M_t`` the head-motion matrix of volume ``t``
(reference position -> volume position, :mod:`neurofuse.fmri.motion`) and ``A_bold`` the
voxel-to-world affine of the BOLD series. The series (normally the slice-time-corrected
one) is interpolated **once**, never resampled twice.

How: ``T`` is evaluated for all output voxels once, by asking ANTs to compose the
transform list into a single displacement field on the output grid
(``antsApplyTransforms`` with a composite output; LPS displacements converted to RAS).
Per volume only a 3x4 matrix product and one ``scipy.ndimage.map_coordinates`` remain,
which is much faster than calling ``ants.apply_transforms`` per volume with a
per-volume transform list (each call re-reads and re-composes the warp). Interpolation is
a cubic B-spline by default (``order=3``; ``order=1`` trilinear is ~3x faster); samples
outside the BOLD field of view are 0. Only output voxels whose reference-space position
lies inside the BOLD field of view (plus a margin for motion) are computed.

Measured (demo preset, 52x64x56x100 at 3 mm -> 99x117x95 at 2 mm, busy 2-core machine):
0.29 s per volume with cubic splines over the field of view, 0.18 s with
``region="brain"``; trilinear ~0.17 s. ``ants.apply_transforms`` per volume with the
transform list plus the volume's motion matrix: ~0.3-0.5 s per volume (linear), and its
output matches ours to 1e-5 of the intensity (99.9th percentile; only a handful of voxels
at the edge of the field of view differ), which also checks the direction conventions.

The brain mask in template space (``desc-brain_mask``) is the BOLD-reference brain mask
(given, or nilearn's ``compute_epi_mask`` of the reference) carried through ``T`` with
linear interpolation and thresholded at 0.5, as fMRIPrep projects its BOLD mask.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

import nibabel as nib
import numpy as np
from scipy import ndimage

from neurofuse.errors import NeuroFuseError
from neurofuse.fmri._threads import single_thread_blas
from neurofuse.fmri.checks import finite_series
from neurofuse.fmri.registration import TEMPLATE_SOURCE, TEMPLATE_SPACE, _ants, load_template
from neurofuse.io import save_nifti

log = logging.getLogger(__name__)

_LPS = np.array([-1.0, -1.0, 1.0])


@dataclass
class TargetMap:
    """Reference-space (BOLD reference world, RAS mm) position of every output voxel."""

    shape: tuple[int, int, int]
    affine: np.ndarray  # output grid affine
    points: np.ndarray  # (4, N) homogeneous RAS positions in BOLD-reference space, all voxels


def compose_transforms(
    transforms: Sequence[str],
    reference_file: str | os.PathLike,
    target: nib.Nifti1Image,
    *,
    invert: Sequence[bool] | None = None,
    seed: int = 42,
    threads: int = 1,
) -> TargetMap:
    """Evaluate an ANTs transform list (target <- reference, ANTs order) at every target voxel.

    ``transforms`` is what you would pass to ``ants.apply_transforms(fixed=target,
    moving=reference, transformlist=transforms, whichtoinvert=invert)``; an empty list
    means the reference world already is the target world.
    """
    tgt_affine = np.asarray(target.affine, dtype=float)
    shape = tuple(int(s) for s in target.shape[:3])
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1)
    world = tgt_affine[:3, :3] @ ijk + tgt_affine[:3, 3:4]
    if transforms:
        ants = _ants(seed, threads)
        with tempfile.TemporaryDirectory(prefix="nf-compose-") as tmp:
            tgt_path = os.path.join(tmp, "target.nii.gz")
            nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), tgt_affine), tgt_path)
            fixed = ants.image_read(tgt_path)
            moving = ants.image_read(os.fspath(reference_file))
            for path in transforms:
                if not os.path.exists(path):
                    raise NeuroFuseError("transform file does not exist", path=path)
            field_path = ants.apply_transforms(
                fixed,
                moving,
                list(map(os.fspath, transforms)),
                whichtoinvert=None if invert is None else list(invert),
                compose=os.path.join(tmp, "composite_"),
            )
            if not field_path or not os.path.exists(field_path):
                raise NeuroFuseError("ANTs could not compose the transforms", hint=str(list(transforms)))
            disp = np.asarray(nib.load(field_path).dataobj, dtype=np.float64)
        disp = disp.reshape(shape + (3,))  # (x, y, z, 1, 3) -> (x, y, z, 3), LPS mm
        world = world + (disp.reshape(-1, 3) * _LPS).T
    points = np.vstack([world, np.ones((1, world.shape[1]))])
    return TargetMap(shape=shape, affine=tgt_affine, points=points)


def _support(points: np.ndarray, inv_bold_affine: np.ndarray, bold_shape: Sequence[int], margin_vox: float) -> np.ndarray:
    vox = (inv_bold_affine @ points)[:3]
    lo = -margin_vox
    hi = np.asarray(bold_shape[:3], dtype=float)[:, None] - 1 + margin_vox
    return np.all((vox >= lo) & (vox <= hi), axis=0)




def resample_bold_to_template(
    bold_file: str | os.PathLike,
    out_file: str | os.PathLike,
    *,
    reference_file: str | os.PathLike,
    transforms: Sequence[str],
    motion: np.ndarray | str | os.PathLike | None = None,
    invert: Sequence[bool] | None = None,
    resolution: float = 2.0,
    order: int = 3,
    mask_file: str | os.PathLike | None = None,
    out_mask: str | os.PathLike | None = None,
    out_reference: str | os.PathLike | None = None,
    margin_vox: float = 4.0,
    region: str = "fov",
    seed: int = 42,
    threads: int = 1,
) -> dict:
    """Resample a 4D BOLD series onto the MNI152 template grid with one interpolation.

    Parameters
    ----------
    bold_file:
        4D BOLD (normally slice-time corrected) on the same grid as ``reference_file``.
    out_file:
        Output 4D NIfTI (float32), ``space-MNI152NLin2009cAsym_desc-preproc_bold``.
    reference_file:
        The BOLD reference volume the motion parameters and the registration refer to.
    transforms, invert:
        ANTs transform list mapping the template to the BOLD reference, e.g.
        ``t1w_to_mni.forward + bold_to_t1w.forward`` (``[warp, affine, affine]``).
    motion:
        ``(T, 6)`` parameters (:mod:`neurofuse.transforms` convention), a motion TSV path,
        a ``(T, 4, 4)`` array of matrices, or ``None`` (no motion correction).
    resolution:
        Output voxel size in mm (template grid from nilearn at that resolution).
    order:
        Spline order of the interpolation (0 nearest, 1 trilinear, 3 cubic B-spline).
    mask_file, out_mask:
        BOLD-reference brain mask (default: nilearn ``compute_epi_mask`` of the reference)
        and where to write it in template space (``desc-brain_mask``).
    out_reference:
        If given, the BOLD reference resampled to the template (``desc-boldref``; for QC).
    margin_vox:
        Output voxels whose reference position is within this many BOLD voxels outside the
        field of view are still computed (head motion may bring them in).
    region:
        ``"fov"`` (default, like fMRIPrep): every output voxel inside the BOLD field of view;
        ``"brain"``: only voxels of the template brain mask dilated by 10 mm (others are 0),
        about 2.5x faster at 2 mm.

    Returns
    -------
    dict
        Sidecar metadata (``RepetitionTime``, ``SpatialReference``, …) plus ``seconds``.
    """
    from neurofuse.fmri.motion import motion_matrices, read_motion_tsv

    start = time.perf_counter()
    bold = nib.load(os.fspath(bold_file))
    if bold.ndim != 4:
        raise NeuroFuseError(f"expected a 4D BOLD image, got {bold.ndim}D", path=bold_file)
    ref = nib.load(os.fspath(reference_file))
    if ref.shape[:3] != bold.shape[:3] or not np.allclose(ref.affine, bold.affine, atol=1e-3):
        raise NeuroFuseError(
            "the BOLD series and its reference volume are on different grids", path=bold_file,
            hint="use the reference written by neurofuse.fmri.motion.estimate_motion for this run",
        )
    n_vol = bold.shape[3]
    if motion is None:
        mats = np.repeat(np.eye(4)[None], n_vol, axis=0)
    elif isinstance(motion, (str, os.PathLike)):
        mats = motion_matrices(read_motion_tsv(motion))
    else:
        arr = np.asarray(motion, dtype=float)
        mats = arr if arr.ndim == 3 else motion_matrices(arr)
    if len(mats) != n_vol:
        raise NeuroFuseError(f"{len(mats)} motion estimates for {n_vol} volumes", path=bold_file)

    target = load_template(resolution)
    tmap = compose_transforms(transforms, reference_file, target, invert=invert, seed=seed, threads=threads)
    t_compose = time.perf_counter() - start
    inv_bold = np.linalg.inv(np.asarray(bold.affine, dtype=float))
    support = _support(tmap.points, inv_bold, bold.shape, margin_vox)
    if region == "brain":
        from neurofuse.fmri.registration import load_template_mask

        brain = np.asarray(load_template_mask(resolution).dataobj) > 0
        brain = ndimage.binary_dilation(brain, iterations=max(1, int(round(10.0 / resolution))))
        support &= brain.reshape(-1)
    elif region != "fov":
        raise ValueError(f"region must be 'fov' or 'brain', got {region!r}")
    pts = tmap.points[:, support]
    n_out = int(np.prod(tmap.shape))

    data = np.zeros(tmap.shape + (n_vol,), dtype=np.float32, order="F")  # NIfTI order: no copy on save
    flat = np.zeros(n_out, dtype=np.float32)
    series = finite_series(bold.dataobj)  # once: slicing a .nii.gz re-inflates it; NaN/inf -> 0
    with single_thread_blas():
        for t in range(n_vol):
            vox = (inv_bold @ mats[t])[:3] @ pts
            flat[support] = ndimage.map_coordinates(series[..., t], vox, order=order, mode="constant", cval=0.0)
            data[..., t] = flat.reshape(tmap.shape)
    out = nib.Nifti1Image(data, tmap.affine)
    tr = float(bold.header.get_zooms()[3]) if len(bold.header.get_zooms()) > 3 else 0.0
    out.header.set_xyzt_units("mm", "sec")
    zooms = out.header.get_zooms()
    out.header.set_zooms(zooms[:3] + (tr,))
    save_nifti(out, out_file)

    ref_data = np.asarray(ref.dataobj, dtype=np.float32)
    ref_pts_vox = (inv_bold @ tmap.points)[:3]
    if out_mask is not None:
        if mask_file is not None:
            mask = np.asarray(nib.load(os.fspath(mask_file)).dataobj) > 0
        else:
            import warnings

            from nilearn.masking import compute_epi_mask

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an empty mask is handled below, with a clearer message
                mask = np.asarray(compute_epi_mask(ref).dataobj) > 0
            if not mask.any():
                # no background to separate (e.g. an already masked or cropped series such as
                # nibabel's functional.nii): every voxel with signal is taken as brain
                mask = ref_data > 0
                log.warning("%s: no background in the BOLD reference to separate the brain from; the brain "
                            "mask is every voxel with signal (%d voxels)", os.fspath(reference_file), int(mask.sum()))
        proj = ndimage.map_coordinates(mask.astype(np.float32), ref_pts_vox, order=1, mode="constant", cval=0.0)
        save_nifti(nib.Nifti1Image((proj >= 0.5).reshape(tmap.shape).astype(np.uint8), tmap.affine), out_mask)
    if out_reference is not None:
        proj = ndimage.map_coordinates(ref_data, ref_pts_vox, order=order, mode="constant", cval=0.0)
        save_nifti(nib.Nifti1Image(proj.reshape(tmap.shape).astype(np.float32), tmap.affine), out_reference)

    seconds = time.perf_counter() - start
    log.info("resampled %d volumes to %s in %.1f s (compose %.1f s)", n_vol, TEMPLATE_SPACE, seconds, t_compose)
    return {
        "RepetitionTime": tr,
        "SpatialReference": TEMPLATE_SPACE,
        "TemplateSource": TEMPLATE_SOURCE,
        "Resolution": f"{resolution:g} mm isotropic",
        "Interpolation": {0: "nearest", 1: "trilinear"}.get(order, f"B-spline order {order}"),
        "MotionCorrected": motion is not None,
        "seconds": round(seconds, 3),
    }
