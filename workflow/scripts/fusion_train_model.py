"""Adapter: train the deep fusion model (held-out subjects), write heatmaps and the model card."""
from neurofuse.fusion.steps import train_step
from neurofuse.workflow import run_logged

out = snakemake.output
run_logged(
    snakemake.log[0],
    train_step,
    runs=snakemake.params.runs,
    subjects=snakemake.params.subjects,
    bold=list(snakemake.input.bold),
    masks=list(snakemake.input.mask),
    bands_tsv=list(snakemake.input.bands),
    confounds_tsv=list(snakemake.input.confounds),
    trs=snakemake.params.trs,
    bands=snakemake.params.bands,
    model=snakemake.params.model,
    seed=snakemake.params.seed,
    high_pass=snakemake.params.high_pass,
    confounds=snakemake.params.confounds,
    maps=list(out.maps),
    subject_maps=list(out.subject_maps),
    model_path=out.model,
    card_json=out.card_json,
    card_md=out.card_md,
    history_tsv=out.history_tsv,
    curves_figure=out.curves_figure,
    maps_figure=out.maps_figure,
    checkpoint_dir=snakemake.params.checkpoint_dir,
    checkpoint_url=snakemake.params.checkpoint_url,
)
