"""Adapter: scanner gradient artifact removal (AAS with sub-sample alignment)."""
from neurofuse.eeg.gradient import remove_gradient_artifact_file
from neurofuse.workflow import run_logged

timing = snakemake.params.timing
run_logged(
    snakemake.log[0],
    remove_gradient_artifact_file,
    snakemake.input.eeg,
    snakemake.output.eeg,
    log_json=snakemake.output.log,
    qc_png=snakemake.output.qc,
    volume_marker=snakemake.params.volume_marker,
    slice_times=timing["slice_times"],
    tr=timing["tr"],
    sfreq_out=snakemake.params.sfreq_out,
    window=snakemake.params.window,
    obs_components=snakemake.params.obs_components,
    obs_highpass=snakemake.params.obs_highpass,
)
