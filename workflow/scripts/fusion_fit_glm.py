"""Adapter: EEG-informed GLM of one run (z-map per band)."""
from neurofuse.fusion.steps import glm_step
from neurofuse.workflow import run_logged

run_logged(
    snakemake.log[0],
    glm_step,
    snakemake.input.bold,
    snakemake.input.mask,
    snakemake.input.bands,
    snakemake.input.confounds,
    bands=snakemake.params.bands,
    zmaps=list(snakemake.output.zmaps),
    effects=list(snakemake.output.effects),
    variances=list(snakemake.output.variances),
    design=snakemake.output.design,
    figure=snakemake.output.figure,
    tr=snakemake.params.tr,
    glm=snakemake.params.glm,
    confounds=snakemake.params.confounds,
    sources=snakemake.params.sources,
)
