"""One HTML report per subject (``report/sub-<label>.html``), as fMRIPrep writes them.

For every run of the subject: a table of the numbers that matter (BOLD volumes, TR,
head motion; EEG R-peaks, heart rate, bad channels, ICA components removed and why),
then the quality-control figures with a caption that says what to look for, then the
run's EEG-informed GLM when the fusion stage made it. Only what exists is shown: an
EEG-only run has no fMRI section, a run without fusion outputs no Fusion section.

The function takes the list of files to show (the rule passes them); it never globs
the results folder.
"""

from __future__ import annotations

import os
from collections import defaultdict
from html import escape
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from neurofuse.bids.index import DatasetIndex, Run
from neurofuse.errors import NeuroFuseError
from neurofuse.io import atomic_write_text
from neurofuse.naming import run_prefix
from neurofuse.report.figures import CAPTIONS_DIR, RUN_FIGURES, render_figures
from neurofuse.report.html import (
    Section,
    anchor,
    facts_table,
    name_key,
    page,
    read_json,
)

#: Non-figure inputs by (desc, suffix, extension).
CONFOUNDS = ("confounds", "timeseries", ".tsv")
CONFOUNDS_JSON = ("confounds", "timeseries", ".json")
GRADIENT_LOG = ("gradient", "log", ".json")
BCG_LOG = ("bcg", "log", ".json")
CLEAN_LOG = ("clean", "log", ".json")

Facts = list[tuple[str, str | list[str]]]
RunFiles = dict[tuple[str | None, str, str], Path]


def _files_by_run(files: Iterable[str | os.PathLike], runs: Mapping[str, Run], subject: str) -> dict[str, RunFiles]:
    known = {CONFOUNDS, CONFOUNDS_JSON, GRADIENT_LOG, BCG_LOG, CLEAN_LOG}
    known |= {key for figures in RUN_FIGURES.values() for fig in figures for key in fig.file_keys}
    by_run: dict[str, RunFiles] = defaultdict(dict)
    for path in files:
        entities, suffix, ext = name_key(path)
        run_id = run_prefix(entities)
        key = (entities.get("desc"), suffix, ext)
        if run_id not in runs:
            raise NeuroFuseError(f"the file belongs to no run of sub-{subject} in the dataset index", path,
                                 "pass only this subject's outputs")
        if key not in known:
            raise NeuroFuseError("the subject report does not know this kind of file", path,
                                 "pass figures, confounds TSVs and EEG step logs only")
        by_run[run_id][key] = Path(path)
    return by_run


# --- numbers -------------------------------------------------------------------------

def read_confounds(path: str | os.PathLike) -> pd.DataFrame:
    """The confounds TSV, checked for the columns the report reads."""
    try:
        table = pd.read_csv(path, sep="\t", na_values="n/a")
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise NeuroFuseError(f"cannot read the confounds table ({err})", path,
                             "re-run fmri_compute_confounds") from None
    if "framewise_displacement" not in table.columns:
        raise NeuroFuseError("the confounds table has no framewise_displacement column", path,
                             "re-run fmri_compute_confounds")
    return table


def _outlier_rule(sidecar: str | os.PathLike | None, columns: list[str]) -> Facts:
    """The confounds sidecar's description of the spike regressors, e.g. ``FD > 0.5 mm or …``."""
    if sidecar is None or not columns:
        return []
    description = read_json(sidecar, "confounds sidecar").get(columns[0], {}).get("Description")
    return [("Motion outlier rule", description)] if description else []


def bold_facts(run: Run, files: RunFiles) -> Facts:
    """BOLD rows of a run's summary table (with units)."""
    bold = run.bold
    tr = bold.repetition_time
    if CONFOUNDS not in files:
        volumes = [("BOLD volumes", f"{bold.n_volumes} volumes ({bold.n_volumes * tr:g} s)")] if bold.n_volumes else []
        return volumes + [("Repetition time (TR)", f"{tr:g} s")]
    table = read_confounds(files[CONFOUNDS])
    n = len(table)
    fd = table["framewise_displacement"]
    worst = int(fd.idxmax()) if fd.notna().any() else None
    outliers = [c for c in table.columns if c.startswith("motion_outlier")]
    return [
        ("BOLD volumes", f"{n} volumes ({n * tr:g} s)"),
        ("Repetition time (TR)", f"{tr:g} s"),
        ("Framewise displacement, mean", "n/a" if worst is None else f"{fd.mean():.3f} mm"),
        ("Framewise displacement, max",
         "n/a" if worst is None else f"{fd[worst]:.3f} mm (volume {worst}, t = {worst * tr:g} s)"),
        ("Motion outliers", f"{len(outliers)} of {n} volumes ({100 * len(outliers) / max(n, 1):.1f} %)"),
    ] + _outlier_rule(files.get(CONFOUNDS_JSON), outliers)


