"""The dataset summary: every subject and run as the index sees it, as TSV and HTML.

This is the first page of the NeuroFuse report. It shows what the workflow will work
on before any processing: the runs, how EEG and BOLD were paired, TR, slices, EEG
sampling rate, durations and every warning the index raised.
"""

from __future__ import annotations

from html import escape
import math
from pathlib import Path

import pandas as pd

from neurofuse.bids.index import DatasetIndex, Run
from neurofuse.io import atomic_write_text
from neurofuse.report.html import Section, bullet_list, data_table, facts_table, page

COLUMNS = {
    "run": "Run (raw BIDS entities)",
    "subject": "Subject label",
    "session": "Session label (n/a without sessions)",
    "task": "Task label",
    "bold": "BOLD file, relative to the dataset",
    "eeg": "EEG file, relative to the dataset",
    "t1w": "T1w image used for this run",
    "pairing": "How the EEG run was paired with the BOLD run",
    "tr_s": "BOLD RepetitionTime (s)",
    "n_slices": "Slices per volume",
    "slice_timing": "Whether SliceTiming is known",
    "n_volumes": "BOLD volumes",
    "bold_duration_s": "BOLD duration: volumes x TR (s)",
    "eeg_format": "EEG file format",
    "eeg_sfreq_hz": "EEG sampling rate (Hz)",
    "eeg_duration_s": "EEG recording duration (s)",
    "eeg_volume_markers": "Scanner volume markers found in the EEG",
    "eeg_tr_s": "TR implied by the EEG volume markers (s)",
}


def _fmt(value, digits: int = 4):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return value


def run_row(run: Run) -> dict:
    """One summary row for a run."""
    bold, eeg = run.bold, run.eeg
    row = {
        "run": run.id,
        "subject": run.entities.get("sub"),
        "session": run.entities.get("ses"),
        "task": run.entities.get("task"),
        "bold": bold.path if bold else None,
        "eeg": eeg.path if eeg else None,
        "t1w": run.t1w,
        "pairing": eeg.pairing if (eeg and bold) else ("EEG only" if eeg else "BOLD only"),
        "tr_s": bold.repetition_time if bold else None,
        "n_slices": bold.n_slices if bold else None,
        "slice_timing": (bold.slice_timing is not None) if bold else None,
        "n_volumes": bold.n_volumes if bold else None,
        "bold_duration_s": bold.duration if bold else None,
        "eeg_format": eeg.format if eeg else None,
        "eeg_sfreq_hz": eeg.sampling_frequency if eeg else None,
        "eeg_duration_s": eeg.duration if eeg else None,
        "eeg_volume_markers": eeg.n_volume_markers if eeg else None,
        "eeg_tr_s": eeg.tr_from_markers if eeg else None,
    }
    return {key: _fmt(value) for key, value in row.items()}


def summary_table(index: DatasetIndex) -> pd.DataFrame:
    return pd.DataFrame([run_row(run) for run in index.runs], columns=list(COLUMNS))


def dataset_section(index: DatasetIndex, table: pd.DataFrame) -> Section:
    """The dataset facts, the index's warnings and one row per run (shared with the group report)."""
    facts = [
        ("Dataset", index.name or "(unnamed)"),
        ("Location", index.bids_dir),
        ("Subjects", str(len(index.subjects))),
        ("Sessions", ", ".join(index.sessions) or "none"),
        ("Tasks", ", ".join(index.tasks) or "none"),
        ("BOLD runs", str(len(index.bold_runs()))),
        ("EEG runs", str(len(index.eeg_runs()))),
        ("EEG-BOLD pairs", str(len(index.paired_runs()))),
    ]
    warnings = bullet_list((escape(w) for w in index.warnings), "warnings") if index.warnings else "<p>none</p>"
    legend = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in COLUMNS.items())
    return Section("dataset", "Dataset", facts_table(facts), [
        Section("warnings", "Warnings", warnings),
        Section("runs", "Runs", data_table(table, COLUMNS) + f'<dl class="legend">{legend}</dl>'),
    ])


def _html(index: DatasetIndex, table: pd.DataFrame) -> str:
    lead = "What the workflow works on, as the dataset index sees it, before any processing."
    return page(f"Dataset summary: {index.name or index.bids_dir}", lead, [dataset_section(index, table)])


def write_dataset_summary(index_json: str | Path, *, html: str | Path, tsv: str | Path) -> pd.DataFrame:
    """Write the summary of the indexed dataset as TSV and as a self-contained HTML page."""
    index = DatasetIndex.from_json(index_json)
    table = summary_table(index)
    atomic_write_text(tsv, table.to_csv(sep="\t", index=False, lineterminator="\n"))
    atomic_write_text(html, _html(index, table))
    return table
