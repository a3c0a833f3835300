"""Adapter: T1w -> MNI152NLin2009cAsym (ANTsPy affine + SyN)."""
from neurofuse.fmri.registration import register_t1w_to_template
from neurofuse.workflow import run_logged

run_logged(
    snakemake.log[0],
    register_t1w_to_template,
    snakemake.input.t1w,
    snakemake.output.affine,
    snakemake.output.warp,
    resolution=snakemake.params.resolution,
    seed=snakemake.params.seed,
    threads=snakemake.threads,
)
