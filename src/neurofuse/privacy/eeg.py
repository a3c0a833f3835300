"""EEG headers: BrainVision (.vhdr/.vmrk), EDF/BDF (+) and FIF — read without the signal.

BrainVision
    Plain INI-like text (decoded as :mod:`neurofuse.bids.markers` does). The
    measurement date is the date field of the ``New Segment`` marker in ``.vmrk``
    (``YYYYMMDDhhmmssµµµµµµ``, Brain Products' format); the rest of both files is
    checked for e-mail, phone numbers and dates (comments, marker descriptions).
    Cleaning rewrites the two text files only (dates shifted, the rest redacted); the
    binary ``.eeg`` is copied as it is. MNE cannot write BrainVision, and pybv would
    rewrite the signal.
EDF/BDF
    The first 256 bytes are a fixed-width ASCII header (EDF spec, Kemp 1992; EDF+, Kemp
    & Olivan 2003): ``patient`` (8–88: EDF+ ``code sex birthdate name``), ``recording``
    (88–168: EDF+ ``Startdate dd-MMM-yyyy admincode technician equipment``), ``startdate``
    (168–176, ``dd.mm.yy``). Reading 256 bytes is all the check needs (MNE's reader also
    parses every signal header); cleaning rewrites those 176 bytes in place in the copy,
    in EDF+'s anonymous form (``X X X X``, ``Startdate X X X X``, start date ``01.01.85``:
    EDF's clipping date), and leaves every signal byte as it was.
FIF
    ``mne.io.read_info`` (no data). Checked: ``meas_date``, ``subject_info`` (names,
    birthday, hospital ID), ``experimenter``, ``description``, ``proj_name``,
    ``device_info``, ``helium_info``, processing history. Cleaning: ``raw.anonymize``
    with the subject's ``daysback`` and the birthday removed, saved with MNE.
"""

from __future__ import annotations

import datetime as _dt
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from neurofuse.bids.markers import _decode
from neurofuse.errors import NeuroFuseError
from neurofuse.io import atomic_path, atomic_write_text, save_raw
from neurofuse.privacy.text import SHIFTED_YEAR_MAX, classify_text, mask, redact_text

EEG_SUFFIXES = (".vhdr", ".vmrk", ".edf", ".bdf", ".fif")
_NEW_SEGMENT = re.compile(r"^(Mk\d+=New Segment,[^,\n]*,[^,\n]*,[^,\n]*,[^,\n]*,)(\d{20})", re.MULTILINE | re.IGNORECASE)
_ANON_VALUES = {"", "x", "0", "mne_anonymize", "anonymized", "n/a", "none"}
SHIFT = "shift the date per subject to 1925 or earlier (neurofuse deidentify does)"
REMOVE = "remove it (neurofuse deidentify does)"


def _text_items(text: str, where: str) -> list[tuple[str, str, str, str]]:
    items = []
    for line in text.splitlines():
        if _NEW_SEGMENT.match(line):
            continue
        for hit in classify_text(line):
            items.append((where, hit.severity, f"{hit.what}: line {mask(line.strip(), 32)}", REMOVE))
    return items


def _segment_date(stamp: str) -> _dt.datetime | None:
    try:
        return _dt.datetime.strptime(stamp[:14], "%Y%m%d%H%M%S")
    except ValueError:
        return None  # "00000000000000000000" = no date


