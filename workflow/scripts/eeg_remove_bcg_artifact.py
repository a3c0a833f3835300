"""Adapter: R-peaks from the ECG and ballistocardiogram removal."""
from neurofuse.eeg.bcg import remove_bcg_artifact_file
from neurofuse.workflow import run_logged

run_logged(
    snakemake.log[0],
    remove_bcg_artifact_file,
    snakemake.input.eeg,
    snakemake.output.eeg,
    rpeaks_tsv=snakemake.output.rpeaks,
    log_json=snakemake.output.log,
    qc_png=snakemake.output.qc,
    rpeaks_png=snakemake.output.rpeaks_qc,
    method=snakemake.params.method,
    ecg_channel=snakemake.params.ecg_channel,
    missing_ecg=snakemake.params.missing_ecg,
)
