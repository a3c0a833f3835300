"""Adapter: rigid head-motion parameters and the BOLD reference volume (any backend)."""
from neurofuse.fmri.backends import run_backend_motion
from neurofuse.workflow import run_logged

run_logged(
    snakemake.log[0],
    run_backend_motion,
    snakemake.params.backend,
    snakemake.input.bold,
    snakemake.output.motion,
    out_reference=snakemake.output.boldref,
    reference=snakemake.params.reference,
    min_volumes=snakemake.params.min_volumes,
)
