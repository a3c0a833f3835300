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
)
