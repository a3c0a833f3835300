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

from neurofuse import __version__
from neurofuse.bids.index import DatasetIndex, Run
from neurofuse.io import atomic_write_text

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


def _html(index: DatasetIndex, table: pd.DataFrame) -> str:
    e = escape
    n_pairs = len(index.paired_runs())
    facts = [
        ("Dataset", index.name or "(unnamed)"),
        ("Location", index.bids_dir),
        ("Subjects", str(len(index.subjects))),
        ("Sessions", ", ".join(index.sessions) or "none"),
        ("Tasks", ", ".join(index.tasks) or "none"),
        ("BOLD runs", str(len(index.bold_runs()))),
        ("EEG runs", str(len(index.eeg_runs()))),
        ("EEG-BOLD pairs", str(n_pairs)),
    ]
    head = "".join(f"<th title='{e(COLUMNS[c])}'>{e(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in row) + "</tr>" for row in table.itertuples(index=False)
    )
    warnings = "".join(f"<li>{e(w)}</li>" for w in index.warnings) or "<li>none</li>"
    fact_rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts)
    legend = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in COLUMNS.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>NeuroFuse dataset summary: {e(index.name or index.bids_dir)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }}
thead th {{ background: #eef; position: sticky; top: 0; }}
.warnings li {{ color: #8a4b00; }}
dt {{ font-weight: bold; float: left; clear: left; width: 12em; }}
dd {{ margin-left: 13em; }}
</style></head><body>
<h1>Dataset summary</h1>
<table class="facts">{fact_rows}</table>
<h2>Warnings</h2><ul class="warnings">{warnings}</ul>
<h2>Runs</h2>
<table class="runs"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Columns</h2><dl>{legend}</dl>
<p><small>NeuroFuse {e(__version__)}</small></p>
</body></html>
"""


def write_dataset_summary(index_json: str | Path, *, html: str | Path, tsv: str | Path) -> pd.DataFrame:
    """Write the summary of the indexed dataset as TSV and as a self-contained HTML page."""
    index = DatasetIndex.from_json(index_json)
    table = summary_table(index)
    atomic_write_text(tsv, table.to_csv(sep="\t", index=False, lineterminator="\n"))
    atomic_write_text(html, _html(index, table))
    return table
