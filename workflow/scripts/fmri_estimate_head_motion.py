"""Adapter: rigid head-motion parameters and the BOLD reference volume."""
from neurofuse.fmri.motion import estimate_motion
from neurofuse.workflow import run_logged

run_logged(
    snakemake.log[0],
    estimate_motion,
    snakemake.input.bold,
    snakemake.output.motion,
    out_reference=snakemake.output.boldref,
    reference=snakemake.params.reference,
)
