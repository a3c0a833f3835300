"""The BOLD series checked once, before any fMRI step works on it.

The first fMRI rule (head motion, every backend) calls :func:`check_bold_series`, so an
odd run stops there with a message that names the file, what is wrong and what to do,
instead of failing later inside a registration or writing a silently wrong output:

* not 4D, or fewer volumes than ``fmri.min_volumes`` (a single volume has no motion to
  correct and no time series for slice timing or DVARS);
* *empty* volumes (every voxel zero or NaN: a dropped or failed reconstruction) — motion
  cannot be estimated for them and they would be resampled as real data;
* NaN / infinite voxels in otherwise normal volumes are a warning: every step reads the
  series through :func:`finite_series`, which sets them to 0 (outside the head is 0 as
  well), so one bad voxel does not spread over a whole time series through the FFT of
  slice timing or the spline of the resampling.
"""

from __future__ import annotations

import logging
import os

import nibabel as nib
import numpy as np

from neurofuse.errors import NeuroFuseError

log = logging.getLogger(__name__)

#: Default ``fmri.min_volumes``.
MIN_VOLUMES = 10


def finite_series(data: np.ndarray) -> np.ndarray:
    """``data`` as float32 with NaN and +-inf set to 0 (in place when already float32)."""
    arr = np.asarray(data, dtype=np.float32)
    return np.nan_to_num(arr, copy=False, nan=0.0, posinf=0.0, neginf=0.0)


def _volumes(indices: np.ndarray) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:10])
    return shown + (f" and {len(indices) - 10} more" if len(indices) > 10 else "")


def check_bold_series(bold_file: str | os.PathLike, *, min_volumes: int = MIN_VOLUMES) -> dict:
    """Check a BOLD NIfTI (see the module docstring); return ``n_volumes`` and ``nonfinite_voxels``.

    Raises
    ------
    NeuroFuseError
        3D image, fewer than ``min_volumes`` volumes, or empty volumes.
    """
    img = nib.load(os.fspath(bold_file))
    if img.ndim != 4:
        raise NeuroFuseError(
            f"a BOLD run must be 4D (x, y, z, time); this image is {img.ndim}D with shape "
            f"{'x'.join(map(str, img.shape))}", path=bold_file,
            hint="if it is one volume of a run, store the whole run as one 4D file; if it is a "
                 "reference or single-band image, name it _sbref and keep it out of the BOLD runs",
        )
    n = int(img.shape[3])
    if n < int(min_volumes):
        raise NeuroFuseError(
            f"the run has {n} volume{'s' if n != 1 else ''}, fewer than fmri.min_volumes = {min_volumes}: "
            "too short for head-motion correction, slice timing and DVARS to mean anything", path=bold_file,
            hint="leave the run out (e.g. list it in .bidsignore), or lower fmri.min_volumes in the config "
                 "if a run this short is intended",
        )
    data = np.asarray(img.dataobj, dtype=np.float32)
    bad = ~np.isfinite(data)
    empty = np.flatnonzero(np.all((data == 0) | bad, axis=(0, 1, 2)))
    if empty.size:
        raise NeuroFuseError(
            f"volume{'s' if empty.size > 1 else ''} {_volumes(empty)} (0-based) of {n} "
            f"{'are' if empty.size > 1 else 'is'} empty (every voxel 0 or NaN): a dropped or failed "
            "reconstruction", path=bold_file,
            hint="remove these volumes from the run (and the matching events and EEG volume markers), "
                 "or leave the run out",
        )
    n_bad = int(bad.sum())
    if n_bad:
        vols = np.flatnonzero(bad.any(axis=(0, 1, 2)))
        log.warning("%s: %d NaN or infinite voxel values in volume(s) %s; every fMRI step sets them to 0",
                    os.fspath(bold_file), n_bad, _volumes(vols))
    return {"n_volumes": n, "nonfinite_voxels": n_bad}
