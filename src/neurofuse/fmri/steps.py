"""One function per fMRI workflow rule, where a rule needs more than one library call.

Each takes paths and plain parameters (never the Snakemake object); the script adapters
in ``workflow/scripts/`` call exactly one of these or one function of the step modules.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Mapping
from typing import Any

import nibabel as nib

from neurofuse.fmri import qc, registration, slice_timing
from neurofuse.io import atomic_path, atomic_write_text

log = logging.getLogger(__name__)


def _slice_timing_plan(bold_file: str | os.PathLike, metadata: Mapping[str, Any]):
    """``(slice times, slice axis)`` when slice-timing correction applies to the run, else
    ``None`` (the reason logged, as fMRIPrep does)."""
    n_volumes = nib.load(os.fspath(bold_file)).shape[3]
    if not slice_timing.should_correct_slice_timing(metadata, n_volumes, source=bold_file):
        return None
    return slice_timing.slice_times_in_index_order(metadata)


def correct_slice_timing_step(
    bold_file: str | os.PathLike,
    out_file: str | os.PathLike,
    out_json: str | os.PathLike,
    metadata: Mapping[str, Any],
    *,
    ref_time: float | None = None,
    backend: str = "native",
) -> dict[str, Any]:
    """Slice-timing correction with the configured backend, or a copy of the input with a
    logged warning when the sidecar has no usable ``SliceTiming`` (as fMRIPrep does).
    Always writes ``out_json`` saying which happened."""
    from neurofuse.fmri.backends import run_backend_slice_timing

    plan = _slice_timing_plan(bold_file, metadata)
    if plan is not None:
        times, axis = plan
        return run_backend_slice_timing(
            backend, bold_file, out_file, times, float(metadata["RepetitionTime"]), ref_time,
            slice_axis=axis, out_json=out_json,
        )
    same_format = os.fspath(bold_file).endswith(".gz") == os.fspath(out_file).endswith(".gz")
    with atomic_path(out_file, suffix=".nii.gz" if os.fspath(out_file).endswith(".gz") else ".nii") as tmp:
        if same_format:
            shutil.copyfile(bold_file, tmp)
        else:  # e.g. a plain .nii input (nibabel's functional.nii): written again, compressed or not
            src = nib.load(os.fspath(bold_file))
            nib.save(nib.Nifti1Image(src.dataobj, src.affine, src.header), tmp)
    meta = {"SliceTimingCorrected": False, "RepetitionTime": float(metadata["RepetitionTime"])}
    atomic_write_text(out_json, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return meta


def register_bold_reference(
    boldref_file: str | os.PathLike,
    out_affine: str | os.PathLike,
    *,
    t1w_file: str | os.PathLike | None = None,
    bold_to_t1w: str = "Rigid",
    resolution: float = 2.0,
    seed: int = 42,
) -> registration.RegistrationResult:
    """BOLD reference -> T1w (rigid/affine) or, without a T1w, -> the template (affine)."""
    if t1w_file:
        return registration.register_bold_to_t1w(
            boldref_file, t1w_file, out_affine, type_of_transform=bold_to_t1w, seed=seed
        )
    log.warning("%s: no T1w for this run; registering the BOLD reference to the template directly", boldref_file)
    return registration.register_bold_to_template(boldref_file, out_affine, resolution=resolution, seed=seed)


def slice_time_and_resample_step(
    bold_file: str | os.PathLike,
    metadata: Mapping[str, Any],
    *,
    ref_time: float | None = None,
    backend: str = "native",
    out_bold: str | os.PathLike,
    out_json: str | os.PathLike,
    out_mask: str | os.PathLike,
    out_boldref: str | os.PathLike,
    boldref_file: str | os.PathLike,
    transforms: list[str],
    motion_file: str | os.PathLike,
    resolution: float = 2.0,
    seed: int = 42,
    sources: list[str] | None = None,
) -> dict[str, Any]:
    """Slice-timing correction, then the one resampling to MNI (motion + BOLD->T1w +
    T1w->MNI composed), and the BOLD sidecar: one workflow job.

    The slice-time-corrected series is needed only by the resampling, so it never becomes
    an output: it is a hidden scratch file beside ``out_bold`` (uncompressed, written and
    read once), deleted when the step ends, or, after a kill, when the next run starts
    (:func:`neurofuse.io.remove_stale_temporaries`). One job instead of two saves the DAG a
    job per run and, in the cloud, an upload and a download of the whole series. Without a
    usable ``SliceTiming`` the raw series is resampled as it is, with a logged warning (as
    fMRIPrep does).
    """
    from neurofuse.fmri import resample
    from neurofuse.fmri.backends import run_backend_slice_timing
    from neurofuse.io import scratch_path

    tr = float(metadata["RepetitionTime"])
    plan = _slice_timing_plan(bold_file, metadata)
    with contextlib.ExitStack() as stack:
        series = bold_file
        if plan is not None:
            times, axis = plan
            series = stack.enter_context(scratch_path(out_bold, suffix=".nii"))
            meta = dict(run_backend_slice_timing(backend, bold_file, series, times, tr, ref_time, slice_axis=axis))
        else:
            meta = {"SliceTimingCorrected": False, "RepetitionTime": tr}
        meta.update(resample.resample_bold_to_template(
            series, out_bold, reference_file=boldref_file, transforms=transforms, motion=motion_file,
            resolution=resolution, out_mask=out_mask, out_reference=out_boldref, seed=seed,
        ))
    meta.pop("seconds", None)
    meta["SkullStripped"] = False
    if sources:
        meta["Sources"] = list(sources)
    atomic_write_text(out_json, json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return meta


def coregister_and_resample_step(
    bold_file: str | os.PathLike,
    metadata: Mapping[str, Any],
    *,
    boldref_file: str | os.PathLike,
    out_affine: str | os.PathLike,
    t1w_file: str | os.PathLike | None = None,
    anat_transforms: list[str] | None = None,
    bold_to_t1w: str = "Rigid",
    registration_resolution: float = 2.0,
    **resample: Any,
) -> dict[str, Any]:
    """BOLD reference -> T1w (or -> the template without a T1w), then
    :func:`slice_time_and_resample_step` with the T1w -> template transforms
    (``anat_transforms``, ANTs order) and this one composed: one workflow job.

    The BOLD -> T1w transform is used by this resampling only, so computing it in the same
    job costs no restartability: a changed registration setting re-runs the resampling
    anyway. ``out_affine`` is still written (under ``work/``, as the other transforms), to
    inspect or reuse. ``resample`` holds the other keywords of
    :func:`slice_time_and_resample_step`.
    """
    seed = resample.get("seed", 42)
    coreg = register_bold_reference(boldref_file, out_affine, t1w_file=t1w_file, bold_to_t1w=bold_to_t1w,
                                    resolution=registration_resolution, seed=seed)
    transforms = list(anat_transforms or []) + list(coreg.forward)
    return slice_time_and_resample_step(bold_file, metadata, boldref_file=boldref_file, transforms=transforms,
                                        **resample)


def confounds_and_qc_step(
    motion_file: str | os.PathLike,
    bold_file: str | os.PathLike,
    mask_file: str | os.PathLike,
    boldref_file: str | os.PathLike,
    *,
    out_tsv: str | os.PathLike,
    out_json: str | os.PathLike,
    out_motion: str | os.PathLike,
    out_carpet: str | os.PathLike,
    out_registration: str | os.PathLike,
    tr: float,
    fd_threshold: float = 0.5,
    dvars_threshold: float = 1.5,
    resolution: float = 2.0,
) -> None:
    """The confounds table (TSV + JSON) and the three QC figures drawn from it: one workflow job.

    The figures need the confounds and the MNI-space series the confounds are computed
    from, so one job serves both: the series is staged once (in the cloud, downloaded
    once), though read twice (the confounds a volume at a time, the carpet plot only the
    voxels it draws).
    """
    from neurofuse.fmri.confounds import write_confounds

    write_confounds(motion_file, out_tsv, out_json=out_json, bold_file=bold_file, mask_file=mask_file,
                    fd_threshold=fd_threshold, dvars_threshold=dvars_threshold, tr=tr)
    qc.plot_motion(out_tsv, out_motion, tr=tr, fd_threshold=fd_threshold)
    qc.plot_carpet(bold_file, mask_file, out_carpet, confounds=out_tsv)
    qc.plot_registration(boldref_file, out_registration, resolution=resolution)
