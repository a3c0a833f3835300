"""Registration outputs scored against the simulator's true template -> subject mapping.

The simulator writes, per subject, the true mapping from MNI template space to the
subject's (T1w = BOLD volume 0) world space: ``p = A^-1 (q + v(q))`` with the affine
``affine_mni_to_subject`` and the inverse warp ``v`` on the 2 mm template grid. For a
registration's own template -> subject mapping (e.g. from
:func:`neurofuse.fmri.resample.compose_transforms`) :func:`normalisation_errors` gives,
over the template brain mask: the mean and 95th-percentile distance between the two
mappings (the "mean voxel displacement against the true transform"), and the Dice overlap
in template space of the subject's true brain mask carried by either mapping (the "Dice
of the brain mask in MNI space").
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage


def true_template_points(root: str | Path, anat: dict, template: nib.Nifti1Image) -> np.ndarray:
    """``(3, N)`` true subject positions (mm) of every voxel of ``template`` (2 mm grid)."""
    root = Path(root)
    a_inv = np.array(json.loads((root / anat["files"]["affine_json"]).read_text())["affine_mni_to_subject"])
    warp = nib.load(root / anat["files"]["inverse_warp"])
    if warp.shape[:3] != template.shape or not np.allclose(warp.affine, template.affine):
        raise ValueError("the template must be on the grid of the simulator's inverse warp (2 mm)")
    ijk = np.indices(template.shape).reshape(3, -1)
    q = template.affine[:3, :3] @ ijk + template.affine[:3, 3:4]
    v = np.asarray(warp.dataobj, dtype=np.float64).reshape(-1, 3).T
    return a_inv[:3, :3] @ (q + v) + a_inv[:3, 3:4]


def normalisation_errors(
    points: np.ndarray,
    root: str | Path,
    anat: dict,
    template: nib.Nifti1Image,
    brain: np.ndarray,
    mask_file: str | Path | None = None,
) -> dict[str, float]:
    """Distances (mm) and brain-mask Dice of an estimated mapping against the truth.

    ``points``: ``(3, N)`` or ``(4, N)`` estimated subject positions of the template voxels
    (C order); ``brain``: template brain mask (any shape, N voxels); ``mask_file``: the
    subject's true brain mask (any grid in subject world space), for the Dice.
    """
    truth = true_template_points(root, anat, template)
    inside = np.asarray(brain).reshape(-1) > 0
    dist = np.linalg.norm(np.asarray(points)[:3, inside] - truth[:, inside], axis=0)
    out = {"mean_mm": float(dist.mean()), "p95_mm": float(np.percentile(dist, 95)), "max_mm": float(dist.max())}
    if mask_file is not None:
        m = nib.load(mask_file)
        inv = np.linalg.inv(m.affine)
        vol = np.asarray(m.dataobj, dtype=np.float32)

        def carried(p):
            vox = inv[:3, :3] @ np.asarray(p)[:3] + inv[:3, 3:4]
            return ndimage.map_coordinates(vol, vox, order=1, cval=0.0) >= 0.5

        est, true = carried(points), carried(truth)
        out["dice"] = float(2 * np.sum(est & true) / (est.sum() + true.sum()))
    return out
