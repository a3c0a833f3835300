"""Adapter: the privacy gate's decision and findings as a TSV in the report folder."""
from neurofuse.privacy.gate import write_findings_table
from neurofuse.workflow import run_logged

run_logged(snakemake.log[0], write_findings_table, snakemake.input.gate, snakemake.output.tsv)
