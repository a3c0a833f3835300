"""TSV files: identifying columns of participants/sessions/scans tables, and values anywhere.

In ``participants.tsv``, ``sessions.tsv`` and ``scans.tsv`` a column is flagged by its
name (names, IDs, birth dates, contact details), by its values (dates after 1925, ages
of 89 and over — BIDS recommends coding those as ``89+`` — e-mail/phone numbers) and as
free text (a ``notes``/``comments`` column, or long multi-word values). In every other
TSV (events, channels ...) only values are checked. One finding per column.

Cleaning (:func:`clean_table`): identifying and free-text columns are dropped, date
columns are shifted with each row's subject offset, ages of 89 and over become ``89+``,
e-mail/phone/dates inside other text are redacted.

Why the ``csv`` module and plain lists, not pandas: a dataset has one small TSV per
run (events, channels) and per session (scans); pandas costs about 1.4 ms to read one
and about 10 ms to run the column checks through its string methods (measured on
the 1,000-subject tree of ``benchmarks/bench_privacy.py``), 20-50 times the cost of
the same checks on Python lists. A BIDS TSV is plain tab-separated text with a header
row (no quoting), which is exactly what ``csv.reader(delimiter="\t")`` reads.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from neurofuse.errors import NeuroFuseError
from neurofuse.io import atomic_write_text
from neurofuse.privacy.text import (
    EMAIL,
    PHONE,
    SSN,
    column_rule,
    describe_dates,
    find_dates,
    is_free_text_column,
    redact_text,
    unshifted,
)

PARTICIPANT_TABLES = re.compile(r"(^participants|_sessions|_scans)\.tsv$")
_AGE = re.compile(r"^age(_?(at|years|yrs).*)?$", re.IGNORECASE)
_MISSING = {"", "n/a", "na", "nan"}
_LABEL_COLUMNS = {"participant_id", "session_id", "filename"}


@dataclass(frozen=True)
class ColumnHit:
    column: str
    severity: str
    found: str
    action: str
    op: str  # drop | shift | age | redact


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]

    def column(self, name: str) -> list[str]:
        i = self.columns.index(name)
        return [row[i] if i < len(row) else "" for row in self.rows]

    def to_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_NONE, escapechar="\\")
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return buffer.getvalue()


def read_table(path: str | Path) -> Table:
    """Read a BIDS TSV as text; :class:`NeuroFuseError` naming the file when unreadable."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError as err:
        raise NeuroFuseError(f"not UTF-8 text (byte {err.start}): binary data in a TSV file?", path,
                             "replace it with a tab-separated text file") from None
    except csv.Error as err:
        raise NeuroFuseError(f"not a readable TSV ({err})", path, "fix the table: tab-separated text") from None
    rows = [row for row in rows if row]
    if not rows:
        return Table([], [])
    if any("\x00" in cell for row in rows for cell in row):
        raise NeuroFuseError("binary data (NUL bytes) in a TSV file", path, "replace it with a tab-separated text file")
    return Table(rows[0], rows[1:])


def _present(values: list[str]) -> list[str]:
    return [v for v in values if v.strip().lower() not in _MISSING]


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def assess_column(name: str, values: list[str], *, participant_table: bool) -> list[ColumnHit]:
    """Findings of one column (text cells)."""
    values = _present(values)
    if not values:
        return []
    rows = len(values)
    if participant_table:
        rule = column_rule(name)
        if rule is not None and name != "participant_id":
            return [ColumnHit(name, rule.severity, f"{rule.what} in {rows} rows",
                              "remove the column (neurofuse deidentify does)", "drop")]
        if _AGE.match(name):
            old = sum(1 for v in values if (n := _number(v)) is not None and n >= 89)
            if old:
                return [ColumnHit(name, "medium", f"{old} of {rows} ages are 89 or over",
                                  "code them as 89+, as BIDS recommends (neurofuse deidentify does)", "age")]
            return []
    if name in _LABEL_COLUMNS or all(_number(v) is not None for v in values):
        return []  # labels and file names: their dates are reported once, by the file-name check
    dated = [unshifted(find_dates(v, compact=participant_table)) for v in values]
    n_dated = sum(1 for d in dated if d)
    hits: list[ColumnHit] = []
    contact = sum(1 for v in values if EMAIL.search(v) or SSN.search(v) or PHONE.search(redact_text(v)))
    if contact:
        hits.append(ColumnHit(name, "high", f"e-mail, phone or social security numbers in {contact} rows",
                              "remove them (neurofuse deidentify does)", "redact"))
    if n_dated:
        years = describe_dates(d for ds in dated for d in ds)
        whole = n_dated == rows and max(len(v) for v in values) <= 32
        hits.append(ColumnHit(name, "medium", f"dates ({years}) in {n_dated} rows",
                              "shift them per subject to 1925 or earlier, as BIDS recommends (neurofuse deidentify does)"
                              if whole else "remove them (neurofuse deidentify does)", "shift" if whole else "redact"))
    if participant_table and not hits and _free_text(name, values):
        hits.append(ColumnHit(name, "low", f"free text in {rows} rows: check what it says",
                              "remove the column (neurofuse deidentify does)", "drop"))
    return hits


def _free_text(name: str, values: list[str]) -> bool:
    if is_free_text_column(name):
        return True
    long = sum(1 for v in values if len(v) > 20 and len(v.split()) >= 3)
    return long >= max(1, len(values) / 2)


def scan_table(path: str | Path) -> list[tuple[str, str, str, str]]:
    table = read_table(path)
    participant_table = bool(PARTICIPANT_TABLES.search(Path(path).name))
    items = []
    for name in table.columns:
        for hit in assess_column(name, table.column(name), participant_table=participant_table):
            items.append((f"column '{hit.column}'", hit.severity, hit.found, hit.action))
    return items


def clean_table(src: str | Path, dst: str | Path, shift: Callable[[str, str | None], str | None],
                row_subject: Callable[[dict[str, str]], str | None]) -> list[str]:
    """Write ``src`` to ``dst`` without its findings; return the changes.

    ``row_subject(row)`` names the subject a row belongs to; ``shift(value, subject)``
    moves the dates in ``value`` by that subject's offset (``None``: cannot, the cell
    becomes ``n/a``).
    """
    table = read_table(src)
    participant_table = bool(PARTICIPANT_TABLES.search(Path(src).name))
    changes: list[str] = []
    for name in list(table.columns):
        for hit in assess_column(name, table.column(name), participant_table=participant_table):
            if name not in table.columns:
                break
            i = table.columns.index(name)
            if hit.op == "drop":
                del table.columns[i]
                for row in table.rows:
                    del row[i:i + 1]
                changes.append(f"dropped column {name}")
                continue
            for row in table.rows:
                if i >= len(row) or row[i].strip().lower() in _MISSING:
                    continue
                if hit.op == "age":
                    if (n := _number(row[i])) is not None and n >= 89:
                        row[i] = "89+"
                elif hit.op == "shift":
                    moved = shift(row[i], row_subject(dict(zip(table.columns, row))))
                    row[i] = "n/a" if moved is None else moved
                else:
                    row[i] = redact_text(row[i], compact_dates=participant_table)
            changes.append({"age": f"coded ages of 89 and over in {name} as 89+", "shift": f"shifted dates in {name}"}
                           .get(hit.op, f"redacted {name}"))
    atomic_write_text(dst, table.to_text())
    return changes
