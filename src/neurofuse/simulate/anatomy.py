"""Subject anatomy: the MNI152 template moved into a subject's scanner space.

Coordinate frames
-----------------
*subject space* is the scanner world frame of the subject's images (RAS+, mm, the NIfTI
affines of the T1w and of the BOLD reference volume). *MNI space* is the world frame
of nilearn's MNI152 template (RAS+, mm).

The true mapping of a subject point ``p`` to MNI space is

    r = A p                    (A: 4x4 affine, few degrees, few mm, ~2 % scaling)
    q = r + u(r)               (u: smooth displacement, a sum of Gaussian bumps, mm)

so the affine part is applied first and the nonlinear displacement is evaluated at the
affine-mapped point. The inverse (MNI -> subject) is ``p = A^-1 (q + v(q))`` where
``v(q) = r - q`` solves ``r + u(r) = q`` (fixed-point iteration; ``u`` is a
contraction because its Jacobian is small).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import ndimage

from neurofuse.transforms import apply_affine, rigid_matrix

#: Space label used for MNI-space files (the project's data contract; the image itself is
#: nilearn's bundled ICBM 2009a nonlinear symmetric MNI152 template).
MNI_SPACE = "MNI152NLin2009cAsym"

_CHUNK = 1_000_000


@dataclass(frozen=True)
class Volume:
    """A 3-D image: array plus its voxel -> world affine."""

    data: np.ndarray
    affine: np.ndarray

    def world_to_voxel(self, points: np.ndarray) -> np.ndarray:
        """Voxel coordinates ``(3, N)`` (for ``map_coordinates``) of world points ``(N, 3)``."""
        pts = np.asarray(points, dtype=float)
        linear = self.affine[:3, :3]
        if np.count_nonzero(linear - np.diag(np.diag(linear))) == 0:  # axis-aligned grid: scale + shift
            return ((pts - self.affine[:3, 3]) / np.diag(linear)).T
        inv = np.linalg.inv(self.affine)
        return np.einsum("ij,nj->in", inv[:3, :3], pts) + inv[:3, 3:4]


@lru_cache(maxsize=1)
def mni_templates() -> dict[str, Volume]:
    """nilearn's bundled MNI152 templates on their 1 mm grid (no download).

    Keys ``t1`` (0..1 T1 intensity), ``gm`` and ``wm`` (probabilities 0..1) and ``mask``
    (brain mask 0/1), all float32 with the same affine.
    """
    from nilearn import datasets

    loaders = {
        "t1": datasets.load_mni152_template,
        "gm": datasets.load_mni152_gm_template,
        "wm": datasets.load_mni152_wm_template,
        "mask": datasets.load_mni152_brain_mask,
    }
    out = {}
    for key, load in loaders.items():
        img = load(resolution=1)
        out[key] = Volume(np.asarray(img.get_fdata(dtype=np.float32)), np.asarray(img.affine, float))
    return out


@lru_cache(maxsize=1)
def mni_2mm() -> dict[str, Volume]:
    """The templates on nilearn's 2 mm MNI grid (every second 1 mm voxel, 99x117x95).

    Each 1 mm map is averaged with the separable weights (1/4, 1/2, 1/4) around every
    second voxel (a local average centred on the 2 mm voxel); ``mask`` is thresholded back
    to 0/1 at 0.5.
    """
    out = {}
    for key, vol in mni_templates().items():
        data = vol.data
        for axis in range(3):
            data = _half_band(data, axis)
        if key == "mask":
            data = (data >= 0.5).astype(np.float32)
        affine = vol.affine @ np.diag([2.0, 2.0, 2.0, 1.0])
        out[key] = Volume(np.ascontiguousarray(data, dtype=np.float32), affine)
    return out


def _half_band(x: np.ndarray, axis: int) -> np.ndarray:
    """``0.5 x[2i] + 0.25 (x[2i-1] + x[2i+1])`` along ``axis`` (zero beyond the edges)."""
    x = np.moveaxis(x, axis, 0)
    pad = np.zeros((1,) + x.shape[1:], dtype=x.dtype)
    xp = np.concatenate([pad, x, pad, pad])
    centre = xp[1:-2:2]
    out = 0.5 * centre + 0.25 * (xp[0:-3:2][: len(centre)] + xp[2:-1:2][: len(centre)])
    return np.moveaxis(out, 0, axis)


def grid_points(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """World coordinates ``(N, 3)`` of all voxels of a grid (C order)."""
    ijk = np.indices(shape[:3], dtype=np.float64).reshape(3, -1).T
    return apply_affine(affine, ijk)


#: Quantum (mm) of the stored displacement fields: int16 with this exact NIfTI slope.
WARP_QUANTUM = 2.0**-10


@dataclass
class HeadModel:
    """The true subject -> MNI mapping and the T1w intensity bias of one subject/session.

    Attributes
    ----------
    affine:
        ``A`` (4x4): subject scanner RAS mm -> MNI RAS mm, applied first.
    warp_centres, warp_sigmas, warp_vectors:
        Parameters of the displacement: ``sum_j warp_vectors[j] * exp(-|r - warp_centres[j]|^2 /
        (2 warp_sigmas[j]^2))`` (MNI mm). It is sampled on the 2 mm MNI grid and rounded to
        :data:`WARP_QUANTUM`; **the true displacement u(r) is the trilinear interpolation
        of that sampled field** (:attr:`warp_field`, the stored forward-warp file), constant
        beyond the grid's edge.
    bias_coefs:
        Coefficients of the log bias field over the monomials of :meth:`bias`.
    """

    affine: np.ndarray
    warp_centres: np.ndarray
    warp_sigmas: np.ndarray
    warp_vectors: np.ndarray
    bias_coefs: np.ndarray
    params: dict = field(default_factory=dict)
    warp_field: np.ndarray = field(init=False, repr=False)
    _box: tuple | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        grid = mni_2mm()["mask"]
        axes = [grid.affine[i, 3] + grid.affine[i, i] * np.arange(n) for i, n in enumerate(grid.data.shape)]
        disp = np.zeros((3,) + grid.data.shape)
        for c, s, a in zip(self.warp_centres, self.warp_sigmas, self.warp_vectors):
            g = [np.exp(-((ax - ci) ** 2) / (2.0 * s * s)) for ax, ci in zip(axes, c)]
            bump = g[0][:, None, None] * g[1][None, :, None] * g[2][None, None, :]
            disp += a[:, None, None, None] * bump
        self.warp_field = (np.rint(disp / WARP_QUANTUM) * WARP_QUANTUM).astype(np.float32)

    # ----------------------------------------------------------------- displacement
    def displacement(self, r: np.ndarray) -> np.ndarray:
        """``u(r)`` (mm) at MNI points ``r`` of shape ``(N, 3)`` (trilinear in :attr:`warp_field`)."""
        ijk = mni_2mm()["mask"].world_to_voxel(np.asarray(r, dtype=float))
        out = np.empty((ijk.shape[1], 3))
        for c in range(3):
            out[:, c] = ndimage.map_coordinates(self.warp_field[c], ijk, order=1, mode="nearest", output=np.float64)
        return out

    def to_mni(self, points: np.ndarray) -> np.ndarray:
        """Map subject points ``(N, 3)`` to MNI: ``q = A p + u(A p)``."""
        out = np.empty((len(points), 3))
        for i in range(0, len(points), _CHUNK):
            r = apply_affine(self.affine, points[i : i + _CHUNK])
            out[i : i + _CHUNK] = r + self.displacement(r)
        return out

    def invert_displacement(self, q: np.ndarray, tol: float = 1e-4, max_iter: int = 50) -> np.ndarray:
        """``r`` with ``r + u(r) = q`` for MNI points ``q`` (fixed-point iteration to ``tol`` mm)."""
        q = np.asarray(q, dtype=float)
        r = q - self.displacement(q)
        todo = np.arange(len(q))
        for _ in range(max_iter):
            r_new = q[todo] - self.displacement(r[todo])
            moved = np.max(np.abs(r_new - r[todo]), axis=1)
            r[todo] = r_new
            todo = todo[moved > tol]
            if todo.size == 0:
                break
        return r

    def from_mni(self, q: np.ndarray) -> np.ndarray:
        """Map MNI points ``(N, 3)`` to subject space: ``p = A^-1 (q + v(q))``."""
        return apply_affine(np.linalg.inv(self.affine), self.invert_displacement(q))

    def brain_box(self) -> tuple[np.ndarray, np.ndarray]:
        """Bounding box (min, max corner, mm) of the template brain mapped into subject space."""
        if self._box is None:
            mask = mni_2mm()["mask"]
            pts = apply_affine(mask.affine, np.argwhere(mask.data > 0.5).astype(float))
            sub = self.from_mni(pts)
            self._box = (sub.min(axis=0), sub.max(axis=0))
        return self._box

    # ----------------------------------------------------------------- bias field
    @staticmethod
    def _monomials(points: np.ndarray) -> np.ndarray:
        x, y, z = (points / np.array([80.0, 100.0, 80.0])).T
        return np.stack([x, y, z, x * x, y * y, z * z, x * y, x * z, y * z])

    def bias(self, points: np.ndarray) -> np.ndarray:
        """Multiplicative T1w bias field at subject points ``(N, 3)``: ``exp(sum c_k m_k(p))``."""
        out = np.empty(len(points))
        for i in range(0, len(points), _CHUNK):
            out[i : i + _CHUNK] = np.exp(self.bias_coefs @ self._monomials(points[i : i + _CHUNK]))
        return out

    def to_json(self) -> dict:
        """JSON-ready description of the mapping (arrays as nested lists)."""
        return {
            "affine_subject_to_mni": self.affine.tolist(),
            "affine_mni_to_subject": np.linalg.inv(self.affine).tolist(),
            "affine_parameters": self.params,
            "warp_definition": (
                "u(r) = trilinear interpolation (constant beyond the edge) of the forward-warp file, which holds "
                "the Gaussian bumps below sampled on the 2 mm MNI grid and rounded to 2^-10 mm"
            ),
            "warp_bumps": [
                {"centre_mm": c.tolist(), "sigma_mm": float(s), "vector_mm": a.tolist()}
                for c, s, a in zip(self.warp_centres, self.warp_sigmas, self.warp_vectors)
            ],
            "bias_log_coefficients": self.bias_coefs.tolist(),
            "bias_monomials": "x, y, z, x^2, y^2, z^2, xy, xz, yz with x = X/80, y = Y/100, z = Z/80 (subject mm)",
        }


def random_head(rng: np.random.Generator) -> HeadModel:
    """A random subject: affine (±4°, ±5 mm, 1±2.5 % scaling), 8 warp bumps, bias field."""
    angles = rng.uniform(-4.0, 4.0, 3) * np.pi / 180.0
    trans = rng.uniform(-5.0, 5.0, 3)
    scales = 1.0 + rng.uniform(-0.025, 0.025, 3)
    affine = rigid_matrix(np.r_[trans, angles]) @ np.diag(np.r_[scales, 1.0])

    mask = mni_2mm()["mask"]
    inside = np.argwhere(mask.data > 0.5)
    n_bumps = 8
    picks = inside[rng.choice(len(inside), n_bumps, replace=False)]
    centres = apply_affine(mask.affine, picks.astype(float))
    sigmas = rng.uniform(18.0, 30.0, n_bumps)
    directions = rng.standard_normal((n_bumps, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    vectors = directions * rng.uniform(1.5, 3.5, n_bumps)[:, None]
    bias = np.r_[rng.normal(0.0, 0.06, 3), rng.normal(0.0, 0.04, 6)]
    params = {
        "rotation_rad": angles.tolist(),
        "translation_mm": trans.tolist(),
        "scale": scales.tolist(),
        "composition": "A = T(translation) @ Rx @ Ry @ Rz @ diag(scale) (neurofuse.transforms.rigid_matrix convention)",
    }
    return HeadModel(affine, centres, sigmas, vectors, bias, params)


def subject_brain_box(head: HeadModel) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box (min, max corner, mm) of the template brain mapped into subject space."""
    return head.brain_box()


