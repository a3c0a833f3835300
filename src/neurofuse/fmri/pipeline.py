"""All fMRI steps of one run in order, for scripts, the benchmark and integration tests.

The Snakemake workflow calls the step functions one rule at a time; this module chains
the same functions for a single run when no workflow is wanted (``make demo`` before the
rules exist, ``benchmarks/bench_fmri.py``, tests). File names inside ``out_dir`` are fixed
and simple; BIDS-Derivatives names are the workflow's job (:mod:`neurofuse.naming`).

Order (fMRIPrep's):

1. head motion estimated on the **raw** series (slice-timing correction spreads a sudden
   movement over neighbouring volumes: on the simulator's small preset, RMS translation
   error vs truth 0.018 mm on raw data, 0.04 mm on slice-time-corrected data);
2. slice-timing correction (skipped with a warning when ``SliceTiming`` is absent);
3. BOLD reference -> T1w (rigid, mutual information) and T1w -> MNI (affine + SyN), or
   BOLD reference -> MNI directly when there is no T1w;
4. one resampling of the slice-time-corrected series to MNI (motion + all registrations);
5. confounds (motion, FD, DVARS on the MNI-space series within the MNI brain mask) and
   QC figures.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nibabel as nib

from neurofuse.fmri import confounds as confounds_mod
from neurofuse.fmri import motion as motion_mod
from neurofuse.fmri import qc, registration, resample, slice_timing

log = logging.getLogger(__name__)


def preprocess_run(
    bold_file: str | os.PathLike,
    metadata: Mapping[str, Any],
    out_dir: str | os.PathLike,
    *,
    t1w_file: str | os.PathLike | None = None,
    resolution: float = 2.0,
    registration_resolution: float = 2.0,
    reference: motion_mod.Reference = "median",
    n_reference: int = 10,
    bold_to_t1w: str = "Rigid",
    order: int = 3,
    fd_threshold: float = 0.5,
    dvars_threshold: float = 1.5,
    seed: int = 42,
    figures: bool = True,
) -> dict[str, Any]:
    """Preprocess one BOLD run; return output paths (``files``) and step times (``seconds``).

    ``metadata`` is the run's (inheritance-resolved) BIDS sidecar: ``RepetitionTime`` is
    required, ``SliceTiming``/``SliceEncodingDirection`` are used when present.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    seconds: dict[str, float] = {}
    meta: dict[str, Any] = {}

    def timed(name, fn, *args, **kwargs):
        start = time.perf_counter()
        value = fn(*args, **kwargs)
        seconds[name] = round(time.perf_counter() - start, 3)
        return value

    tr = float(metadata["RepetitionTime"])
    n_vol = nib.load(os.fspath(bold_file)).shape[3]

    files["motion"] = str(out / "motion.tsv")
    files["boldref"] = str(out / "boldref.nii.gz")
    timed("motion", motion_mod.estimate_motion, bold_file, files["motion"],
          out_reference=files["boldref"], reference=reference, n_reference=n_reference)

    stc_input = bold_file
    if slice_timing.should_correct_slice_timing(metadata, n_vol, source=bold_file):
        times, axis = slice_timing.slice_times_in_index_order(metadata)
        files["stc"] = str(out / "stc_bold.nii.gz")
        meta.update(timed("slice_timing", slice_timing.correct_slice_timing, bold_file, files["stc"],
                          times, tr, slice_axis=axis))
        stc_input = files["stc"]
    else:
        meta["SliceTimingCorrected"] = False

    if t1w_file is not None:
        files["t1w_affine"] = str(out / "t1w_to_mni_affine.mat")
        files["t1w_warp"] = str(out / "t1w_to_mni_warp.nii.gz")
        t1 = timed("t1w_to_mni", registration.register_t1w_to_template, t1w_file,
                   files["t1w_affine"], files["t1w_warp"], resolution=registration_resolution, seed=seed)
        files["bold_affine"] = str(out / "boldref_to_t1w_affine.mat")
        b2t = timed("bold_to_t1w", registration.register_bold_to_t1w, files["boldref"], t1w_file,
                    files["bold_affine"], type_of_transform=bold_to_t1w, seed=seed)
        transforms = t1.forward + b2t.forward
    else:
        files["bold_affine"] = str(out / "boldref_to_mni_affine.mat")
        b2m = timed("bold_to_mni", registration.register_bold_to_template, files["boldref"],
                    files["bold_affine"], resolution=registration_resolution, seed=seed)
        transforms = b2m.forward
    files["transforms"] = transforms  # type: ignore[assignment]

    files["preproc"] = str(out / "space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz")
    files["mask"] = str(out / "space-MNI152NLin2009cAsym_desc-brain_mask.nii.gz")
    files["boldref_mni"] = str(out / "space-MNI152NLin2009cAsym_boldref.nii.gz")
    meta.update(timed("resample", resample.resample_bold_to_template, stc_input, files["preproc"],
                      reference_file=files["boldref"], transforms=transforms, motion=files["motion"],
                      resolution=resolution, order=order, out_mask=files["mask"],
                      out_reference=files["boldref_mni"], seed=seed))

    files["confounds"] = str(out / "desc-confounds_timeseries.tsv")
    timed("confounds", confounds_mod.write_confounds, files["motion"], files["confounds"],
          out_json=str(out / "desc-confounds_timeseries.json"), bold_file=files["preproc"],
          mask_file=files["mask"], fd_threshold=fd_threshold, dvars_threshold=dvars_threshold)

    if figures:
        start = time.perf_counter()
        files["fig_motion"] = qc.plot_motion(files["confounds"], out / "desc-motion_bold.svg", tr=tr,
                                             fd_threshold=fd_threshold)
        files["fig_carpet"] = qc.plot_carpet(files["preproc"], files["mask"], out / "desc-carpet_bold.png",
                                             confounds=files["confounds"])
        files["fig_registration"] = qc.plot_registration(files["boldref_mni"], out / "desc-registration_bold.svg",
                                                         resolution=resolution)
        seconds["figures"] = round(time.perf_counter() - start, 3)
    meta.pop("seconds", None)
    return {"files": files, "seconds": seconds, "metadata": meta}