def gradient_facts(log: Mapping[str, Any]) -> Facts:
    epoch = log.get("epoch", "slice")
    return [
        ("Scanner volume markers in the EEG", f"{log['n_volumes']} volumes"),
        (f"Gradient artifact repetition rate ({epoch} rate)", f"{log['artifact_repetition_hz']:.2f} Hz"),
        ("Gradient artifact epochs corrected",
         f"{log['n_epochs_corrected']} of {log['n_epochs']} {epoch} epochs ({log['method']})"),
        ("EEG sampling rate after gradient removal", f"{log['sfreq_out']:g} Hz"),
    ]


def bcg_facts(log: Mapping[str, Any]) -> Facts:
    channel = log.get("ecg_channel")
    rows = [
        ("R-peaks found", f"{log['n_rpeaks']} R-peaks" + (f" in channel {channel}" if channel else "")),
        ("Heart rate (median)", f"{log['heart_rate_bpm_median']:.1f} bpm"),
    ]
    rr = log.get("rr_s")
    if rr:
        rows.append(("RR interval range", f"{1000 * rr['min']:.0f} to {1000 * rr['max']:.0f} ms"))
    rows.append(("BCG removal method", str(log["method"])))
    return rows


def _channels(names: Iterable[str]) -> str:
    names = list(names)
    return ", ".join(names) if names else "none"


def _bad_channels(log: Mapping[str, Any]) -> str:
    bads = log.get("bad_channels", {})
    found = [f"{name} ({why})" for why, names in bads.items() for name in names]
    if not found:
        return "none"
    return f"{len(found)} channels: {', '.join(found)}; interpolated: {_channels(log.get('interpolated', []))}"


def _removal_reason(reason: str, k: int, ica: Mapping[str, Any]) -> str:
    """Why component ``k`` was removed, from one entry of the log's ``reasons``."""
    if reason.startswith("iclabel:"):
        prob = {c["index"]: c["probability"] for c in ica.get("components", [])}.get(k)
        threshold = ica.get("iclabel_threshold")
        p = f", p = {prob:.2f}" if prob is not None else ""
        limit = f" (threshold {threshold:.2f})" if threshold is not None else ""
        return f"ICLabel class “{reason.split(':', 1)[1]}”{p}{limit}"
    # The logged eog/ecg scores are the signed maximum over channels, not the score that
    # crossed the threshold, so the reason is given without a number.
    kind = {"eog-correlation": "EOG", "ecg-correlation": "ECG"}.get(reason)
    return f"correlates with the {kind} channel (MNE find_bads_{kind.lower()})" if kind else reason


def ica_removed(ica: Mapping[str, Any]) -> list[str]:
    """One line per removed ICA component: its index and why it was removed."""
    reasons = ica.get("reasons", {})
    lines = []
    for k in ica.get("exclude", []):
        why = "; ".join(_removal_reason(r, k, ica) for r in reasons.get(str(k), []))
        lines.append(f"IC{k:02d}: {why}" if why else f"IC{k:02d}")
    return lines


def clean_facts(log: Mapping[str, Any]) -> Facts:
    low, high = log.get("band_hz", [None, None])
    band = "none"
    if low and high:
        band = f"{low:g} to {high:g} Hz"
    elif low or high:
        band = f"high-pass at {low:g} Hz" if low else f"low-pass at {high:g} Hz"
    notch = ", ".join(f"{f:g}" for f in log.get("notch_hz", []))
    rows = [
        ("Band-pass filter", band),
        ("Line-noise notch", f"{notch} Hz" if notch else "none"),
        ("Bad channels", _bad_channels(log)),
        ("EEG reference", str(log.get("reference", "n/a"))),
    ]
    ica = log.get("ica")
    if ica:
        removed = ica_removed(ica)
        rows.append(("ICA", f"{ica['n_components']} components ({ica['method']}), {len(removed)} removed"))
        rows.append(("ICA components removed", removed))
    return rows


