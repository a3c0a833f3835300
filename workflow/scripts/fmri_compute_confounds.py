"""Adapter: confounds TSV + JSON (motion, FD, DVARS, tissue signals, cosine, outliers)."""
from neurofuse.fmri.confounds import write_confounds
from neurofuse.workflow import run_logged

run_logged(
    snakemake.log[0],
    write_confounds,
    snakemake.input.motion,
    snakemake.output.tsv,
    out_json=snakemake.output.json,
    bold_file=snakemake.input.bold,
    mask_file=snakemake.input.mask,
    fd_threshold=snakemake.params.fd_threshold,
    dvars_threshold=snakemake.params.dvars_threshold,
    tr=snakemake.params.tr,
)
