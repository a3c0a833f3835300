"""A small analytic head phantom for the fMRI unit tests (no files, no interpolation crime).

The phantom is a sum of smooth-edged ellipsoids in world coordinates (mm), so a moved
volume is computed *exactly* by evaluating the function at ``M_t^-1 p`` for every voxel
centre ``p`` — the estimator under test never sees data produced by its own interpolator.
"""

from __future__ import annotations

import numpy as np

from neurofuse.transforms import rigid_matrix

# (centre mm, semi-axes mm, intensity): head, "ventricles", grey/white blobs
_BLOBS = [
    ((0.0, -18.0, 10.0), (62.0, 74.0, 58.0), 600.0),
    ((0.0, -18.0, 10.0), (55.0, 67.0, 51.0), 250.0),
    ((-9.0, -10.0, 16.0), (6.0, 18.0, 10.0), 500.0),
    ((9.0, -10.0, 16.0), (6.0, 18.0, 10.0), 500.0),
    ((-30.0, -50.0, 20.0), (12.0, 10.0, 14.0), -200.0),
    ((28.0, 20.0, -5.0), (10.0, 15.0, 8.0), 300.0),
    ((0.0, 40.0, 30.0), (20.0, 8.0, 10.0), -150.0),
    ((-20.0, 10.0, -20.0), (9.0, 9.0, 9.0), 250.0),
    ((35.0, -40.0, 35.0), (8.0, 12.0, 9.0), 200.0),
    ((0.0, -70.0, 0.0), (15.0, 6.0, 12.0), 350.0),
]


def phantom(points: np.ndarray, edge: float = 3.0) -> np.ndarray:
    """Phantom intensity at world points ``(..., 3)`` (mm); ``edge`` = edge width in mm."""
    pts = np.asarray(points, dtype=float)
    out = np.zeros(pts.shape[:-1])
    for centre, axes, value in _BLOBS:
        d = np.sqrt(np.sum(((pts - np.asarray(centre)) / np.asarray(axes)) ** 2, axis=-1))
        scale = float(np.mean(axes))
        out += value / (1.0 + np.exp(np.clip((d - 1.0) * scale / edge * 4.0, -50, 50)))
    return out


def grid_affine(shape: tuple[int, int, int], voxel: tuple[float, float, float]) -> np.ndarray:
    """RAS affine of a grid centred on the phantom (0, -18, 10)."""
    aff = np.diag(list(voxel) + [1.0])
    aff[:3, 3] = np.array([0.0, -18.0, 10.0]) - (np.array(shape) - 1) / 2.0 * np.array(voxel)
    return aff


def random_motion(n: int, rng: np.random.Generator, trans_mm: float = 0.3, rot_rad: float = 0.004) -> np.ndarray:
    """Random-walk motion parameters ``(n, 6)`` with volume 0 at zero and one larger jump."""
    steps = rng.normal(size=(n, 6)) * np.r_[[trans_mm] * 3, [rot_rad] * 3]
    steps[0] = 0.0
    if n > 4:
        steps[n // 2] *= 6.0
    return np.cumsum(steps, axis=0)


def moving_series(
    params: np.ndarray,
    shape: tuple[int, int, int] = (40, 44, 32),
    voxel: tuple[float, float, float] = (4.0, 4.0, 4.5),
    noise: float = 5.0,
    seed: int = 0,
    edge: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """4D series of the phantom moved by ``params`` (transforms convention) plus Gaussian noise.

    Returns ``(data (x, y, z, t) float32, affine)``.
    """
    rng = np.random.default_rng(seed)
    aff = grid_affine(shape, voxel)
    ijk = np.indices(shape, dtype=float).reshape(3, -1)
    world = (aff[:3, :3] @ ijk + aff[:3, 3:4]).T
    data = np.empty(shape + (len(params),), dtype=np.float32)
    for t, p in enumerate(params):
        inv = np.linalg.inv(rigid_matrix(p))
        head = world @ inv[:3, :3].T + inv[:3, 3]
        data[..., t] = phantom(head, edge).reshape(shape) + noise * rng.normal(size=shape)
    return data, aff
