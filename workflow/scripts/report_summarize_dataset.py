"""Adapter: dataset summary (HTML + TSV) from the index."""
from neurofuse.report.summary import write_dataset_summary
from neurofuse.workflow import run_logged

run_logged(
    snakemake.log[0],
    write_dataset_summary,
    snakemake.input.index,
    html=snakemake.output.html,
    tsv=snakemake.output.tsv,
)
