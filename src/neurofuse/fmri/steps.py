"""One function per fMRI workflow rule, where a rule needs more than one library call.

Each takes paths and plain parameters (never the Snakemake object); the script adapters
in ``workflow/scripts/`` call exactly one of these or one function of the step modules.
"""

from __future__ import annotations

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

    n_volumes = nib.load(os.fspath(bold_file)).shape[3]
    if slice_timing.should_correct_slice_timing(metadata, n_volumes, source=bold_file):
        times, axis = slice_timing.slice_times_in_index_order(metadata)
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


def plot_fmri_qc(
    confounds_file: str | os.PathLike,
    bold_file: str | os.PathLike,
    mask_file: str | os.PathLike,
    boldref_file: str | os.PathLike,
    *,
    out_motion: str | os.PathLike,
    out_carpet: str | os.PathLike,
    out_registration: str | os.PathLike,
    tr: float,
    fd_threshold: float = 0.5,
    resolution: float = 2.0,
) -> None:
    """The three fMRI QC figures of the report: motion + FD, carpet, registration."""
    qc.plot_motion(confounds_file, out_motion, tr=tr, fd_threshold=fd_threshold)
    qc.plot_carpet(bold_file, mask_file, out_carpet, confounds=confounds_file)
    qc.plot_registration(boldref_file, out_registration, resolution=resolution)


def resample_to_template_step(
    bold_file: str | os.PathLike,
    stc_json: str | os.PathLike,
    *,
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
    """The one resampling (motion + BOLD->T1w + T1w->MNI composed) and the BOLD sidecar."""
    from neurofuse.fmri import resample

    meta = json.loads(open(stc_json, encoding="utf-8").read())
    meta.update(resample.resample_bold_to_template(
        bold_file, out_bold, reference_file=boldref_file, transforms=transforms, motion=motion_file,
        resolution=resolution, out_mask=out_mask, out_reference=out_boldref, seed=seed,
    ))
    meta.pop("seconds", None)
    meta["SkullStripped"] = False
    if sources:
        meta["Sources"] = list(sources)
    atomic_write_text(out_json, json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    return meta
