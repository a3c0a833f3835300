"""Adapter: one resampling of the BOLD series to MNI (motion + registrations composed)."""
from neurofuse.fmri.steps import resample_to_template_step
from neurofuse.workflow import run_logged

run_logged(
    snakemake.log[0],
    resample_to_template_step,
    snakemake.input.bold,
    snakemake.input.stc_json,
    out_bold=snakemake.output.bold,
    out_json=snakemake.output.json,
    out_mask=snakemake.output.mask,
    out_boldref=snakemake.output.boldref,
    boldref_file=snakemake.input.boldref,
    transforms=list(snakemake.input.transforms),
    motion_file=snakemake.input.motion,
    resolution=snakemake.params.resolution,
    seed=snakemake.params.seed,
    sources=snakemake.params.sources,
)
