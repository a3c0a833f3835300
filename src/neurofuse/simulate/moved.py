"""Known head motion applied to a real volume, and motion estimates scored against it.

The simulator's BOLD comes from a synthetic head; this module makes the other kind of
ground truth: a *real* EPI volume (e.g. nibabel's ``example4d.nii.gz``, a real scan)
moved by known rigid transforms, so that a motion estimator can be scored on real
anatomy, real contrast and real noise. Volume ``t`` of the series is the volume sampled
at ``M_t^-1 p`` for every voxel centre ``p`` (``M_t`` = :func:`neurofuse.transforms.rigid_matrix`
of the true parameters: reference position -> position in volume ``t``, the convention of
:mod:`neurofuse.fmri.motion`), interpolated with a cubic B-spline (the estimators under
test use trilinear or their own interpolators, not this one), plus independent Gaussian
noise per volume so that consecutive volumes do not share their noise.

:func:`motion_errors` scores estimated matrices the way the issue states its figures:
median absolute error of the translations (mm) and rotations (degrees) relative to the
reference volume, RMS errors, and the correlation and mean absolute error of framewise
displacement (Power, 50 mm).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from neurofuse.transforms import framewise_displacement, rigid_matrix, rigid_params


def move_volume(
    volume: np.ndarray,
    affine: np.ndarray,
    params: np.ndarray,
    *,
    noise_sd: float = 0.0,
    seed: int = 0,
    order: int = 3,
    crop: tuple[int, int, int] = (0, 0, 0),
) -> tuple[np.ndarray, np.ndarray]:
    """4D float32 series of ``volume`` moved by ``params`` ``(T, 6)`` (mm, radians).

    ``affine`` is the volume's voxel-to-world (RAS mm) affine; rotations are about the
    world origin, as in :func:`neurofuse.transforms.rigid_matrix`. ``crop`` voxels are
    left out on both sides of each axis of the *output* grid, as a scanner's fixed slab:
    anatomy moving in through a cropped edge is real anatomy (taken from the margin),
    not zeros. Samples outside the source volume are 0.

    Returns ``(series, output_affine)``.
    """
    vol = np.asarray(volume, dtype=np.float64)
    if vol.ndim != 3:
        raise ValueError(f"volume must be 3D, got shape {vol.shape}")
    params = np.atleast_2d(np.asarray(params, dtype=float))
    coeffs = ndimage.spline_filter(vol, order=order) if order > 1 else vol
    crop_arr = np.asarray(crop, dtype=int)
    shape = tuple(int(n) for n in np.asarray(vol.shape) - 2 * crop_arr)
    if min(shape) < 1:
        raise ValueError(f"crop {tuple(crop)} leaves nothing of a {vol.shape} volume")
    out_affine = np.array(affine, dtype=float)
    out_affine[:3, 3] = affine[:3, :3] @ crop_arr + affine[:3, 3]
    ijk = np.indices(shape, dtype=float).reshape(3, -1)
    world = out_affine[:3, :3] @ ijk + out_affine[:3, 3:4]
    inv_aff = np.linalg.inv(affine)
    rng = np.random.default_rng(seed)
    out = np.empty(shape + (len(params),), dtype=np.float32)
    for t, p in enumerate(params):
        back = inv_aff @ np.linalg.inv(rigid_matrix(p))
        src = back[:3, :3] @ world + back[:3, 3:4]
        moved = ndimage.map_coordinates(coeffs, src, order=order, prefilter=False, cval=0.0)
        if noise_sd > 0:
            moved = moved + rng.normal(scale=noise_sd, size=moved.shape)
        out[..., t] = moved.reshape(shape)
    return out, out_affine


def motion_errors(true_params: np.ndarray, matrices: np.ndarray, reference: int = 0) -> dict[str, float]:
    """Errors of estimated rigid ``matrices`` ``(T, 4, 4)`` against the true parameters.

    Both are taken relative to volume ``reference`` (estimators pick their own reference
    pose). Returns median/RMS/max absolute errors in mm and degrees and the correlation
    (``fd_r``) and mean absolute error (``fd_mae_mm``) of framewise displacement.
    """
    t = rigid_matrix(np.asarray(true_params, dtype=float))
    t_rel = np.linalg.inv(t[reference]) @ t
    m = np.asarray(matrices, dtype=float)
    e_rel = np.linalg.inv(m[reference]) @ m
    err = rigid_params(np.linalg.inv(t_rel) @ e_rel)
    trans, rot_deg = np.abs(err[:, :3]), np.rad2deg(np.abs(err[:, 3:]))
    fd_t = framewise_displacement(rigid_params(t_rel))[1:]
    fd_e = framewise_displacement(rigid_params(e_rel))[1:]
    return {
        "median_mm": float(np.median(trans)),
        "median_deg": float(np.median(rot_deg)),
        "rms_mm": float(np.sqrt(np.mean(trans**2))),
        "rms_deg": float(np.sqrt(np.mean(rot_deg**2))),
        "max_mm": float(trans.max()),
        "fd_r": float(np.corrcoef(fd_t, fd_e)[0, 1]),
        "fd_mae_mm": float(np.mean(np.abs(fd_t - fd_e))),
    }
