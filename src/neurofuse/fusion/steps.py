"""Workflow steps of the fusion stage: what the rules' scripts call, one function each.

Each step logs what it did (one JSON line at the end) to the job log; timings stay in the
log so that the outputs themselves are byte-reproducible.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from neurofuse.fusion.glm import design_dof, first_level, group_level
from neurofuse.fusion.train import RunInput, TrainConfig, fit_fusion

__all__ = ["glm_step", "group_glm_step", "train_step"]

LOG = logging.getLogger("neurofuse.fusion")


def _done(result: dict[str, Any]) -> dict[str, Any]:
    LOG.info(json.dumps(result, sort_keys=True, default=str))
    return result


def _by_band(paths: Sequence[str], bands: Sequence[str]) -> dict[str, str]:
    return dict(zip(bands, paths, strict=True))


def glm_step(bold: str, mask: str, bands_tsv: str, confounds_tsv: str, *, bands: Sequence[str],
             zmaps: Sequence[str], effects: Sequence[str], variances: Sequence[str], design: str, figure: str,
             tr: float, glm: Mapping[str, Any], confounds: Sequence[str], sources: Sequence[str] = ()) -> dict[str, Any]:
    """``fusion_fit_glm``: first-level z-maps per band for one run."""
    return _done(first_level(
        bold, mask, bands_tsv, confounds_tsv, tr=tr, bands=bands, zmaps=_by_band(zmaps, bands),
        effects=_by_band(effects, bands), variances=_by_band(variances, bands), design=design, figure=figure,
        regressor=glm["regressor"], confounds=confounds, smoothing_fwhm=glm["smoothing_fwhm"] or None,
        high_pass=glm["high_pass"], noise_model=glm["noise_model"], ar_smoothing_fwhm=glm["ar_smoothing_fwhm"] or None,
        sources=sources,
    ))


def group_glm_step(effects: Sequence[str], variances: Sequence[str], masks: Sequence[str], designs: Sequence[str], *,
                   bands: Sequence[str],
                   subjects: Sequence[str], zmaps: Sequence[str], thresholded: Sequence[str], figure: str,
                   glm: Mapping[str, Any]) -> dict[str, Any]:
    """``fusion_combine_glm``: group z-maps per band; ``effects``/``variances`` are band-major lists."""
    n = len(subjects)
    eff = {band: list(effects[i * n:(i + 1) * n]) for i, band in enumerate(bands)}
    var = {band: list(variances[i * n:(i + 1) * n]) for i, band in enumerate(bands)}
    return _done(group_level(
        eff, var, subjects, None, zmaps=_by_band(zmaps, bands), thresholded=_by_band(thresholded, bands),
        figure=figure, group_effects=glm["group_effects"], height_control=glm["height_control"],
        alpha=glm["alpha"], cluster_threshold=glm["cluster_threshold"], mask_paths=masks,
        dofs=[design_dof(path) for path in designs],
    ))


def train_config(model: Mapping[str, Any], seed: int, high_pass: float) -> TrainConfig:
    """:class:`TrainConfig` from the ``fusion.model`` config section."""
    return TrainConfig(
        arch=model["arch"], window=model["window"], width=model["width"], embedding=model["embedding"],
        layers=model["layers"], dropout=model["dropout"], n_regions=model["n_regions"],
        lr=model["learning_rate"], weight_decay=model["weight_decay"], batch_size=model["batch_size"],
        max_epochs=model["max_epochs"], patience=model["patience"], nce_weight=model["nce_weight"],
        temperature=model["temperature"], ridge=model["ridge"], folds=model["folds"], high_pass=high_pass,
        seed=seed,
    )


def train_step(*, runs: Sequence[str], subjects: Sequence[str], bold: Sequence[str], masks: Sequence[str],
               bands_tsv: Sequence[str], confounds_tsv: Sequence[str], trs: Sequence[float], bands: Sequence[str],
               model: Mapping[str, Any], seed: int, high_pass: float, confounds: Sequence[str],
               maps: Sequence[str], subject_maps: Sequence[str], **outputs: str) -> dict[str, Any]:
    """``fusion_train_model``: train with held-out subjects, write heatmaps, model and model card.

    ``maps`` are the group heatmap paths, the all-band map first then one per band;
    ``subject_maps`` the per-subject stacks in the same order.
    """
    inputs = [RunInput(*row) for row in zip(runs, subjects, bold, masks, bands_tsv, confounds_tsv, trs, strict=True)]
    cfg = train_config(model, seed, high_pass)
    names = ["fusion", *bands]
    return _done(fit_fusion(inputs, bands, cfg, maps=dict(zip(names, maps, strict=True)),
                            subject_maps_out=dict(zip(names, subject_maps, strict=True)), log=LOG.info,
                            confounds=confounds, **outputs))
