"""Files that should not be shared as they are: raw DICOM, Philips PAR, photos, head shapes.

BIDS datasets often keep the scanner's files in ``sourcedata/``: a DICOM file carries
the full patient header (recognised by its ``DICM`` preamble, PS3.10 §7.1) and a Philips
PAR header names the patient and the exam date (parsed with ``nibabel.parrec``).
BIDS ``_photo`` images may show the face; ``_headshape`` digitisations can rebuild it.
File and folder names are checked for dates (``ses-20210301``). Plain-text files
(stimulus logs, ``.csv``/``.txt``/``.log``) are checked line by line for labelled names,
e-mail and phone numbers and dates; documentation (``README``, ``CHANGES``, ``.md``) only
for labelled names, phone and social security numbers (the authors' e-mail addresses and
the study's dates belong there).
"""

from __future__ import annotations

import re
from pathlib import Path

from neurofuse.privacy.text import classify_text, describe_dates, find_dates, mask, redact_text, unshifted

DICOM_SUFFIXES = (".dcm", ".ima", ".dicom")
PHOTO = re.compile(r"_photo\.(jpe?g|png|tiff?)$", re.IGNORECASE)
HEADSHAPE = re.compile(r"_headshape\.", re.IGNORECASE)
DROP = "keep it out of the shared copy (neurofuse deidentify leaves it out)"


def is_dicom(path: str | Path) -> bool:
    """True for a DICOM Part 10 file (``DICM`` at byte 128)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def scan_dicom(path: str | Path) -> list[tuple[str, str, str, str]]:
    return [("(file)", "high", "a DICOM file: its header holds the patient's name, ID, birth date and the "
             "scan dates", DROP)]


def scan_par(path: str | Path) -> list[tuple[str, str, str, str]]:
    from nibabel.parrec import parse_PAR_header

    with open(path, encoding="latin-1") as handle:
        general, _ = parse_PAR_header(handle)
    items = []
    name = str(general.get("patient_name") or "").strip()
    if name:
        items.append(("Patient name", "high", f"a name: {mask(name)}", DROP))
    dates = unshifted(find_dates(str(general.get("exam_date") or "").replace(".", "-", 2)))
    if dates:
        items.append(("Examination date/time", "medium", f"the exam date ({describe_dates(dates)})", DROP))
    return items


def scan_photo(path: str | Path) -> list[tuple[str, str, str, str]]:
    return [("(file)", "medium", "a photo (BIDS _photo) that may show the participant's face", DROP)]


def scan_headshape(path: str | Path) -> list[tuple[str, str, str, str]]:
    return [("(file)", "low", "a head-shape digitisation: dense points can rebuild the face", "check how dense it is")]


def scan_name(rel: str) -> list[tuple[str, str, str, str]]:
    """Dates in file and folder names (``sub-19510502``, ``ses-20210301``)."""
    dates = unshifted(d for part in rel.split("/") for d in find_dates(part, compact=True))
    if dates:
        return [("(file name)", "medium", f"a date in the name ({describe_dates(dates)})",
                 "rename the subject/session/file (neurofuse deidentify does not rename)")]
    return []


TEXT_SUFFIXES = (".txt", ".log", ".csv", ".md", ".rst")
DOC_NAMES = re.compile(r"^(readme|changes|changelog|license|licence|citation)(\.(md|txt|rst))?$", re.IGNORECASE)
MAX_TEXT_BYTES = 20 * 1024 * 1024


def is_documentation(rel: str) -> bool:
    return bool(DOC_NAMES.match(rel.rsplit("/", 1)[-1])) or rel.lower().endswith((".md", ".rst"))


def _text_hits(line: str, documentation: bool) -> list[tuple[str, str]]:
    hits = [(hit.severity, hit.what) for hit in classify_text(line)]
    if documentation:
        hits = [(severity, what) for severity, what in hits if what != "an e-mail address" and not what.startswith("a date")]
    return hits


def scan_text(path: str | Path, rel: str) -> list[tuple[str, str, str, str]]:
    """One finding per kind of hit in a plain-text file, with the number of lines."""
    with open(path, "rb") as handle:
        raw = handle.read(MAX_TEXT_BYTES)
    if b"\x00" in raw[:8192]:
        return []  # binary, not text
    text = raw.decode("utf-8", errors="replace")
    documentation = is_documentation(rel)
    counts: dict[tuple[str, str], int] = {}
    for line in text.splitlines():
        for hit in _text_hits(line, documentation):
            counts[hit] = counts.get(hit, 0) + 1
    return [("text", severity, f"{what} in {n} lines", "remove it (neurofuse deidentify does)")
            for (severity, what), n in sorted(counts.items())]


def clean_text(src: str | Path, dst: str | Path, rel: str) -> list[str]:
    """Write ``src`` with the flagged parts of each line redacted (e-mail kept in documentation)."""
    from neurofuse.io import atomic_write_text

    with open(src, "rb") as handle:
        text = handle.read().decode("utf-8", errors="replace")
    documentation = is_documentation(rel)
    lines, changed = [], 0
    for line in text.splitlines(keepends=True):
        hits = _text_hits(line, documentation)
        if hits:
            new = redact_text(line)
            if documentation:  # keep the authors' addresses and the study's dates: redact only what was found
                new = redact_text(line.replace("@", "\x00"), compact_dates=False)
                new = new.replace("\x00", "@")
            if new != line:
                changed += 1
                line = new
        lines.append(line)
    atomic_write_text(dst, "".join(lines))
    return [f"redacted {changed} lines"]
