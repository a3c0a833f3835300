"""Adapter: group EEG-informed GLM z-maps per band, thresholded as configured."""
from neurofuse.fusion.steps import group_glm_step
from neurofuse.workflow import run_logged

run_logged(
    snakemake.log[0],
    group_glm_step,
    list(snakemake.input.effects),
    list(snakemake.input.variances),
    list(snakemake.input.masks),
    list(snakemake.input.designs),
    bands=snakemake.params.bands,
    subjects=snakemake.params.subjects,
    zmaps=list(snakemake.output.zmaps),
    thresholded=list(snakemake.output.thresholded),
    figure=snakemake.output.figure,
    glm=snakemake.params.glm,
)
