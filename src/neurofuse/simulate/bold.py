"""BOLD time series: EPI contrast, band-coupled activity, slice timing, head motion, noise.

Model (one run)
---------------
For the EPI voxel at scanner-world point ``p``, volume ``k`` and slice ``z`` acquired at
BOLD time ``t = k * TR + SliceTiming[z]``::

    x      = M_k^-1 p                        (head point in the reference pose; M_k from
                                              neurofuse.transforms, volume 0 = identity)
    q      = to_mni(x)                       (the subject's true T1w -> MNI mapping)
    S(p,t) = D(t) * [ B(q) + sum_b c_b * r_b(t) * (B w_b)(q) ]
    value  = | S + sigma * (n1 + i n2) |     (Rician magnitude of complex Gaussian noise)

``B`` is the EPI baseline built from the MNI grey/white-matter/brain masks (CSF 1000,
GM 750, WM 550, 0 outside the brain), ``w_b`` the binary region mask of band ``b``,
``c_b`` its coupling, ``r_b`` the HRF-convolved driver and ``D(t)`` a slow global
drift (``1 + d1 t/T + d2 (t/T)^2``). ``B`` and ``B w_b`` are smoothed with a Gaussian of
FWHM = one EPI voxel (partial volume) before sampling. Head motion is constant within a
volume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from neurofuse.simulate.anatomy import HeadModel, Volume, centred_grid, grid_points, grid_shape, mni_2mm
from neurofuse.simulate.coupling import sphere_grey_matter
from neurofuse.transforms import apply_affine, rigid_matrix

#: Ground-truth regions: spheres (MNI centre mm, radius mm) intersected with grey matter
#: (GM probability >= 0.5 on the 2 mm grid), with the relative BOLD change per unit of the
#: HRF-convolved z-scored driver.
REGIONS: dict[str, dict] = {
    "alpha": {
        "coupling": -0.03,
        "spheres": [((0.0, -84.0, 8.0), 18.0), ((-38.0, -70.0, 34.0), 14.0), ((38.0, -70.0, 34.0), 14.0)],
        "description": "occipito-parietal cortex: alpha power lowers BOLD (Goldman et al. 2002)",
    },
    "beta": {
        "coupling": 0.025,
        "spheres": [((-38.0, -24.0, 56.0), 16.0), ((38.0, -24.0, 56.0), 16.0)],
        "description": "bilateral sensorimotor cortex: beta power raises BOLD",
    },
}

#: EPI baseline intensity per tissue class.
TISSUE_INTENSITY = {"csf": 1000.0, "gm": 750.0, "wm": 550.0}


def region_masks(layout: dict[str, dict] | None = None) -> dict[str, np.ndarray]:
    """Binary region mask (uint8, 2 mm MNI grid) of each band of ``layout`` (default :data:`REGIONS`)."""
    out = {}
    for band, spec in (REGIONS if layout is None else layout).items():
        inside = np.zeros(mni_2mm()["gm"].data.shape, dtype=bool)
        for centre, radius in spec["spheres"]:
            inside |= sphere_grey_matter(centre, radius)
        out[band] = inside.astype(np.uint8)
    return out


def epi_baseline_mni() -> np.ndarray:
    """Unsmoothed EPI baseline ``B`` on the 2 mm MNI grid (float32)."""
    grid = mni_2mm()
    gm, wm, mask = grid["gm"].data, grid["wm"].data, grid["mask"].data
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    b = TISSUE_INTENSITY["csf"] * csf + TISSUE_INTENSITY["gm"] * gm + TISSUE_INTENSITY["wm"] * wm
    return (b * (mask > 0.5)).astype(np.float32)


def epi_source_maps(voxel: float, masks: dict[str, np.ndarray]) -> dict[str, Volume]:
    """``B`` and ``B * w_b`` smoothed to the EPI resolution (FWHM = ``voxel`` mm), 2 mm MNI grid."""
    affine = mni_2mm()["mask"].affine
    sigma = voxel / 2.3548 / 2.0  # in 2 mm voxels
    base = epi_baseline_mni()
    out = {"baseline": Volume(ndimage.gaussian_filter(base, sigma, mode="constant"), affine)}
    for band, m in masks.items():
        out[band] = Volume(ndimage.gaussian_filter(base * m, sigma, mode="constant"), affine)
    return out


def slice_order(n_slices: int) -> np.ndarray:
    """Interleaved acquisition order: slices 0, 2, 4, ... then 1, 3, 5, ... (0 = most inferior)."""
    return np.r_[np.arange(0, n_slices, 2), np.arange(1, n_slices, 2)]


def slice_timing(n_slices: int, tr: float) -> np.ndarray:
    """BIDS ``SliceTiming`` (s) of each spatial slice for :func:`slice_order`, slices filling the TR.

    Values are rounded to 1 ns so that the JSON sidecar holds short, exact numbers; the
    simulation uses these very values.
    """
    times = np.empty(n_slices)
    times[slice_order(n_slices)] = np.round(np.arange(n_slices) * (tr / n_slices), 9)
    return times


@dataclass(frozen=True)
class EpiGrid:
    """The EPI field of view of one subject/session: shape and RAS+ affine (reference pose)."""

    shape: tuple[int, int, int]
    affine: np.ndarray


def epi_shape(mni_extent: np.ndarray, voxel: float, margin: float) -> tuple[int, int, int]:
    """EPI matrix size covering the MNI brain extent with ``margin`` mm each side (even sizes)."""
    return grid_shape(mni_extent, voxel, margin)


def epi_grid(shape: tuple[int, int, int], voxel: float, centre: np.ndarray) -> EpiGrid:
    """An axis-aligned EPI grid (slices along z) centred on ``centre`` (subject mm)."""
    return EpiGrid(tuple(int(s) for s in shape), centred_grid(centre, shape, voxel))


def random_motion(n_volumes: int, n_spikes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """True head motion (n_volumes, 6) in mm/radians, :mod:`neurofuse.transforms` convention.

    Slow drift (smoothed random walk, up to 0.5-1.5 mm and 0.2-0.8 degrees per axis)
    plus ``n_spikes`` sudden movements (0.5-2 mm, 0.2-0.8 degrees) that last one volume
    and leave a residual offset of 20 %. Volume 0 is exactly zero.

    Returns
    -------
    (params, spike_volumes)
    """
    params = np.zeros((n_volumes, 6))
    for j in range(6):
        walk = np.cumsum(ndimage.gaussian_filter1d(rng.standard_normal(n_volumes), 3.0, mode="nearest"))
        walk -= walk[0]
        peak = np.max(np.abs(walk)) or 1.0
        limit = rng.uniform(0.5, 1.5) if j < 3 else np.deg2rad(rng.uniform(0.2, 0.8))
        params[:, j] = walk / peak * limit
    spikes = np.array([], dtype=int)
    if n_spikes > 0 and n_volumes > 6:
        candidates = np.arange(3, n_volumes - 2)
        spikes = np.sort(rng.choice(candidates, size=min(n_spikes, len(candidates)), replace=False))
        for k in spikes:
            jump = np.zeros(6)
            d = rng.standard_normal(3)
            jump[:3] = d / np.linalg.norm(d) * rng.uniform(0.5, 2.0)
            w = rng.standard_normal(3)
            jump[3:] = w / np.linalg.norm(w) * np.deg2rad(rng.uniform(0.2, 0.8))
            params[k] += jump
            params[k + 1 :] += 0.2 * jump
    params[0] = 0.0
    return params, spikes


def synthesize_bold(
    head: HeadModel,
    grid: EpiGrid,
    maps: dict[str, Volume],
    motion: np.ndarray,
    tr: float,
    slice_times: np.ndarray,
    regressor_at: Callable[[str, np.ndarray], np.ndarray],
    drift: tuple[float, float],
    sigma: float,
    rng: np.random.Generator,
    progress: Callable[[], None] | None = None,
    layout: dict[str, dict] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate the 4-D BOLD series (see the module docstring for the model).

    Parameters
    ----------
    regressor_at:
        ``regressor_at(band, times)`` -> HRF-convolved driver of ``band`` at BOLD times.
    drift:
        ``(d1, d2)`` of the global drift ``1 + d1 t/T + d2 (t/T)^2`` (``T`` = run length).
    sigma:
        SD of the real and imaginary thermal noise.
    layout:
        Coupling layout whose ``coupling`` scales each band's map (default :data:`REGIONS`).

    Returns
    -------
    (bold, noiseless_reference)
        ``bold`` int16 ``shape + (n_volumes,)``; ``noiseless_reference`` float32: the
        baseline ``B`` sampled at the reference pose (no activity, drift or noise).
    """
    shape = grid.shape
    n_vol = motion.shape[0]
    points = grid_points(shape, grid.affine)
    bands = [b for b in maps if b != "baseline"]
    layout = REGIONS if layout is None else layout
    inv_src = np.linalg.inv(maps["baseline"].affine)
    mats = rigid_matrix(motion)

    # voxels that can contain brain in any pose: brain support dilated by the largest motion
    ref_q = head.to_mni(points)
    ref_ijk = apply_affine(inv_src, ref_q).T
    ref_base = ndimage.map_coordinates(maps["baseline"].data, ref_ijk, order=1, cval=0.0)
    radius = np.max(np.linalg.norm(points, axis=1))
    max_shift = np.max(np.linalg.norm(motion[:, :3], axis=1) + radius * np.linalg.norm(motion[:, 3:], axis=1))
    support = (ref_base > 1.0).reshape(shape)
    n_dil = int(np.ceil((max_shift + 2.0) / grid.affine[0, 0])) + 1
    support = ndimage.binary_dilation(support, iterations=n_dil).ravel()
    idx = np.flatnonzero(support)
    pts = points[idx]
    z_of = np.unravel_index(idx, shape)[2]

    total = n_vol * tr
    bold = np.zeros((n_vol, int(np.prod(shape))), dtype=np.float32)  # volume-major while simulating
    for k in range(n_vol):
        inv = np.linalg.inv(mats[k])
        q = head.to_mni(apply_affine(inv, pts))
        ijk = apply_affine(inv_src, q).T
        t_slices = k * tr + slice_times  # per spatial slice
        drift_z = 1.0 + drift[0] * t_slices / total + drift[1] * (t_slices / total) ** 2
        value = ndimage.map_coordinates(maps["baseline"].data, ijk, order=1, cval=0.0).astype(np.float64)
        for band in bands:
            gain = layout[band]["coupling"] * regressor_at(band, t_slices)  # per slice
            value += gain[z_of] * ndimage.map_coordinates(maps[band].data, ijk, order=1, cval=0.0)
        bold[k, idx] = value * drift_z[z_of]
        if progress is not None:
            progress()
    # Rician magnitude noise over the whole field of view
    for k in range(n_vol):
        re = bold[k] + sigma * rng.standard_normal(bold.shape[1], dtype=np.float32)
        im = sigma * rng.standard_normal(bold.shape[1], dtype=np.float32)
        bold[k] = np.hypot(re, im)
    out = np.clip(np.rint(bold), 0, 32767).astype(np.int16).T.reshape(shape + (n_vol,))
    return out, ref_base.astype(np.float32).reshape(shape)
