"""Adapter: the group HTML report."""
from neurofuse.report.group import write_group_report
from neurofuse.workflow import run_logged

run_logged(
    snakemake.log[0],
    write_group_report,
    snakemake.input.index,
    snakemake.output.html,
    subject_reports=list(snakemake.input.subjects),
    files=list(snakemake.input.files),
    methods=snakemake.input.get("methods"),
    captions_dir=snakemake.params.captions,
    maps=list(zip(snakemake.params.map_paths, snakemake.input.maps)),
    maps_url=snakemake.params.maps_url,
    neuroglancer_json=snakemake.output.neuroglancer,
)
