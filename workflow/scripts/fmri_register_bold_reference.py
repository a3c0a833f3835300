"""Adapter: BOLD reference -> T1w (or -> template when the run has no T1w)."""
from neurofuse.fmri.steps import register_bold_reference
from neurofuse.workflow import run_logged

run_logged(
    snakemake.log[0],
    register_bold_reference,
    snakemake.input.boldref,
    snakemake.output.affine,
    t1w_file=snakemake.input.get("t1w"),
    bold_to_t1w=snakemake.params.bold_to_t1w,
    resolution=snakemake.params.resolution,
    seed=snakemake.params.seed,
)
