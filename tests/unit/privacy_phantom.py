"""A synthetic whole-head T1w phantom with a face, and the same head defaced.

The brain is nilearn's MNI152 template (resampled to 2 mm); around it: skull (dark), scalp (bright),
eyes, a nose, cheeks/maxilla/jaw and a neck, placed at typical adult positions in MNI
millimetres. ``deface`` zeroes everything in front of an oblique plane below the
forehead, as pydeface-style tools do. Used to test :mod:`neurofuse.privacy.face`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np


#: nilearn's bundled MNI152 T1 template (brain only), found without importing nilearn (slow).
MNI152_T1 = (Path(importlib.util.find_spec("nilearn").submodule_search_locations[0])
             / "datasets" / "data" / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")


def _ellipsoid(x, y, z, centre, axes):
    return ((x - centre[0]) / axes[0]) ** 2 + ((y - centre[1]) / axes[1]) ** 2 + ((z - centre[2]) / axes[2]) ** 2 <= 1


def head_phantom(*, face: bool = True, seed: int = 0) -> nib.Nifti1Image:
    from scipy import ndimage

    voxel = 2.0
    lo = np.array([-96.0, -132.0, -150.0])
    shape = (97, 127, 136)
    affine = np.diag([voxel, voxel, voxel, 1.0])
    affine[:3, 3] = lo
    x, y, z = np.ogrid[: shape[0], : shape[1], : shape[2]]
    x, y, z = lo[0] + voxel * x, lo[1] + voxel * y, lo[2] + voxel * z

    data = np.zeros(shape, np.float32)
    outer = _ellipsoid(x, y, z, (0, -17, 10), (80, 100, 95))
    inner = _ellipsoid(x, y, z, (0, -17, 10), (70, 90, 85))
    data[outer] = 750.0  # scalp fat
    data[_ellipsoid(x, y, z, (0, -17, 10), (74, 94, 89))] = 120.0  # bone
    data[inner] = 250.0  # CSF / meninges
    neck = ((x / 55) ** 2 + ((y + 20) / 55) ** 2 <= 1) & (z < -40)
    data[neck & ~outer] = 500.0
    if face:
        jaw = _ellipsoid(x, y, z, (0, 50, -60), (60, 38, 42))
        data[jaw & ~inner] = 520.0
        # Nose: 30 mm wide, from the nasion (y 80, z 0) to the tip (y 105, z -30).
        nose = (np.abs(x) <= 15) & (y >= 80) & (z <= 0) & (z >= -45) & (y <= 85 + np.clip(-z, 0, 25))
        data[nose] = 560.0
        for side in (-32, 32):
            data[_ellipsoid(x, y, z, (side, 62, -12), (17, 17, 16)) & ~inner] = 800.0  # orbital fat
            data[_ellipsoid(x, y, z, (side, 64, -12), (12, 12, 12))] = 180.0  # vitreous
    # The template brain, resampled onto the phantom grid by its own affine.
    template = nib.load(MNI152_T1)
    brain = np.asarray(template.dataobj, np.float32)
    to_template = np.linalg.inv(template.affine) @ affine
    values = ndimage.affine_transform(brain, to_template[:3, :3], to_template[:3, 3], output_shape=shape, order=0)
    in_brain = values > 0.05 * brain.max()
    data[in_brain] = 300.0 + 600.0 * values[in_brain] / brain.max()
    rng = np.random.default_rng(seed)
    data = np.abs(data + rng.normal(0, 15, shape) + 1j * rng.normal(0, 15, shape))  # Rician background
    return nib.Nifti1Image(data.astype(np.int16), affine)


def deface(img: nib.Nifti1Image) -> nib.Nifti1Image:
    """Zero every voxel in front of the plane y = 78 + 0.8 z below z = 10 mm."""
    data = np.asarray(img.dataobj).copy()
    ijk = np.indices(data.shape).reshape(3, -1).T
    _, y, z = nib.affines.apply_affine(img.affine, ijk).T
    cut = (z < 10) & (y > 78 + 0.8 * z)
    data.reshape(-1)[cut] = 0
    return nib.Nifti1Image(data, img.affine, img.header)


def to_lps(img: nib.Nifti1Image) -> nib.Nifti1Image:
    """The same image stored in LPS voxel order (flipped axes, matching affine)."""
    ornt = nib.orientations.axcodes2ornt(("L", "P", "S"))
    transform = nib.orientations.ornt_transform(nib.orientations.io_orientation(img.affine), ornt)
    return img.as_reoriented(transform)


def save(img: nib.Nifti1Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path
