"""Adapter: band-pass and notch, bad channels, ICA with ICLabel and EOG/ECG."""
from neurofuse.eeg.clean import clean_eeg_file
from neurofuse.workflow import run_logged

run_logged(
    snakemake.log[0],
    clean_eeg_file,
    snakemake.input.eeg,
    snakemake.output.eeg,
    log_json=snakemake.output.log,
    qc_png=snakemake.output.qc,
    ica_png=snakemake.output.ica,
    l_freq=snakemake.params.l_freq,
    h_freq=snakemake.params.h_freq,
    line_freq=snakemake.params.line_freq,
    ica_method=snakemake.params.ica_method,
    random_state=snakemake.params.seed,
)
