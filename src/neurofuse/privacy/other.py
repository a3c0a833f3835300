"""Files that should not be shared as they are: raw DICOM, Philips PAR, photos, head shapes.

BIDS datasets often keep the scanner's files in ``sourcedata/``: a DICOM file carries
the full patient header (recognised by its ``DICM`` preamble, PS3.10 §7.1) and a Philips
PAR header names the patient and the exam date (parsed with ``nibabel.parrec``).
BIDS ``_photo`` images may show the face; ``_headshape`` digitisations can rebuild it.
File and folder names are checked for dates (``ses-20210301``).
"""

from __future__ import annotations

import re
from pathlib import Path

from neurofuse.privacy.text import describe_dates, find_dates, mask, unshifted

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
