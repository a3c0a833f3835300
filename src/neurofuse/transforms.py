"""Rigid head-motion transforms: THE convention of NeuroFuse.

Every head-motion figure NeuroFuse writes or reads (the simulator's truth, the fMRI
stage's estimates, the confounds TSV) uses the six parameters

    ``(trans_x, trans_y, trans_z, rot_x, rot_y, rot_z)``

in fMRIPrep units: translations in **millimetres**, rotations in **radians**.

Frame
    Scanner world coordinates of the BOLD image (RAS+, mm, as given by the NIfTI
    affine). Rotations are about the world **origin** ``(0, 0, 0)``, not about the
    centre of the image or of the brain; positive angles turn counter-clockwise when
    looking from the positive end of the axis towards the origin (right-hand rule).

Composition order
    ``M = T @ Rx @ Ry @ Rz`` (the order of SPM's ``spm_matrix``): a point is first
    rotated about z, then about y, then about x, then translated::

        x' = Rx(rot_x) Ry(rot_y) Rz(rot_z) x + (trans_x, trans_y, trans_z)

Direction
    For a BOLD run, ``M_t = rigid_matrix(params[t])`` maps a point of the head **as it
    lies in the reference volume** (volume 0 for the simulator's truth) to the position
    of that same point of the head **in volume t** (scanner world coordinates). Hence
    the motion-corrected value of volume ``t`` at reference position ``x`` is
    ``I_t(M_t x)``, and the reference volume has ``M = I`` (all six parameters zero).

Framewise displacement follows Power et al. (2012): the sum of the absolute backward
differences of the six parameters, rotations turned into arc length on a sphere of
50 mm radius; the first volume's value is 0.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["PARAM_NAMES", "rigid_matrix", "rigid_params", "framewise_displacement", "apply_affine"]

#: Column names of the six motion parameters, in order.
PARAM_NAMES: tuple[str, ...] = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")


def rigid_matrix(params: ArrayLike) -> np.ndarray:
    """4x4 rigid matrix ``T @ Rx @ Ry @ Rz`` from ``(trans_x, trans_y, trans_z, rot_x, rot_y, rot_z)``.

    Parameters
    ----------
    params:
        Shape ``(6,)`` or ``(..., 6)``; translations in mm, rotations in radians.

    Returns
    -------
    numpy.ndarray
        Shape ``(4, 4)`` (or ``(..., 4, 4)`` for stacked parameters), float64.
    """
    p = np.asarray(params, dtype=float)
    if p.shape[-1] != 6:
        raise ValueError(f"motion parameters must have 6 values in the last axis, got shape {p.shape}")
    cx, cy, cz = np.cos(p[..., 3]), np.cos(p[..., 4]), np.cos(p[..., 5])
    sx, sy, sz = np.sin(p[..., 3]), np.sin(p[..., 4]), np.sin(p[..., 5])
    m = np.zeros(p.shape[:-1] + (4, 4))
    # Rx @ Ry @ Rz written out
    m[..., 0, 0] = cy * cz
    m[..., 0, 1] = -cy * sz
    m[..., 0, 2] = sy
    m[..., 1, 0] = sx * sy * cz + cx * sz
    m[..., 1, 1] = -sx * sy * sz + cx * cz
    m[..., 1, 2] = -sx * cy
    m[..., 2, 0] = -cx * sy * cz + sx * sz
    m[..., 2, 1] = cx * sy * sz + sx * cz
    m[..., 2, 2] = cx * cy
    m[..., :3, 3] = p[..., :3]
    m[..., 3, 3] = 1.0
    return m


def rigid_params(matrix: ArrayLike) -> np.ndarray:
    """Inverse of :func:`rigid_matrix`: the six parameters of a rigid 4x4 matrix.

    Parameters
    ----------
    matrix:
        Shape ``(4, 4)`` or ``(..., 4, 4)``; its 3x3 part must be a rotation.

    Returns
    -------
    numpy.ndarray
        Shape ``(6,)`` (or ``(..., 6)``): ``trans_x, trans_y, trans_z`` (mm) and
        ``rot_x, rot_y, rot_z`` (radians, ``|rot_y| <= pi/2``; the decomposition is
        unique for ``|rot_y| < pi/2``).
    """
    m = np.asarray(matrix, dtype=float)
    if m.shape[-2:] != (4, 4):
        raise ValueError(f"expected a 4x4 matrix, got shape {m.shape}")
    r = m[..., :3, :3]
    out = np.empty(m.shape[:-2] + (6,))
    out[..., :3] = m[..., :3, 3]
    out[..., 4] = np.arcsin(np.clip(r[..., 0, 2], -1.0, 1.0))
    out[..., 5] = np.arctan2(-r[..., 0, 1], r[..., 0, 0])
    out[..., 3] = np.arctan2(-r[..., 1, 2], r[..., 2, 2])
    return out


def framewise_displacement(params: ArrayLike, radius: float = 50.0) -> np.ndarray:
    """Power (2012) framewise displacement of a motion series, in mm.

    ``FD[t] = sum(|Δtrans[t]|) + radius * sum(|Δrot[t]|)`` with ``Δ`` the backward
    difference (``params[t] - params[t-1]``) and ``FD[0] = 0``.

    Parameters
    ----------
    params:
        Shape ``(n_volumes, 6)`` in the order of :data:`PARAM_NAMES` (mm, radians).
    radius:
        Radius (mm) of the sphere on which rotations become arc lengths.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_volumes,)``.
    """
    p = np.asarray(params, dtype=float)
    if p.ndim != 2 or p.shape[1] != 6:
        raise ValueError(f"motion parameters must have shape (n_volumes, 6), got {p.shape}")
    fd = np.zeros(p.shape[0])
    if p.shape[0] > 1:
        d = np.abs(np.diff(p, axis=0))
        fd[1:] = d[:, :3].sum(axis=1) + radius * d[:, 3:].sum(axis=1)
    return fd


def apply_affine(matrix: ArrayLike, points: ArrayLike) -> np.ndarray:
    """Apply a 4x4 matrix to points of shape ``(..., 3)``; returns the same shape (float64).

    Uses ``einsum`` rather than a BLAS product: as fast for 3-vectors, and independent
    of the BLAS thread count.
    """
    m = np.asarray(matrix, dtype=float)
    pts = np.asarray(points, dtype=float)
    out = np.einsum("ij,...j->...i", m[:3, :3], pts)
    out += m[:3, 3]
    return out