def eeg_facts(run: Run, files: RunFiles) -> Facts:
    eeg = run.eeg
    duration = f", {eeg.duration:.1f} s" if eeg.duration else ""
    rows = [("EEG recording", f"{eeg.format}, {eeg.sampling_frequency:g} Hz{duration}")]
    for key, facts in ((GRADIENT_LOG, gradient_facts), (BCG_LOG, bcg_facts), (CLEAN_LOG, clean_facts)):
        if key in files:
            log = read_json(files[key], f"{key[0]} step log")
            try:
                rows += facts(log)
            except (KeyError, TypeError, ValueError) as err:
                raise NeuroFuseError(f"the {key[0]} step log lacks a field the report needs ({err})", files[key],
                                     "re-run the EEG step that writes it") from None
    return rows


def run_summary(run: Run, files: RunFiles) -> str:
    """The numbers of one run: a BOLD table and an EEG table, for what the run has."""
    tables = []
    if run.bold:
        tables.append(f"<h4>BOLD</h4>{facts_table(bold_facts(run, files))}")
    if run.eeg:
        tables.append(f"<h4>EEG</h4>{facts_table(eeg_facts(run, files))}")
    return '<div class="summary">' + "".join(tables) + "</div>"


# --- page ----------------------------------------------------------------------------

def run_sections(run: Run, files: RunFiles, page_path: Path, captions_dir: Path) -> list[Section]:
    """The fMRI, EEG and Fusion parts of a run: only the figures that exist."""
    sections = []
    for part, figures in RUN_FIGURES.items():
        shown = render_figures(figures, files, page_path, captions_dir)
        if shown:
            sections.append(Section(anchor(f"{run.id}-{part}"), part, shown))
    return sections


def _pairing(run: Run) -> str:
    if run.bold and run.eeg:
        return f"EEG and BOLD recorded together (EEG-BOLD pairing: {run.eeg.pairing})"
    return "EEG only" if run.eeg else "BOLD only"


def subject_page(index: DatasetIndex, subject: str, files: Iterable[str | os.PathLike], page_path: Path,
                 captions_dir: Path) -> str:
    runs = {run.id: run for run in index.runs if run.subject == subject}
    if not runs:
        raise NeuroFuseError(f"subject {subject} is not in the dataset index", None,
                             f"use one of: {', '.join(index.subjects)}")
    by_run = _files_by_run(files, runs, subject)
    sections = [
        Section(
            anchor(run.id), run.id,
            f"<p>{_pairing(run)}.</p>" + run_summary(run, by_run.get(run.id, {})),
            run_sections(run, by_run.get(run.id, {}), page_path, captions_dir),
        )
        for run in runs.values()
    ]
    lead = (f"{len(runs)} run{'s' if len(runs) > 1 else ''} of subject {subject} in dataset "
            f"“{escape(index.name or index.bids_dir)}”. Click a figure to open it at full size. "
            '<a href="group.html">Group report</a>.')
    return page(f"NeuroFuse report: sub-{subject}", lead, sections)


def write_subject_report(
    index_json: str | os.PathLike,
    html: str | os.PathLike,
    *,
    subject: str,
    files: Iterable[str | os.PathLike] = (),
    captions_dir: str | os.PathLike = CAPTIONS_DIR,
) -> Path:
    """Write the HTML report of one subject.

    ``files``: the subject's figures, confounds TSVs and EEG step logs (``desc-gradient``,
    ``desc-bcg``, ``desc-clean`` ``_log.json``), recognised by their BIDS names; figures
    are linked relative to ``html``. ``captions_dir`` holds the ``.rst`` captions.
    """
    index = DatasetIndex.from_json(index_json)
    html = Path(html)
    atomic_write_text(html, subject_page(index, subject, files, html, Path(captions_dir)))
    return html
