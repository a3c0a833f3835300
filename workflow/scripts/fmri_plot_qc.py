"""Adapter: fMRI QC figures (motion + FD, carpet, registration)."""
from neurofuse.fmri.steps import plot_fmri_qc
from neurofuse.workflow import run_logged

run_logged(
    snakemake.log[0],
    plot_fmri_qc,
    snakemake.input.confounds,
    snakemake.input.bold,
    snakemake.input.mask,
    snakemake.input.boldref,
    out_motion=snakemake.output.motion,
    out_carpet=snakemake.output.carpet,
    out_registration=snakemake.output.registration,
    tr=snakemake.params.tr,
    fd_threshold=snakemake.params.fd_threshold,
    resolution=snakemake.params.resolution,
)