@lru_cache(maxsize=1)
def mni_brain_box() -> tuple[np.ndarray, np.ndarray]:
    """Bounding box (min, max corner, mm) of the template brain mask in MNI space."""
    mask = mni_2mm()["mask"]
    pts = apply_affine(mask.affine, np.argwhere(mask.data > 0.5).astype(float))
    return pts.min(axis=0), pts.max(axis=0)


def centred_grid(centre: np.ndarray, shape: tuple[int, int, int], voxel: float) -> np.ndarray:
    """RAS+ axis-aligned affine of a grid of ``shape`` voxels of ``voxel`` mm centred on ``centre``."""
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = np.asarray(centre, float) - voxel * (np.asarray(shape, float) - 1.0) / 2.0
    return affine


def grid_shape(extent: np.ndarray, voxel: float, margin: float) -> tuple[int, int, int]:
    """Voxels per axis (even numbers) covering ``extent`` mm plus ``margin`` mm on each side."""
    n = np.ceil((np.asarray(extent, float) + 2.0 * margin) / voxel / 2.0) * 2
    return tuple(int(v) for v in n)


def synthesize_t1w(
    head: HeadModel, voxel: float, rng: np.random.Generator, margin: float = 15.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The subject's T1w: template intensity at ``to_mni(p)`` times the bias, plus noise.

    Returns
    -------
    (data, affine, bias)
        ``data`` int16 (template 0..1 scaled to 0..1000, Rician noise SD 8), its RAS+
        affine (``voxel`` mm, centred on the subject's brain) and the true bias field
        (float32, same grid).
    """
    lo, hi = mni_brain_box()
    shape = grid_shape(hi - lo, voxel, margin)
    sub_lo, sub_hi = subject_brain_box(head)
    affine = centred_grid((sub_lo + sub_hi) / 2.0, shape, voxel)

    t1 = mni_templates()["t1"]
    source = t1.data
    if voxel > 1.0:  # partial-volume averaging of the 1 mm template to the coarser voxel
        source = ndimage.gaussian_filter(source, np.sqrt(voxel**2 - 1.0) / 2.3548, mode="constant")
    inv = np.linalg.inv(t1.affine)
    points = grid_points(shape, affine)
    values = np.empty(len(points), dtype=np.float32)
    bias = np.empty(len(points), dtype=np.float32)
    for i in range(0, len(points), _CHUNK):
        p = points[i : i + _CHUNK]
        q = head.to_mni(p)
        values[i : i + _CHUNK] = ndimage.map_coordinates(source, apply_affine(inv, q).T, order=1, cval=0.0)
        bias[i : i + _CHUNK] = head.bias(p)
    signal = 1000.0 * values.astype(np.float64) * bias
    sigma = 8.0
    noisy = np.hypot(signal + sigma * rng.standard_normal(signal.size), sigma * rng.standard_normal(signal.size))
    data = np.clip(np.rint(noisy), 0, 32767).astype(np.int16).reshape(shape)
    return data, affine, bias.reshape(shape)


def warp_fields(head: HeadModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The true displacement fields on the 2 mm MNI grid.

    Returns
    -------
    (forward, inverse, affine)
        ``forward[i, j, k] = u(q_ijk)`` (exactly :attr:`HeadModel.warp_field`) and
        ``inverse[i, j, k] = v(q_ijk)`` (rounded to :data:`WARP_QUANTUM`), mm, RAS, shape
        ``(99, 117, 95, 3)``, float32, at the grid points ``q_ijk`` of ``affine``.
    """
    grid = mni_2mm()["mask"]
    shape = grid.data.shape
    q = grid_points(shape, grid.affine)
    forward = np.moveaxis(head.warp_field, 0, -1)
    inverse = head.invert_displacement(q) - q
    inverse = (np.rint(inverse / WARP_QUANTUM) * WARP_QUANTUM).astype(np.float32).reshape(shape + (3,))
    return forward, inverse, grid.affine
