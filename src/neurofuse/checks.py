"""Checks of the raw data a step reads, before it computes anything from them.

The dataset index (:mod:`neurofuse.bids.index`) reads headers only, so that indexing a
thousand subjects stays fast. What only the data themselves reveal is checked here, by
the steps that read them anyway: a file changed or damaged after indexing (truncated,
not a NIfTI any more), voxel types that are not real numbers, and NaN or infinite
EEG samples, which would otherwise flow silently into filters and band power. Every
problem is a one-line :class:`~neurofuse.errors.BIDSError` naming the file, what is wrong
and what to do. NaN or infinite *voxels* are a warning, not an error: tools such as SPM
write NaN outside the brain on purpose, and every fMRI and anatomical step reads images
through :func:`neurofuse.fmri.checks.finite_series`, which sets them to 0 (a volume that
is entirely NaN or 0 stops the fMRI steps: :mod:`neurofuse.fmri.checks`).

:func:`check_input_file` is called by :func:`neurofuse.workflow.run_logged` for every
input of a job that lies outside the output folder (the raw dataset);
:func:`check_finite_raw` by :func:`neurofuse.eeg.io.read_raw` for every recording.
"""

from __future__ import annotations

import logging
import os
from os import PathLike

import numpy as np

from neurofuse.errors import BIDSError

log = logging.getLogger(__name__)

__all__ = ["check_input_file", "check_nifti_values", "check_finite_raw", "NIFTI_EXTENSIONS"]

NIFTI_EXTENSIONS = (".nii", ".nii.gz")

#: Voxels read per block when scanning an image for NaN/Inf (bounded memory).
_BLOCK_VOXELS = 16_000_000


def check_input_file(path: str | PathLike) -> None:
    """Check one raw input of a step by its type (NIfTI, BrainVision); other files pass."""
    name = os.fspath(path)
    if name.endswith(NIFTI_EXTENSIONS):
        check_nifti_values(name)
    elif name.lower().endswith(".vhdr"):
        from neurofuse.bids.index import check_brainvision

        check_brainvision(name)


def check_nifti_values(path: str | PathLike) -> None:
    """Header, completeness, voxel type and finite voxel values of a NIfTI image.

    Integer images cannot hold NaN; float images are read in blocks of volumes.
    """
    import nibabel as nib

    from neurofuse.bids.index import check_nifti

    path = os.fspath(path)
    shape, _, _ = check_nifti(path)  # readable, complete, real-valued voxels
    img = nib.load(path)
    slope, inter = img.dataobj.slope, img.dataobj.inter
    scaled = slope is not None and not (slope == 1 and inter == 0)
    if img.get_data_dtype().kind != "f" and not scaled:
        return
    if scaled and not (np.isfinite(slope) and np.isfinite(inter)):
        raise BIDSError(f"the header's scaling (scl_slope={slope}, scl_inter={inter}) is not finite", path,
                        "fix the header's scl_slope/scl_inter (or set them to 1 and 0) and save the image again")
    per_volume = int(np.prod(shape[:3], dtype=np.int64)) or 1
    n_volumes = int(np.prod(shape[3:], dtype=np.int64)) if len(shape) > 3 else 1
    step = max(1, _BLOCK_VOXELS // per_volume)
    bad_total, first = 0, None
    for start in range(0, n_volumes, step):
        if len(shape) > 3:
            block = np.asarray(img.dataobj[..., start:start + step]).reshape(per_volume, -1, order="F")
        else:
            block = np.asarray(img.dataobj).reshape(per_volume, 1, order="F")
        bad = ~np.isfinite(block)
        if bad.any():
            bad_total += int(bad.sum())
            if first is None:
                first = start + int(np.flatnonzero(bad.any(axis=0))[0])
    if bad_total:
        where = f"first in volume {first}" if len(shape) > 3 else "in the volume"
        log.warning("%s: %d voxel value(s) are NaN or infinite (%s; %d voxels in all); every step sets them to 0 "
                    "(expected where a tool marks voxels outside the brain with NaN; otherwise the image may be "
                    "damaged: export it again)", path, bad_total, where, per_volume * n_volumes)


def check_finite_raw(raw, path: str | PathLike) -> None:
    """NaN or infinite samples in a preloaded MNE recording are an error naming channels and time."""
    data = raw._data if getattr(raw, "preload", False) else None
    if data is None:
        return
    bad_channels: list[str] = []
    first_time = None
    for i, row in enumerate(data):
        finite = np.isfinite(row)
        if not finite.all():
            bad_channels.append(raw.ch_names[i])
            t = float(raw.times[int(np.argmin(finite))])
            first_time = t if first_time is None else min(first_time, t)
    if bad_channels:
        shown = ", ".join(bad_channels[:6]) + (f" ... ({len(bad_channels)} channels)" if len(bad_channels) > 6 else "")
        raise BIDSError(
            f"the EEG holds NaN or infinite samples in {shown}, the first at {first_time:.3f} s", path,
            "export the recording again from the amplifier software; if those channels are broken, drop them "
            "from the recording before running")
