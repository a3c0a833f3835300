"""Adapter: the methods text (report/methods.md) and CITATION.md of the run."""
from neurofuse.report.methods import write_methods
from neurofuse.workflow import run_logged

run_logged(
    snakemake.log[0],
    write_methods,
    snakemake.params.settings,
    snakemake.input.index,
    snakemake.output.methods,
    snakemake.output.citation,
)
