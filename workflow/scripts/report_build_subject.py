"""Adapter: the HTML report of one subject."""
from neurofuse.report.subject import write_subject_report
from neurofuse.workflow import run_logged

run_logged(
    snakemake.log[0],
    write_subject_report,
    snakemake.input.index,
    snakemake.output.html,
    subject=snakemake.wildcards.subject,
    files=list(snakemake.input.files),
    captions_dir=snakemake.params.captions,
)
