"""Adapter: slice-timing correction (or a logged skip without SliceTiming)."""
from neurofuse.fmri.steps import correct_slice_timing_step
from neurofuse.workflow import run_logged

run_logged(
    snakemake.log[0],
    correct_slice_timing_step,
    snakemake.input.bold,
    snakemake.output.bold,
    snakemake.output.json,
    snakemake.params.metadata,
    ref_time=snakemake.params.ref_time,
    backend=snakemake.params.backend,
)
