"""fMRI preprocessing: slice timing, head motion, registration, one-shot resampling,
confounds and QC figures.

Every function here takes paths and plain parameters (never a Snakemake object) and
returns plain values, so the workflow's script adapters stay a few lines long.

The order follows fMRIPrep: head motion is estimated (on the raw or the slice-time
corrected series, the caller chooses), slice timing is corrected in native space, the
BOLD reference is registered to the T1w and the T1w to MNI, and all spatial transforms
are composed and applied to the slice-time-corrected series in *one* interpolation
(:func:`neurofuse.fmri.resample.resample_bold_to_template`).

Sub-modules are imported lazily by the caller (``from neurofuse.fmri import motion``):
:mod:`~neurofuse.fmri.registration` needs ANTsPy, the others only numpy/scipy/nibabel.
"""
