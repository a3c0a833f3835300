"""``fmri.backend: native | fsl | afni`` — head motion and slice timing by FSL or AFNI.

The native backend (:mod:`neurofuse.fmri.motion`, :mod:`neurofuse.fmri.slice_timing`)
needs nothing but numpy/scipy. The ``fsl`` and ``afni`` backends run the tools through
their nipype interfaces; the tools themselves are only in the container image, so

* the functions ``*_interface`` only **build** the nipype interface: ``interface.cmdline``
  is the exact command line and needs no binary (the unit tests check these);
* :func:`run_backend_motion` / :func:`run_backend_slice_timing` run it when the tool is on
  ``PATH`` and otherwise raise a :class:`~neurofuse.errors.NeuroFuseError` that names the
  missing tool;
* the readers turn the tools' output files into the NeuroFuse motion convention
  (:mod:`neurofuse.transforms`) and into the motion TSV that
  :func:`neurofuse.fmri.confounds.write_confounds` reads, so the confounds TSV has the
  same columns whatever the backend.

Which backend does what
-----------------------
=========  ==============================================  ============================
backend    head motion                                     slice timing
=========  ==============================================  ============================
native     :func:`~neurofuse.fmri.motion.estimate_motion`  FFT shift (native)
fsl        ``mcflirt -cost normcorr -mats -plots``         native (see below)
afni       ``3dvolreg -1Dfile -1Dmatrix_save -zpad``       ``3dTshift -tpattern @file``
=========  ==============================================  ============================

FSL ``slicetimer`` is not used: fMRIPrep itself corrects slice timing with AFNI
``3dTshift`` whatever tool estimates motion, and the meaning of ``slicetimer --tcustom``
(shift direction relative to its 0.5 "no shift") could not be checked here without FSL.
:func:`slicetimer_interface` builds the command for anyone who wants it.

Two ways to read a tool's motion, and which one to use
------------------------------------------------------
**Exact** (:func:`read_mcflirt_matrices`, :func:`read_afni_matrices`): from the 4x4
matrices the tools save (MCFLIRT ``-mats``, 3dvolreg ``-1Dmatrix_save``), converted to
world (RAS mm) matrices that map the reference to volume ``t`` — the convention of
:mod:`neurofuse.transforms`. :func:`run_backend_motion` writes its TSV from these, because
the motion TSV is also what the one-shot resampling applies.

**fMRIPrep-style** (:func:`read_mcflirt_par`, :func:`read_afni_oned`): from the six numbers
per volume the tools print (``.par``, ``.1D``); good for confounds (framewise
displacement, the 24 regressors), not for resampling:

* MCFLIRT ``.par``: ``rot_x rot_y rot_z`` (rad) then ``trans_x trans_y trans_z`` (mm).
  They describe the transform that moves volume ``t`` onto the reference (the inverse of
  ours), in FSL's scaled-voxel axes (x mirrored for neurologically stored images), with
  rotations about a centre of MCFLIRT's choosing near the middle of the volume — not about
  the scanner origin. fMRIPrep (``NormalizeMotionParams``, i.e. nipype's
  ``normalize_mc_params(..., 'FSL')``) only **reorders** them to translations first; it
  changes neither the rotation centre nor any sign. :func:`read_mcflirt_par` does the
  same, with nipype's function, so its six motion columns are the ones fMRIPrep writes.
  Consequence: a column may have the opposite sign of ours, and translations differ from
  ours by about ``rotation (rad) x distance between MCFLIRT's centre and the scanner
  origin (mm)`` (0.01 rad x 30 mm = 0.3 mm; the scanner origin is normally inside the
  head). Framewise displacement is unaffected by the signs, not by the centre: its
  translation part changes by up to that amount per volume.
* AFNI ``.1D`` (``roll pitch yaw dS dL dP``, degrees and mm): see :func:`read_afni_oned`.
  nipype's mapping (``normalize_mc_params(..., 'AFNI')``: ``trans = (dL, dP, dS)``,
  ``rot = (pitch, yaw, roll)`` in radians) is used for order and units, and the signs
  of ``trans_z`` and ``rot_z`` are then flipped to match our convention to first order
  (derivation in that function's docstring).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import nibabel as nib
import numpy as np

from neurofuse.errors import ConfigError, NeuroFuseError
from neurofuse.io import atomic_path, atomic_write_text, save_nifti
from neurofuse.transforms import rigid_params

if TYPE_CHECKING:  # nipype is imported lazily: it takes a second and is not needed by native
    from nipype.interfaces import afni, fsl

log = logging.getLogger(__name__)

__all__ = [
    "BACKENDS",
    "TOOLS",
    "BackendMotionResult",
    "check_backend",
    "mcflirt_interface",
    "read_afni_matrices",
    "read_afni_oned",
    "read_mcflirt_matrices",
    "read_mcflirt_par",
    "require_tool",
    "run_backend_motion",
    "run_backend_slice_timing",
    "slicetimer_interface",
    "tool_motion_to_tsv",
    "tshift_interface",
    "volreg_interface",
    "write_slice_timing_file",
]

Backend = Literal["native", "fsl", "afni"]

#: The values of the ``fmri.backend`` config key.
BACKENDS: tuple[str, ...] = ("native", "fsl", "afni")

#: The command each backend runs for each step (``None``: that step runs natively).
TOOLS: dict[str, dict[str, str | None]] = {
    "native": {"motion": None, "slice_timing": None},
    "fsl": {"motion": "mcflirt", "slice_timing": None},
    "afni": {"motion": "3dvolreg", "slice_timing": "3dTshift"},
}

_SUITE = {"fsl": "FSL", "afni": "AFNI"}

#: RAS <-> DICOM/LPS (AFNI's world coordinates): x and y change sign.
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: Obliquity (degrees) above which AFNI uses its own de-obliqued ("cardinal") coordinates.
_OBLIQUITY_DEG = 0.01


# ------------------------------------------------------------------------ checks
def check_backend(backend: str) -> str:
    """Return ``backend`` if it is one of :data:`BACKENDS`, else raise :class:`ConfigError`."""
    if backend not in BACKENDS:
        raise ConfigError(
            f"fmri.backend is {backend!r}",
            hint=f"use one of {', '.join(BACKENDS)}",
        )
    return backend


def require_tool(backend: str, tool: str) -> str:
    """Full path of ``tool`` on ``PATH``; a clear :class:`NeuroFuseError` when it is absent.

    Parameters
    ----------
    backend:
        The configured backend (``"fsl"`` or ``"afni"``), named in the message.
    tool:
        The command, e.g. ``"mcflirt"`` or ``"3dvolreg"``.
    """
    path = shutil.which(tool)
    if path is None:
        suite = _SUITE.get(backend, backend)
        raise NeuroFuseError(
            f"fmri.backend: {backend} needs the {suite} command '{tool}', which is not on PATH",
            hint="run with the container image (it has FSL and AFNI) or set fmri.backend: native",
        )
    return path


@contextlib.contextmanager
def _quiet_fsl_env() -> Iterator[None]:
    """nipype's FSL interfaces warn at construction when ``FSLOUTPUTTYPE`` is unset; set it
    (NIFTI_GZ) for the duration of the construction only."""
    had = "FSLOUTPUTTYPE" in os.environ
    if not had:
        os.environ["FSLOUTPUTTYPE"] = "NIFTI_GZ"
    try:
        yield
    finally:
        if not had:
            os.environ.pop("FSLOUTPUTTYPE", None)


def _nipype() -> None:
    """Switch off nipype's online version check (etelemetry) before nipype is imported:
    NeuroFuse never touches the network at run time."""
    os.environ.setdefault("NIPYPE_NO_ET", "1")


# ------------------------------------------------------------- command builders
def mcflirt_interface(
    bold_file: str | os.PathLike,
    out_file: str | os.PathLike,
    *,
    ref_vol: int | None = None,
    ref_file: str | os.PathLike | None = None,
    mean_vol: bool = False,
    cost: str = "normcorr",
    save_mats: bool = True,
    save_plots: bool = True,
    save_rms: bool = False,
) -> fsl.MCFLIRT:
    """The nipype ``MCFLIRT`` interface for head-motion correction (not run).

    Parameters
    ----------
    bold_file:
        4D BOLD NIfTI (``-in``).
    out_file:
        Motion-corrected series (``-out``); MCFLIRT writes ``<out_file>.par`` (``-plots``)
        and ``<out_file>.mat/MAT_NNNN`` (``-mats``) beside it.
    ref_vol, ref_file, mean_vol:
        The reference, at most one of: a volume index (``-refvol``), an image on the same
        grid (``-reffile``), or MCFLIRT's two-pass mean (``-meanvol``). None of them:
        MCFLIRT's default, the middle volume.
    cost:
        Cost function (``-cost``); ``normcorr`` is MCFLIRT's default, written out so the
        command says what it does.
    save_mats, save_plots, save_rms:
        ``-mats`` (needed for :func:`read_mcflirt_matrices`), ``-plots`` (the ``.par``),
        ``-rmsabs -rmsrel``.
    """
    _nipype()
    from nipype.interfaces import fsl

    if sum([ref_vol is not None, ref_file is not None, bool(mean_vol)]) > 1:
        raise ValueError("give at most one of ref_vol, ref_file and mean_vol")
    inputs: dict[str, Any] = {
        "in_file": os.fspath(bold_file),
        "out_file": os.fspath(out_file),
        "cost": cost,
        "output_type": "NIFTI_GZ",
    }
    if ref_vol is not None:
        inputs["ref_vol"] = int(ref_vol)
    if ref_file is not None:
        inputs["ref_file"] = os.fspath(ref_file)
    if mean_vol:
        inputs["mean_vol"] = True
    if save_mats:
        inputs["save_mats"] = True
    if save_plots:
        inputs["save_plots"] = True
    if save_rms:
        inputs["save_rms"] = True
    with _quiet_fsl_env():
        return fsl.MCFLIRT(**inputs)


def slicetimer_interface(
    bold_file: str | os.PathLike,
    out_file: str | os.PathLike,
    *,
    tr: float,
    custom_timings: str | os.PathLike,
    slice_direction: int = 3,
) -> fsl.SliceTimer:
    """The nipype ``SliceTimer`` interface (FSL ``slicetimer``; not run, not used by
    :func:`run_backend_slice_timing`, see the module docstring).

    ``custom_timings`` is a one-column file of slice timings in fractions of the TR as
    ``slicetimer --tcustom`` wants them (0.5 = no shift); ``slice_direction`` is 1, 2 or 3
    for x, y, z.
    """
    _nipype()
    from nipype.interfaces import fsl

    with _quiet_fsl_env():
        return fsl.SliceTimer(
            in_file=os.fspath(bold_file),
            out_file=os.fspath(out_file),
            time_repetition=float(tr),
            custom_timings=os.fspath(custom_timings),
            slice_direction=int(slice_direction),
            output_type="NIFTI_GZ",
        )


def volreg_interface(
    bold_file: str | os.PathLike,
    out_file: str | os.PathLike,
    *,
    oned_file: str | os.PathLike,
    matrix_file: str | os.PathLike,
    maxdisp_file: str | os.PathLike,
    base: int | str | os.PathLike = 0,
    zpad: int = 1,
    interp: str | None = None,
) -> afni.Volreg:
    """The nipype ``Volreg`` interface (AFNI ``3dvolreg``) for head motion (not run).

    Parameters
    ----------
    bold_file, out_file:
        4D BOLD in, registered series out (``-prefix``).
    oned_file:
        ``-1Dfile``: six columns ``roll pitch yaw dS dL dP`` (:func:`read_afni_oned`).
    matrix_file:
        ``-1Dmatrix_save``: one base-to-input matrix per volume (:func:`read_afni_matrices`);
        name it ``*.aff12.1D`` (AFNI appends that to names not ending in ``.1D``).
    maxdisp_file:
        ``-maxdisp1D``: maximum displacement per volume (given so nothing is written to
        the working directory under a name derived from the input).
    base:
        Base volume: an index into ``bold_file`` (``-base n``) or an image on the same
        grid (``-base file``).
    zpad:
        ``-zpad``: zero-pad this many voxels during rotations (``afni_proc.py`` uses 1).
    interp:
        Interpolation (``Fourier``, ``heptic``, ``quintic``, ``cubic``, ``linear``);
        ``None`` keeps 3dvolreg's default (heptic).
    """
    _nipype()
    from nipype.interfaces import afni

    inputs: dict[str, Any] = {
        "in_file": os.fspath(bold_file),
        "out_file": os.fspath(out_file),
        "oned_file": os.fspath(oned_file),
        "oned_matrix_save": os.fspath(matrix_file),
        "md1d_file": os.fspath(maxdisp_file),
        "zpad": int(zpad),
        "outputtype": "NIFTI_GZ",
    }
    if isinstance(base, (int, np.integer)) and not isinstance(base, bool):
        if base < 0:
            raise ValueError(f"base volume index must be >= 0, got {base}")
        inputs["args"] = f"-base {int(base)}"  # nipype's basefile wants an existing file
    else:
        inputs["basefile"] = os.fspath(base)
    if interp is not None:
        inputs["interp"] = interp
    return afni.Volreg(**inputs)


def write_slice_timing_file(slice_timing: Sequence[float], path: str | os.PathLike) -> Path:
    """Write slice times (seconds, voxel-index order along the slice axis) as the one-line,
    tab-separated file that ``3dTshift -tpattern @file`` reads (nipype's and fMRIPrep's
    format)."""
    times = np.asarray(slice_timing, dtype=float)
    if times.ndim != 1 or times.size == 0:
        raise ValueError("slice_timing must be a non-empty list of numbers")
    atomic_write_text(path, "\t".join(f"{t:.6g}" for t in times) + "\n")
    return Path(path)


def tshift_interface(
    bold_file: str | os.PathLike,
    out_file: str | os.PathLike,
    *,
    tr: float,
    timing_file: str | os.PathLike,
    ref_time: float | None = None,
    ref_slice: int | None = None,
    interp: str | None = None,
    ignore: int = 0,
) -> afni.TShift:
    """The nipype ``TShift`` interface (AFNI ``3dTshift``) for slice timing (not run).

    Parameters
    ----------
    bold_file, out_file:
        4D BOLD in, corrected series out (``-prefix``).
    tr:
        Repetition time in seconds (``-TR <tr>s``).
    timing_file:
        Slice times written by :func:`write_slice_timing_file` (``-tpattern @file``).
        3dTshift takes slices along the third voxel axis, in index order.
    ref_time, ref_slice:
        Reference: a time in seconds within the TR (``-tzero``; what the native backend's
        ``ref_time`` means) or a slice index (``-slice``), not both. Neither: 3dTshift's
        default, the mean slice time.
    interp:
        3dTshift interpolation (``Fourier``, ``linear``, ``cubic``, ``quintic``,
        ``heptic``); ``None`` keeps its default (Fourier).
    ignore:
        ``-ignore``: leading volumes (non-steady state) left out of the interpolation.
    """
    _nipype()
    from nipype.interfaces import afni

    if ref_time is not None and ref_slice is not None:
        raise ValueError("give ref_time or ref_slice, not both")
    inputs: dict[str, Any] = {
        "in_file": os.fspath(bold_file),
        "out_file": os.fspath(out_file),
        "tr": f"{float(tr):g}s",
        "slice_timing": os.fspath(timing_file),
        "outputtype": "NIFTI_GZ",
    }
    if ref_time is not None:
        inputs["tzero"] = float(ref_time)
    if ref_slice is not None:
        inputs["tslice"] = int(ref_slice)
    if interp is not None:
        inputs["interp"] = interp
    if ignore:
        inputs["ignore"] = int(ignore)
    return afni.TShift(**inputs)


# --------------------------------------------------------------------- readers
def _load_table(path: str | os.PathLike, what: str, ncols: Sequence[int]) -> np.ndarray:
    try:
        table = np.loadtxt(os.fspath(path), comments="#", ndmin=2)
    except (OSError, ValueError) as exc:
        raise NeuroFuseError(f"cannot read the {what}: {exc}", path=path) from exc
    if table.shape[0] == 0 or table.shape[1] not in ncols:
        raise NeuroFuseError(
            f"the {what} has shape {table.shape}; expected {' or '.join(map(str, ncols))} columns",
            path=path,
        )
    if not np.all(np.isfinite(table)):
        raise NeuroFuseError(f"the {what} holds non-finite numbers", path=path)
    return table


def read_mcflirt_par(par_file: str | os.PathLike) -> np.ndarray:
    """MCFLIRT ``.par`` -> ``(T, 6)`` ``trans_x trans_y trans_z rot_x rot_y rot_z`` (mm, rad).

    The ``.par`` columns are ``rot_x rot_y rot_z`` (radians) then ``trans_x trans_y
    trans_z`` (mm). This applies nipype's ``normalize_mc_params(row, 'FSL')`` — a reorder
    to translations first — and nothing else, exactly as fMRIPrep does for its confounds:
    the rotation centre stays MCFLIRT's (near the middle of the volume, not the scanner
    origin), and so do the direction (volume -> reference) and the axes (FSL's
    scaled-voxel axes). So the result has our column names and units but not exactly our
    geometry (see the module docstring); use :func:`read_mcflirt_matrices` for the exact
    transforms.
    """
    _nipype()
    from nipype.utils.misc import normalize_mc_params

    par = _load_table(par_file, "MCFLIRT .par file", (6,))
    return np.array([normalize_mc_params(row, "FSL") for row in par], dtype=float)


def read_afni_oned(
    oned_file: str | os.PathLike, *, convention: Literal["neurofuse", "nipype"] = "neurofuse"
) -> np.ndarray:
    """AFNI 3dvolreg ``-1Dfile`` (or ``-dfile``) -> ``(T, 6)`` motion (mm, rad).

    3dvolreg writes ``roll pitch yaw dS dL dP`` (``-dfile``: with the volume index first
    and two RMS columns after). Its help says: roll, pitch, yaw are rotations about the
    I-S, R-L and A-P axes in degrees counter-clockwise; dS, dL, dP are displacements in the
    Superior, Left and Posterior directions in mm; and they are the parameters *needed to
    bring the sub-brick back into alignment with the base*, as
    ``3drotate -rotate <roll>I <pitch>R <yaw>A -ashift <dS>S <dL>L <dP>P`` (3drotate:
    ``I`` is the inferior-to-superior axis, ``R`` right-to-left, ``A`` anterior-to-
    posterior, positive angles by the right-hand rule).

    Our parameters describe the opposite transform (reference -> volume ``t``) in RAS, so,
    to first order (small motion; rotation centre ignored):

    ============  ===========================================================
    ours          from AFNI
    ============  ===========================================================
    ``trans_x``   ``+dL``  (head moved right -> AFNI shifts it back left)
    ``trans_y``   ``+dP``  (moved anterior -> shifted back posterior)
    ``trans_z``   ``-dS``  (moved superior -> shifted back *inferior*: dS < 0)
    ``rot_x``     ``+pitch`` (about +x -> back about the R-L axis, i.e. -x)
    ``rot_y``     ``+yaw``   (about +y -> back about the A-P axis, i.e. -y)
    ``rot_z``     ``-roll``  (about +z -> back about the I-S axis, i.e. +z)
    ============  ===========================================================

    nipype's ``normalize_mc_params(row, 'AFNI')`` gives the same order and units (degrees
    to radians) but keeps ``+dS`` and ``+roll``. This function calls it and, with
    ``convention="neurofuse"`` (default), flips the signs of ``trans_z`` and ``rot_z``;
    ``convention="nipype"`` returns nipype's numbers unchanged. Signs do not change
    framewise displacement. 3dvolreg rotates about the centre of the volume, not the
    scanner origin; for the exact transforms use :func:`read_afni_matrices`.
    """
    _nipype()
    from nipype.utils.misc import normalize_mc_params

    if convention not in ("neurofuse", "nipype"):
        raise ValueError(f"convention must be 'neurofuse' or 'nipype', got {convention!r}")
    table = _load_table(oned_file, "3dvolreg motion file", (6, 9))
    if table.shape[1] == 9:
        table = table[:, :7]  # -dfile: index, six parameters, rmsold, rmsnew
    out = np.array([normalize_mc_params(row.copy(), "AFNI") for row in table], dtype=float)
    if convention == "neurofuse":
        out[:, 2] *= -1.0  # trans_z = -dS
        out[:, 5] *= -1.0  # rot_z = -roll
    return out


def _fsl_coords(img: nib.spatialimages.SpatialImage) -> np.ndarray:
    """4x4 from voxel indices to FSL's coordinates: voxel sizes (mm), with the first axis
    mirrored when the voxel-to-world affine has a positive determinant (FSL's
    "radiological" convention)."""
    aff = np.asarray(img.affine, dtype=float)
    zooms = np.sqrt(np.sum(aff[:3, :3] ** 2, axis=0))
    out = np.diag(list(zooms) + [1.0])
    if np.linalg.det(aff) > 0:
        flip = np.eye(4)
        flip[0, 0] = -1.0
        flip[0, 3] = (img.shape[0] - 1) * zooms[0]
        out = flip @ out
    return out


def read_mcflirt_matrices(
    mat_files: Sequence[str | os.PathLike],
    bold_file: str | os.PathLike,
    reference_file: str | os.PathLike | None = None,
) -> np.ndarray:
    """MCFLIRT ``-mats`` files -> ``(T, 4, 4)`` world matrices in our convention.

    A FLIRT matrix ``F_t`` maps FSL coordinates of the moving image (volume ``t`` of
    ``bold_file``) to FSL coordinates of the reference (``reference_file``, default the
    BOLD grid itself). FSL coordinates are ``S @ voxel`` with ``S`` from the voxel sizes
    (first axis mirrored when the affine's determinant is positive). With ``A_b``,
    ``A_r`` the voxel-to-world affines, the world matrix from reference to volume ``t``
    (:mod:`neurofuse.transforms`) is

        ``M_t = A_b S_b^-1  F_t^-1  S_r A_r^-1``

    (the same conversion as nitransforms' FSL reader). Exact, oblique images included.
    """
    bold = nib.load(os.fspath(bold_file))
    ref = bold if reference_file is None else nib.load(os.fspath(reference_file))
    pre = np.asarray(bold.affine, float) @ np.linalg.inv(_fsl_coords(bold))
    post = _fsl_coords(ref) @ np.linalg.inv(np.asarray(ref.affine, float))
    mats = []
    for path in mat_files:
        flirt = _load_table(path, "MCFLIRT matrix", (4,))
        if flirt.shape != (4, 4):
            raise NeuroFuseError(f"an MCFLIRT matrix is 4x4, got {flirt.shape}", path=path)
        mats.append(pre @ np.linalg.inv(flirt) @ post)
    if not mats:
        raise NeuroFuseError("no MCFLIRT matrix files given", path=bold_file)
    return np.stack(mats)


def read_afni_matrices(
    matrix_file: str | os.PathLike, bold_file: str | os.PathLike | None = None
) -> np.ndarray:
    """3dvolreg ``-1Dmatrix_save`` file -> ``(T, 4, 4)`` world matrices in our convention.

    Each row holds 12 numbers, a 3x4 matrix row by row, which 3dvolreg's help defines as
    the transformation *from base to input* DICOM (LPS) coordinates — reference to volume
    ``t``, our direction. RAS and LPS differ by the signs of x and y, so
    ``M_t = D @ A_t @ D`` with ``D = diag(-1, -1, 1, 1)``.

    AFNI takes the world coordinates of a NIfTI from its header; for an *oblique* image
    3dvolreg works in AFNI's de-obliqued coordinates instead, and this conversion is then
    off by the obliquity. Give ``bold_file`` to have that checked (a warning is logged).
    """
    table = _load_table(matrix_file, "3dvolreg matrix file", (12,))
    mats = np.tile(np.eye(4), (table.shape[0], 1, 1))
    mats[:, :3, :] = table.reshape(-1, 3, 4)
    if bold_file is not None:
        from nibabel.affines import obliquity

        angle = float(np.degrees(np.max(obliquity(nib.load(os.fspath(bold_file)).affine))))
        if angle > _OBLIQUITY_DEG:
            log.warning(
                "%s is oblique (%.2f deg): 3dvolreg's matrices are in AFNI's de-obliqued "
                "coordinates, so the motion read from them is off by that rotation; "
                "use fmri.backend: native for oblique data", bold_file, angle,
            )
    return _LPS @ mats @ _LPS


def tool_motion_to_tsv(
    tool_file: str | os.PathLike, out_tsv: str | os.PathLike, *, source: Literal["fsl", "afni"]
) -> np.ndarray:
    """Convert an MCFLIRT ``.par`` (``source="fsl"``) or a 3dvolreg ``.1D``
    (``source="afni"``) into our motion TSV (:func:`~neurofuse.fmri.motion.write_motion_tsv`),
    fMRIPrep-style (see :func:`read_mcflirt_par`, :func:`read_afni_oned`). Returns the
    ``(T, 6)`` parameters."""
    from neurofuse.fmri.motion import write_motion_tsv

    if source == "fsl":
        params = read_mcflirt_par(tool_file)
    elif source == "afni":
        params = read_afni_oned(tool_file)
    else:
        raise ValueError(f"source must be 'fsl' or 'afni', got {source!r}")
    write_motion_tsv(params, out_tsv)
    return params


# ---------------------------------------------------------------------- running
@dataclass
class BackendMotionResult:
    """What :func:`run_backend_motion` produced.

    ``matrices[t]`` maps reference world positions to volume ``t`` (RAS mm) and
    ``params`` are their six parameters (:mod:`neurofuse.transforms`); these are what the
    TSV holds. ``tool_params`` are the tool's own six numbers per volume read
    fMRIPrep-style (``None`` for native), ``command`` the command line that ran.
    """

    backend: str
    params: np.ndarray
    matrices: np.ndarray
    reference: np.ndarray = field(repr=False)
    command: str | None = None
    tool_params: np.ndarray | None = field(default=None, repr=False)


def _reference_image(
    img: nib.Nifti1Image, data: np.ndarray, reference: int | str, n_reference: int
) -> nib.Nifti1Image:
    """The reference volume as a float32 NIfTI with the BOLD's header (same qform/sform
    codes, so AFNI and FSL read the same world coordinates from both)."""
    from neurofuse.fmri.motion import reference_volume

    ref = reference_volume(data, reference, n_reference)
    header = img.header.copy()
    header.set_data_dtype(np.float32)
    return nib.Nifti1Image(ref, img.affine, header)


def _run(interface: Any, tool: str, work_dir: Path) -> None:
    """Run a nipype interface in ``work_dir``; a failure becomes one NeuroFuseError line
    with the tool's last line of standard error and its exit code.

    nipype 1.11 does not raise on a non-zero exit code by itself (it fails later, on the
    missing outputs, which hides the tool's message), so the run ignores exceptions and
    the result's runtime is inspected here.
    """
    result = interface.run(cwd=os.fspath(work_dir), ignore_exception=True)
    runtime = result.runtime
    code = getattr(runtime, "returncode", None)
    trace = getattr(runtime, "traceback", None)
    if code == 0 and not trace:
        return
    stderr = (getattr(runtime, "stderr", None) or "").strip().splitlines()
    if stderr:
        why = stderr[-1]
    elif trace:
        why = str(trace).strip().splitlines()[-1]
    else:
        why = "no error message"
    raise NeuroFuseError(
        f"{tool} failed (exit code {code}): {why}",
        hint=f"the command was: {interface.cmdline}",
    )


def _first_existing(candidates: Sequence[Path], what: str, work_dir: Path) -> Path:
    for path in candidates:
        if path.exists():
            return path
    found = sorted(p.name for p in work_dir.iterdir())
    raise NeuroFuseError(f"{what} not found after the run (looked for {[c.name for c in candidates]}; found {found})", path=work_dir)


@contextlib.contextmanager
def _work_dir(work_dir: str | os.PathLike | None, near: Path) -> Iterator[Path]:
    if work_dir is not None:
        path = Path(work_dir)
        path.mkdir(parents=True, exist_ok=True)
        yield path.resolve()
        return
    near.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{near.name}-backend-", dir=near) as tmp:
        yield Path(tmp).resolve()


def run_backend_motion(
    backend: str,
    bold_file: str | os.PathLike,
    out_tsv: str | os.PathLike,
    *,
    out_reference: str | os.PathLike | None = None,
    reference: int | Literal["mean", "median"] = "median",
    n_reference: int = 10,
    work_dir: str | os.PathLike | None = None,
    cost: str = "normcorr",
    zpad: int = 1,
    min_volumes: int = 2,
) -> BackendMotionResult:
    """Estimate head motion with the configured backend; write the motion TSV.

    The series is checked first (:func:`neurofuse.fmri.checks.check_bold_series`: 4D, at
    least ``min_volumes`` volumes, no empty volumes), since this is the first fMRI step.

    Every backend registers to the same reference (``reference``/``n_reference`` as in
    :func:`neurofuse.fmri.motion.estimate_motion`: a volume index or the mean/median of
    the first ``n_reference`` volumes), written to ``out_reference`` as the BOLD
    reference, and every backend writes ``out_tsv`` in our convention: native directly;
    ``fsl``/``afni`` from the tools' saved matrices (:func:`read_mcflirt_matrices`,
    :func:`read_afni_matrices`), because the resampling applies this TSV.

    Parameters
    ----------
    backend:
        ``"native"``, ``"fsl"`` (MCFLIRT) or ``"afni"`` (3dvolreg).
    bold_file:
        4D BOLD NIfTI.
    out_tsv:
        Motion TSV (``trans_x … rot_z``, mm and rad).
    out_reference:
        Optional reference volume ("boldref") the motion refers to.
    work_dir:
        Where the tool runs and leaves its own outputs (``.par``/``.1D``, matrices,
        registered series); default a temporary folder beside ``out_tsv``, removed after.
    cost:
        MCFLIRT ``-cost``.
    zpad:
        3dvolreg ``-zpad``.

    Raises
    ------
    NeuroFuseError
        When the backend's tool is not on ``PATH`` (checked before any work), or fails.
    """
    from neurofuse.fmri.checks import check_bold_series
    from neurofuse.fmri.motion import estimate_motion, write_motion_tsv

    check_backend(backend)
    check_bold_series(bold_file, min_volumes=min_volumes)
    if backend == "native":
        res = estimate_motion(
            bold_file, out_tsv, out_reference=out_reference, reference=reference, n_reference=n_reference
        )
        return BackendMotionResult("native", res.params, res.matrices, res.reference)

    tool = TOOLS[backend]["motion"]
    assert tool is not None
    require_tool(backend, tool)
    img = nib.load(os.fspath(bold_file))
    if img.ndim != 4:
        raise NeuroFuseError(f"expected a 4D BOLD image, got {img.ndim}D", path=bold_file)
    data = np.asarray(img.dataobj, dtype=np.float32)
    n_vol = data.shape[3]
    ref_img = _reference_image(img, data, reference, n_reference)
    bold_abs = Path(bold_file).resolve()

    with _work_dir(work_dir, Path(out_tsv).parent) as wd:
        ref_path = wd / "boldref.nii.gz"
        nib.save(ref_img, ref_path)
        if backend == "fsl":
            out = wd / "mcf.nii.gz"
            if isinstance(reference, (int, np.integer)) and not isinstance(reference, bool):
                iface = mcflirt_interface(bold_abs, out, ref_vol=int(reference) % n_vol, cost=cost)
            else:
                iface = mcflirt_interface(bold_abs, out, ref_file=ref_path, cost=cost)
            command = iface.cmdline
            _run(iface, tool, wd)
            par = _first_existing([wd / "mcf.nii.gz.par", wd / "mcf.par"], "MCFLIRT .par file", wd)
            mat_dir = _first_existing([wd / "mcf.nii.gz.mat", wd / "mcf.mat"], "MCFLIRT .mat folder", wd)
            mat_files = sorted(mat_dir.glob("MAT_*"))
            if len(mat_files) != n_vol:
                raise NeuroFuseError(f"MCFLIRT wrote {len(mat_files)} matrices for {n_vol} volumes", path=mat_dir)
            matrices = read_mcflirt_matrices(mat_files, bold_abs, ref_path)
            tool_params = read_mcflirt_par(par)
        else:
            oned, mat = wd / "motion.1D", wd / "motion.aff12.1D"
            iface = volreg_interface(
                bold_abs, wd / "volreg.nii.gz", oned_file=oned, matrix_file=mat,
                maxdisp_file=wd / "maxdisp.1D", base=ref_path, zpad=zpad,
            )
            command = iface.cmdline
            _run(iface, tool, wd)
            _first_existing([mat], "3dvolreg matrix file", wd)
            matrices = read_afni_matrices(mat, bold_abs)
            tool_params = read_afni_oned(_first_existing([oned], "3dvolreg .1D file", wd))
        if len(matrices) != n_vol or len(tool_params) != n_vol:
            raise NeuroFuseError(
                f"{tool} reported {len(matrices)} matrices / {len(tool_params)} parameter rows for {n_vol} volumes",
                path=bold_file,
            )

    params = rigid_params(matrices)
    write_motion_tsv(params, out_tsv)
    if out_reference is not None:
        save_nifti(ref_img, out_reference)
    log.info("%s: head motion by %s: %s", bold_file, tool, command)
    return BackendMotionResult(
        backend, params, matrices, np.asarray(ref_img.dataobj), command=command, tool_params=tool_params
    )


def run_backend_slice_timing(
    backend: str,
    bold_file: str | os.PathLike,
    out_file: str | os.PathLike,
    slice_timing: Sequence[float],
    tr: float,
    ref_time: float | None = None,
    slice_axis: int = 2,
    *,
    out_json: str | os.PathLike | None = None,
    work_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Slice-timing correction with the configured backend; same arguments and returned
    metadata as :func:`neurofuse.fmri.slice_timing.correct_slice_timing`.

    ``native`` and ``fsl`` use the native FFT shift (see the module docstring); ``afni``
    runs ``3dTshift -tpattern @file -TR <tr>s -tzero <ref_time>``, where ``ref_time``
    defaults to the middle of the slice-acquisition range as natively (fMRIPrep's
    default). 3dTshift shifts slices along the third voxel axis only.
    """
    from neurofuse.fmri import slice_timing as st

    check_backend(backend)
    tool = TOOLS[backend]["slice_timing"]
    if tool is None:
        if backend != "native":
            log.info("fmri.backend: %s corrects slice timing natively", backend)
        return st.correct_slice_timing(
            bold_file, out_file, slice_timing, tr, ref_time, slice_axis, out_json=out_json
        )

    require_tool(backend, tool)
    if slice_axis != 2:
        raise NeuroFuseError(
            f"3dTshift corrects slices along the third voxel axis only; this run's slice axis is {slice_axis}",
            path=bold_file,
            hint="set fmri.backend: native for this dataset",
        )
    img = nib.load(os.fspath(bold_file))
    if img.ndim != 4 or len(slice_timing) != img.shape[2]:
        raise NeuroFuseError(
            f"SliceTiming has {len(slice_timing)} entries for an image of shape {img.shape}",
            path=bold_file, hint="check SliceTiming and SliceEncodingDirection in the sidecar",
        )
    ref = st.default_reference_time(slice_timing) if ref_time is None else float(ref_time)
    with _work_dir(work_dir, Path(out_file).parent) as wd:
        timing = write_slice_timing_file(slice_timing, wd / "slice_timing.1D")
        result = wd / "tshift.nii.gz"
        iface = tshift_interface(Path(bold_file).resolve(), result, tr=tr, timing_file=timing, ref_time=ref)
        command = iface.cmdline
        _run(iface, tool, wd)
        _first_existing([result], "3dTshift output", wd)
        with atomic_path(out_file, suffix=".nii.gz" if os.fspath(out_file).endswith(".gz") else ".nii") as tmp:
            nib.save(nib.load(os.fspath(result)), tmp)
    log.info("%s: slice timing by %s: %s", bold_file, tool, command)
    meta = {
        "SliceTimingCorrected": True,
        "StartTime": round(ref, 6),
        "SliceTimingMethod": "afni-3dTshift",
        "RepetitionTime": float(tr),
    }
    if out_json is not None:
        atomic_write_text(out_json, json.dumps(meta, indent=2) + "\n")
    return meta
