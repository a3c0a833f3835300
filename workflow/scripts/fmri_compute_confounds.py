"""Adapter: confounds TSV + JSON (motion, FD, DVARS, tissue signals, cosine, outliers) and the QC figures (motion + FD, carpet, registration)."""
from neurofuse.fmri.steps import confounds_and_qc_step
from neurofuse.workflow import run_logged

run_logged(
    snakemake.log[0],
    confounds_and_qc_step,
    snakemake.input.motion,
    snakemake.input.bold,
    snakemake.input.mask,
    snakemake.input.boldref,
    out_tsv=snakemake.output.tsv,
    out_json=snakemake.output.json,
    out_motion=snakemake.output.motion,
    out_carpet=snakemake.output.carpet,
    out_registration=snakemake.output.registration,
    tr=snakemake.params.tr,
    fd_threshold=snakemake.params.fd_threshold,
    dvars_threshold=snakemake.params.dvars_threshold,
    resolution=snakemake.params.resolution,
)