def read_text(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return _decode(handle.read())


def scan_brainvision(path: str | Path) -> list[tuple[str, str, str, str]]:
    text = read_text(path)
    items = []
    if str(path).lower().endswith(".vmrk"):
        for match in _NEW_SEGMENT.finditer(text):
            when = _segment_date(match.group(2))
            if when is not None and when.year > SHIFTED_YEAR_MAX:
                items.append(("New Segment date", "medium", f"the measurement date ({when.year})", SHIFT))
    return items + _text_items(text, "marker text" if str(path).lower().endswith(".vmrk") else "header text")


def clean_brainvision(src: str | Path, dst: str | Path, days: int | None) -> list[str]:
    """Rewrite a .vhdr/.vmrk with New Segment dates moved back ``days`` (``None``: cleared)."""
    text = read_text(src)
    changes = []

    def move(match: re.Match) -> str:
        when = _segment_date(match.group(2))
        if when is None or when.year <= SHIFTED_YEAR_MAX:
            return match.group(0)
        changes.append("shifted the New Segment date" if days is not None else "cleared the New Segment date")
        if days is None:
            return match.group(1) + "0" * 20
        return match.group(1) + (when - _dt.timedelta(days=days)).strftime("%Y%m%d%H%M%S") + match.group(2)[14:]

    text = _NEW_SEGMENT.sub(move, text)
    lines = []
    for line in text.splitlines(keepends=True):
        if not _NEW_SEGMENT.match(line) and classify_text(line):
            changes.append("redacted a line")
            line = redact_text(line)
        lines.append(line)
    atomic_write_text(dst, "".join(lines))
    return changes


# EDF / BDF -----------------------------------------------------------------------------
_EDF_FIELDS = {"patient": (8, 88), "recording": (88, 168), "startdate": (168, 176)}


def read_edf_header(path: str | Path) -> dict[str, str]:
    with open(path, "rb") as handle:
        head = handle.read(256)
    if len(head) < 256 or head[:8] not in (b"0       ", b"\xffBIOSEMI"):
        raise NeuroFuseError("not an EDF/BDF file (the 256-byte header is missing or has a wrong version field)",
                             path, "replace it with a valid EDF/BDF recording")
    return {name: head[a:b].decode("latin-1").strip() for name, (a, b) in _EDF_FIELDS.items()}


def _edf_start(value: str) -> _dt.date | None:
    try:
        day, month, yy = (int(v) for v in value.split("."))
        return _dt.date(1900 + yy if yy >= 85 else 2000 + yy, month, day)
    except ValueError:
        return None


def scan_edf(path: str | Path) -> list[tuple[str, str, str, str]]:
    header = read_edf_header(path)
    items = []
    patient = header["patient"].split()
    if patient and not all(p.upper() in ("X", "") for p in patient):
        labels = ["patient code", "sex", "birth date", "name"]
        if len(patient) >= 4 and re.fullmatch(r"[FMX]", patient[1], re.IGNORECASE):  # EDF+
            for label, value in zip(labels, patient):
                if value.upper() != "X" and label != "sex":
                    items.append((f"patient ({label})", "high", mask(value), REMOVE))
            if len(patient) > 4:
                items.append(("patient (additional)", "low", f"free text {mask(' '.join(patient[4:]))}", REMOVE))
        else:
            items.append(("patient", "high", f"local patient identification {mask(header['patient'])}", REMOVE))
    recording = header["recording"].split()
    if recording and recording[0] == "Startdate":  # EDF+
        start = re.fullmatch(r"(\d{2})-([A-Za-z]{3})-(\d{4})", recording[1]) if len(recording) > 1 else None
        if start and int(start.group(3)) > SHIFTED_YEAR_MAX:
            items.append(("recording (Startdate)", "medium", f"the recording date ({start.group(3)})", REMOVE))
        for label, value in zip(["admin code", "technician", "equipment"], recording[2:5]):
            if value.upper() != "X":
                severity = "high" if label == "technician" else "low"
                items.append((f"recording ({label})", severity, mask(value), REMOVE))
    elif header["recording"]:
        for hit in classify_text(header["recording"]):
            items.append(("recording", hit.severity, hit.what, REMOVE))
    start = _edf_start(header["startdate"])
    if start is not None and start != _dt.date(1985, 1, 1):
        items.append(("startdate", "medium", f"the recording date ({start.year})", "set it to 01.01.85 (neurofuse deidentify does)"))
    return items


def clean_edf(src: str | Path, dst: str | Path) -> list[str]:
    """Copy an EDF/BDF with the patient, recording and start date fields anonymised."""
    read_edf_header(src)
    fields = {"patient": "X X X X", "recording": "Startdate X X X X", "startdate": "01.01.85"}
    with atomic_path(dst, suffix=Path(src).suffix) as tmp:
        shutil.copyfile(src, tmp)
        with open(tmp, "r+b") as handle:
            for name, value in fields.items():
                start, end = _EDF_FIELDS[name]
                handle.seek(start)
                handle.write(value.encode("ascii").ljust(end - start))
    return ["anonymised the patient, recording and start date fields"]


# FIF -----------------------------------------------------------------------------------
def _read_info(path: str | Path):
    import mne

    try:
        return mne.io.read_info(str(path), verbose="error")
    except Exception as err:  # mne raises ValueError, OSError, KeyError ... for broken files
        raise NeuroFuseError(f"MNE cannot read the FIF header ({err.__class__.__name__}: {str(err)[:80]})", path,
                             "replace the file with a readable FIF") from None


def _date_year(value) -> int | None:
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.year
    return None


def scan_fif(path: str | Path) -> list[tuple[str, str, str, str]]:
    info = _read_info(path)
    items = []
    year = _date_year(info["meas_date"])
    if year and year > SHIFTED_YEAR_MAX:
        items.append(("meas_date", "medium", f"the measurement date ({year})", SHIFT))
    subject = info.get("subject_info") or {}
    for key in ("first_name", "middle_name", "last_name"):
        if str(subject.get(key) or "").strip().lower() not in _ANON_VALUES:
            items.append((f"subject_info.{key}", "high", f"a name: {mask(subject[key])}", REMOVE))
    if str(subject.get("his_id") or "").strip().lower() not in _ANON_VALUES:
        items.append(("subject_info.his_id", "high", f"a hospital ID: {mask(subject['his_id'])}", REMOVE))
    birthday = _date_year(subject.get("birthday"))
    if birthday and birthday > SHIFTED_YEAR_MAX:
        items.append(("subject_info.birthday", "high", f"a birth date ({birthday})", REMOVE))
    if str(info.get("experimenter") or "").strip().lower() not in _ANON_VALUES:
        items.append(("experimenter", "high", f"a person's name: {mask(info['experimenter'])}", REMOVE))
    for key in ("description", "proj_name"):
        value = str(info.get(key) or "")
        if value.strip().lower() not in _ANON_VALUES and not value.startswith("Anonymized using"):
            hits = classify_text(value)
            severity = hits[0].severity if hits else "low"
            items.append((key, severity, f"free text {mask(value)}", REMOVE))
    device = info.get("device_info") or {}
    if device.get("serial"):
        items.append(("device_info.serial", "medium", f"a device serial number: {mask(device['serial'])}", REMOVE))
    helium = info.get("helium_info") or {}
    if _date_year(helium.get("meas_date")) and _date_year(helium.get("meas_date")) > SHIFTED_YEAR_MAX:
        items.append(("helium_info.meas_date", "medium", "a date", SHIFT))
    for i, entry in enumerate(info.get("proc_history") or []):
        block = entry.get("block_id") or {}
        if str(entry.get("experimenter") or "").strip().lower() not in _ANON_VALUES:
            items.append((f"proc_history[{i}].experimenter", "high", "a person's name", REMOVE))
        secs = (block.get("date") or [0])[0] if isinstance(block.get("date"), (list, tuple)) else None
        if secs and _dt.datetime.fromtimestamp(int(secs), _dt.timezone.utc).year > SHIFTED_YEAR_MAX:
            items.append((f"proc_history[{i}].date", "medium", "a processing date", SHIFT))
    return items


def clean_fif(src: str | Path, dst: str | Path, days: int | None) -> list[str]:
    """``raw.anonymize(daysback=days)`` with the birthday removed, saved with MNE."""
    import mne

    try:
        raw = mne.io.read_raw_fif(str(src), preload=False, allow_maxshield=True, verbose="error")
    except Exception as err:
        raise NeuroFuseError(f"MNE cannot read the recording ({err.__class__.__name__})", src,
                             "replace the file with a readable FIF") from None
    if raw.info["meas_date"] is not None and days is None:
        raw.set_meas_date(None)
    raw.anonymize(daysback=days, keep_his=False, verbose="error")
    if raw.info.get("subject_info"):
        raw.info["subject_info"].pop("birthday", None)
    save_raw(raw, dst)
    return ["anonymised with mne (names, IDs, experimenter, birthday removed; dates shifted)"]


def scan_eeg(path: str | Path) -> list[tuple[str, str, str, str]]:
    suffix = Path(path).suffix.lower()
    if suffix in (".vhdr", ".vmrk"):
        return scan_brainvision(path)
    if suffix in (".edf", ".bdf"):
        return scan_edf(path)
    return scan_fif(path)


def clean_eeg(src: str | Path, dst: str | Path, days: Callable[[], int | None]) -> list[str]:
    suffix = Path(src).suffix.lower()
    if suffix in (".vhdr", ".vmrk"):
        return clean_brainvision(src, dst, days())
    if suffix in (".edf", ".bdf"):
        return clean_edf(src, dst)
    return clean_fif(src, dst, days())
