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


from neurofuse.fmri import confounds as confounds_mod
from neurofuse.fmri import motion as motion_mod
from neurofuse.fmri import qc, registration, resample, steps
from neurofuse.fmri.checks import MIN_VOLUMES, check_bold_series

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
    min_volumes: int = MIN_VOLUMES,
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
    check_bold_series(bold_file, min_volumes=min_volumes)  # odd input stops here, clearly

    files["motion"] = str(out / "motion.tsv")
    files["boldref"] = str(out / "boldref.nii.gz")
    timed("motion", motion_mod.estimate_motion, bold_file, files["motion"],
          out_reference=files["boldref"], reference=reference, n_reference=n_reference)

    files["stc"] = str(out / "stc_bold.nii.gz")
    meta.update(timed("slice_timing", steps.correct_slice_timing_step, bold_file, files["stc"],
                      str(out / "stc_bold.json"), metadata))
    stc_input = files["stc"]

    files["bold_affine"] = str(out / "boldref_coreg_affine.mat")
    if t1w_file is not None:
        files["t1w_affine"] = str(out / "t1w_to_mni_affine.mat")
        files["t1w_warp"] = str(out / "t1w_to_mni_warp.nii.gz")
        t1 = timed("t1w_to_mni", registration.register_t1w_to_template, t1w_file,
                   files["t1w_affine"], files["t1w_warp"], resolution=registration_resolution, seed=seed)
    b2x = timed("bold_coreg", steps.register_bold_reference, files["boldref"], files["bold_affine"],
                t1w_file=t1w_file, bold_to_t1w=bold_to_t1w, resolution=registration_resolution, seed=seed)
    transforms = (t1.forward if t1w_file is not None else []) + b2x.forward
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
          mask_file=files["mask"], fd_threshold=fd_threshold, dvars_threshold=dvars_threshold, tr=tr)

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
