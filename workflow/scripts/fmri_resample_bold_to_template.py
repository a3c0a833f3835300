"""Adapter: BOLD reference -> T1w, slice timing, one resampling of the series to MNI (motion + registrations composed)."""
from neurofuse.fmri.steps import coregister_and_resample_step
from neurofuse.workflow import run_logged

run_logged(
    snakemake.log[0],
    coregister_and_resample_step,
    snakemake.input.bold,
    snakemake.params.metadata,
    boldref_file=snakemake.input.boldref,
    out_affine=snakemake.output.coreg,
    t1w_file=snakemake.input.get("t1w"),
    anat_transforms=list(snakemake.input.anat_transforms),
    bold_to_t1w=snakemake.params.bold_to_t1w,
    registration_resolution=snakemake.params.registration_resolution,
    ref_time=snakemake.params.ref_time,
    backend=snakemake.params.backend,
    out_bold=snakemake.output.bold,
    out_json=snakemake.output.json,
    out_mask=snakemake.output.mask,
    out_boldref=snakemake.output.boldref,
    motion_file=snakemake.input.motion,
    resolution=snakemake.params.resolution,
    seed=snakemake.params.seed,
    sources=snakemake.params.sources,
)
