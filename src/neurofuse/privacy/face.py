"""Does an anatomical image show a face? A report-only heuristic, no registration.

A structural MRI that covers the front of the head can be rendered into a
recognisable face (Schwarz et al., 2019, NEJM 381:1684), so a T1w (or T2w, FLAIR, PDw)
with a face must be defaced before it leaves the lab. Defacing itself needs a
validated tool (pydeface, mri_deface, FreeSurfer's mri_deface, AFNI's refacer): this
module only *flags* images that still have one.

How
---
1. The image is put in RAS orientation (``nibabel.as_closest_canonical``) and
   subsampled to about 3 mm voxels.
2. The head is the largest connected component above an Otsu threshold (holes filled).
   A head of less than :data:`MIN_HEAD_LITRES` is brain-only (skull-stripped) or a
   partial slab: no face. Foreground over more than :data:`MAX_HEAD_FRACTION` of the
   field of view is not a head in air (a bias field, a parameter map): no face.
3. The face box is placed by anatomy measured on the image itself, so neither a
   template nor a registration is needed: the vertex (top of the head) and the
   forehead (most anterior head voxel 50–100 mm below the vertex, within 30 mm of the
   midline). In adults the eyes, nose and upper lip lie 110–170 mm below the vertex and
   within a few centimetres of the forehead's coronal plane, so the box spans
   z = vertex − 170 … vertex − 110 mm, y = forehead − 35 … forehead + 40 mm,
   |x − midline| ≤ 35 mm.
4. The image shows a face when at least :data:`MIN_FACE_OCCUPANCY` of that box is
   head tissue. A defaced image has air (zeros) there; a skull-stripped brain ends
   well above it.

Validated on a synthetic whole-head phantom (face present; the same head cut by a
defacing plane; both in RAS and LPS voxel order), nilearn's MNI152 template and the
simulator's T1w (both brain-only): ``tests/unit/test_privacy_face.py``. No whole-head
T1w with a real face ships with any installed package, so the thresholds have not been
checked on real faces here; treat a negative as "probably defaced", not as proof.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

MIN_HEAD_LITRES = 2.5
MIN_FACE_OCCUPANCY = 0.25
MAX_HEAD_FRACTION = 0.85
TARGET_VOXEL_MM = 3.0
#: File suffixes of anatomical images that may show a face.
FACE_SUFFIXES = ("T1w", "T2w", "FLAIR", "PDw", "T2starw", "inplaneT1", "inplaneT2", "PDT2", "UNIT1", "MP2RAGE",
                 "angio")


@dataclass(frozen=True)
class FaceCheck:
    face: bool
    head_litres: float
    occupancy: float  # fraction of the face box that is head tissue (0 when not computed)
    reason: str


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold (maximum between-class variance) of ``values``."""
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight0 = np.cumsum(hist)
    weight1 = weight0[-1] - weight0
    mean0 = np.cumsum(hist * centres) / np.maximum(weight0, 1)
    total = np.sum(hist * centres)
    mean1 = (total - np.cumsum(hist * centres)) / np.maximum(weight1, 1)
    between = weight0 * weight1 * (mean0 - mean1) ** 2
    return float(centres[int(np.argmax(between[:-1]))])


def _head_mask(data: np.ndarray) -> np.ndarray:
    finite = data[np.isfinite(data)]
    if finite.size == 0 or finite.max() <= finite.min():
        return np.zeros(data.shape, bool)
    high = np.percentile(finite, 99.5)
    clipped = np.clip(finite, None, high)  # a few bright vessels must not set the scale
    threshold = otsu_threshold(clipped)
    mask = np.nan_to_num(data) > threshold * 0.5  # half Otsu keeps darker skin and muscle
    mask = ndimage.binary_opening(mask, iterations=1)
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    head = labels == int(np.argmax(sizes))
    return ndimage.binary_fill_holes(head)


def check_face(path: str | Path) -> FaceCheck:
    """Report whether the image at ``path`` shows a face (see the module docstring)."""
    img = nib.as_closest_canonical(nib.load(str(path)))
    zooms = np.asarray(img.header.get_zooms()[:3], float)
    step = np.maximum(1, np.round(TARGET_VOXEL_MM / zooms)).astype(int)
    data = np.asanyarray(img.dataobj)
    if data.ndim > 3:
        data = data.reshape(data.shape[:3] + (-1,))[..., 0]
    data = np.asarray(data[:: step[0], :: step[1], :: step[2]], dtype=np.float32)
    voxel = zooms * step
    head = _head_mask(data)
    litres = float(head.sum() * np.prod(voxel) / 1e6)
    if head.mean() > MAX_HEAD_FRACTION:
        return FaceCheck(False, litres, 0.0, f"{head.mean():.0%} of the field of view is foreground: not a head image")
    if litres < MIN_HEAD_LITRES:
        return FaceCheck(False, litres, 0.0, f"head of {litres:.1f} L: brain only or a partial slab")

    affine = img.affine.copy()
    affine[:3, :3] = affine[:3, :3] @ np.diag(step)
    ii, jj, kk = np.nonzero(head)
    xyz = nib.affines.apply_affine(affine, np.column_stack([ii, jj, kk]))
    x, y, z = xyz.T
    top = z.max()
    midline = float(np.median(x))
    brow = (z > top - 100) & (z < top - 50) & (np.abs(x - midline) <= 30)
    if not brow.any():
        return FaceCheck(False, litres, 0.0, "no forehead found 50-100 mm below the top of the head")
    forehead = float(y[brow].max())

    # Face box on the image grid: every voxel centre, head or not.
    grid = np.indices(head.shape).reshape(3, -1).T
    gx, gy, gz = nib.affines.apply_affine(affine, grid).T
    box = ((gz >= top - 170) & (gz <= top - 110) & (gy >= forehead - 35) & (gy <= forehead + 40)
           & (np.abs(gx - midline) <= 35))
    if box.sum() < 10:
        return FaceCheck(False, litres, 0.0, "the field of view ends above the face")
    occupancy = float(head.reshape(-1)[box].mean())
    face = occupancy >= MIN_FACE_OCCUPANCY
    what = "tissue" if face else "mostly air"
    return FaceCheck(face, litres, occupancy,
                     f"face region {occupancy:.0%} {what} (head {litres:.1f} L)")
