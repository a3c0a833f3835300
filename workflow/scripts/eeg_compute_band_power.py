"""Adapter: band power per BOLD volume (raw and HRF-convolved) with its sidecar."""
from neurofuse.eeg.bandpower import band_power_file
from neurofuse.workflow import run_logged

timing = snakemake.params.timing
run_logged(
    snakemake.log[0],
    band_power_file,
    snakemake.input.eeg,
    snakemake.output.tsv,
    snakemake.output.json,
    bands={name: tuple(edges) for name, edges in snakemake.params.bands.items()},
    volume_marker=snakemake.params.volume_marker,
    tr=timing["tr"],
    n_volumes=timing["n_volumes"],
    window_s=snakemake.params.window_s,
    first_marker=snakemake.params.dummy_scans if snakemake.params.volume_marker else 0,
)
