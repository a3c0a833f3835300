"""``neurofuse deidentify``: a cleaned copy of a BIDS dataset; the input is never written to.

What changes (file by file, only where the scan finds something):

* NIfTI: text fields emptied, header extensions dropped, voxel bytes copied unchanged.
* JSON sidecars: identifying keys removed, date keys shifted, e-mail/phone/dates in
  free text redacted (``[removed]``); columns dropped from a table are also removed
  from the table's JSON description.
* TSV: identifying and free-text columns of participants/sessions/scans tables
  dropped, dates shifted, ages of 89 and over coded ``89+``.
* EEG: BrainVision ``.vhdr``/``.vmrk`` rewritten as text with the measurement date
  shifted (signal file copied); EDF/BDF header fields in EDF+'s anonymous form;
  FIF anonymised with MNE (``raw.anonymize``) and the birthday removed.
* Left out of the copy: DICOM files, Philips PAR/REC, ``_photo`` images, head-shape
  files, and files that cannot be read (they are listed; fix them and run again).
* Labels that are dates (``ses-20210301``) get the subject's shift too
  (``ses-19190303``): in file and folder names and inside every JSON, TSV and
  BrainVision header of that subject (``IntendedFor``, ``scans.tsv`` file names,
  ``DataFile=``), so references still resolve.
* Not done: defacing (anatomical images with a face are listed: use a defacing tool).

Dates are shifted per subject by a whole number of weeks (weekdays and every interval
within a subject are kept) so that the subject's earliest date lands between 1915 and
1920: all dates end up in 1925 or earlier, as BIDS recommends, and after 1902, which
FIF files need. The offsets come from ``seed`` — by default a fresh random one, so that
nobody can undo the shift; pass ``shifts_file`` to keep the offsets (somewhere other
than the shared copy) for re-identification by the data controller. Dates of files
that belong to no subject are removed rather than shifted.

Unchanged files are copied (or hard-linked with ``hardlink=True``: no extra space,
but an in-place edit of a linked file in the copy would change the input too). The
copy is built in a temporary folder beside ``out`` and renamed into place at the end,
so an interrupted run leaves no half-written dataset. Finally the copy is scanned;
the result says what is still there.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import random
import secrets
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from neurofuse.errors import NeuroFuseError
from neurofuse.io import atomic_path, atomic_write_text
from neurofuse.privacy import eeg, nifti, other, sidecar, tabular
from neurofuse.privacy.report import ScanReport
from neurofuse.privacy.scan import kind_of, list_files, scan_dataset, subject_of
from neurofuse.privacy.text import find_dates, shift_dates, sidecar_rule, unshifted

TARGET_START = _dt.date(1915, 1, 1)
TARGET_SPAN_DAYS = 5 * 365
LEFT_OUT_KINDS = {"dicom": "a DICOM file", "par": "a Philips PAR/REC file", "photo": "a photo",
                  "headshape": "a head-shape file"}


@dataclass
class DeidentifyResult:
    out: Path
    changed: dict[str, list[str]] = field(default_factory=dict)  # file -> what changed
    left_out: dict[str, str] = field(default_factory=dict)  # file -> why
    copied: int = 0
    shifts: dict[str, int] = field(default_factory=dict)  # subject -> days moved back
    remaining: ScanReport | None = None

    @property
    def clean(self) -> bool:
        return self.remaining is not None and not self.remaining.findings

    def summary(self) -> str:
        text = (f"wrote {self.out}: {len(self.changed)} files cleaned, {self.copied} copied unchanged, "
                f"{len(self.left_out)} left out; dates of {len(self.shifts)} subjects shifted")
        if self.remaining is not None:
            text += "; the scan of the copy finds " + (
                "nothing" if self.clean else f"{len(self.remaining.findings)} items (listed above)")
        return text

    def to_dict(self) -> dict:
        return {"out": str(self.out), "changed": self.changed, "left_out": self.left_out, "copied": self.copied,
                "subjects_shifted": sorted(self.shifts),
                "remaining": self.remaining.to_dict() if self.remaining is not None else None}


def _check_paths(src: Path, out: Path, shifts_file: Path | None) -> None:
    if not src.is_dir():
        raise NeuroFuseError("not a folder", src, "give the BIDS dataset's root folder")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise NeuroFuseError("the output folder exists and is not empty", out,
                             "give a new folder: deidentify never overwrites")
    a, b = src.resolve(), out.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise NeuroFuseError("the output folder must be outside the dataset (and not contain it)", out,
                             "write the copy next to the dataset, e.g. mystudy-deid/")
    if shifts_file is not None and (b == shifts_file.resolve().parent or b in shifts_file.resolve().parents):
        raise NeuroFuseError("the shifts file would be shared inside the copy", shifts_file,
                             "keep it outside the de-identified dataset")


def _dates_by_subject(root: Path, files: list[str]) -> dict[str, list[_dt.date]]:
    """Every date the copy will shift, by subject (the anchors of the offsets)."""
    dates: dict[str, list[_dt.date]] = defaultdict(list)
    for rel in files:
        kind, path, subject = kind_of(rel), root / rel, subject_of(rel)
        try:
            if kind == "table" and tabular.PARTICIPANT_TABLES.search(rel):
                table = tabular.read_table(path)
                ids = table.column("participant_id") if "participant_id" in table.columns else [""] * len(table.rows)
                for name in table.columns:  # only the date columns that get shifted (not birth dates)
                    hits = tabular.assess_column(name, table.column(name), participant_table=True)
                    if any(hit.op == "shift" for hit in hits):
                        for pid, cell in zip(ids, table.column(name)):
                            owner = subject or (pid[4:] if pid.startswith("sub-") else None)
                            if owner:
                                dates[owner] += find_dates(cell, compact=True)
            elif subject and kind == "sidecar":
                stack = [sidecar.read_json(path)]
                while stack:
                    node = stack.pop()
                    if isinstance(node, dict):
                        for key, value in node.items():
                            rule = sidecar_rule(key)
                            if rule is not None and rule.action == "shift":
                                dates[subject] += find_dates(str(value), compact=True)
                            elif isinstance(value, (dict, list)):
                                stack.append(value)
                    elif isinstance(node, list):
                        stack += [v for v in node if isinstance(v, (dict, list))]
            elif subject and rel.lower().endswith(".vmrk"):
                dates[subject] += [d.date() for m in eeg._NEW_SEGMENT.finditer(eeg.read_text(path))
                                   if (d := eeg._segment_date(m.group(2)))]
            elif subject and rel.lower().endswith(".fif"):
                when = eeg._read_info(path)["meas_date"]
                if when is not None:
                    dates[subject].append(when.date())
        except NeuroFuseError:
            continue  # unreadable files are left out of the copy
    return {s: [d for d in ds if d.year > 1902] for s, ds in dates.items() if ds}


def subject_offsets(dates: dict[str, list[_dt.date]], seed: int | None) -> dict[str, int]:
    """Days to move each subject's dates back: earliest date -> 1915-1920, whole weeks."""
    offsets = {}
    for subject, found in sorted(dates.items()):
        if not found:
            continue
        rng = random.Random(f"{seed}:{subject}")
        target = TARGET_START + _dt.timedelta(days=rng.randrange(TARGET_SPAN_DAYS))
        days = (min(found) - target).days
        offsets[subject] = max(0, days + (-days) % 7)
    return offsets


_TEXT_SUFFIXES = (".json", ".tsv", ".vhdr", ".vmrk")


def label_renames(files: list[str], offsets: dict[str, int]) -> dict[str, dict[str, str]]:
    """Per subject, ``{"ses-20210301": "ses-19190303"}`` for entity labels that are dates."""
    renames: dict[str, dict[str, str]] = defaultdict(dict)
    for rel in files:
        subject = subject_of(rel)
        if subject not in offsets:
            continue
        for part in rel.replace("/", "_").split("_"):
            key, _, value = part.partition("-")
            if value and unshifted(find_dates(value, compact=True)):
                renames[subject][part] = f"{key}-{shift_dates(value, offsets[subject])}"
    return {s: r for s, r in renames.items() if r}


def _renamed(text: str, renames: dict[str, str]) -> str:
    for old, new in renames.items():
        text = text.replace(old, new)
    return text


def _place(src: Path, dst: Path, hardlink: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if hardlink:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another file system, or links not allowed: copy
    with atomic_path(dst, suffix="".join(Path(dst).suffixes[-2:])) as tmp:
        shutil.copy2(src, tmp)


def deidentify_dataset(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    seed: int | None = None,
    shifts_file: str | os.PathLike | None = None,
    hardlink: bool = False,
    verify: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> DeidentifyResult:
    """Write a de-identified copy of ``src`` to ``out`` (see the module docstring)."""
    root, target = Path(src), Path(out)
    shifts_path = Path(shifts_file) if shifts_file is not None else None
    _check_paths(root, target, shifts_path)
    files = list_files(root)
    offsets = subject_offsets(_dates_by_subject(root, files), secrets.randbits(64) if seed is None else seed)
    renames = label_renames(files, offsets)
    result = DeidentifyResult(out=target, shifts=offsets)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        dropped_columns: dict[str, list[str]] = {}
        left_out_stems = set()
        for i, rel in enumerate(files):
            changes = _copy_one(root, tmp, rel, offsets, hardlink, result, dropped_columns,
                                renames.get(subject_of(rel) or "", {}))
            if changes:
                result.changed[rel] = changes
            if rel in result.left_out and rel.lower().endswith(".par"):
                left_out_stems.add(rel[:-4].lower())
            if progress is not None:
                progress(i + 1, len(files))
        for rel in files:  # a REC goes with its PAR
            if rel[:-4].lower() in left_out_stems and rel.lower().endswith(".rec") and rel not in result.left_out:
                (tmp / rel).unlink(missing_ok=True)
                result.left_out[rel] = "the image data of a left-out PAR header"
                result.copied -= 1
        _drop_described_columns(tmp, dropped_columns, result)
        if shifts_path is not None:
            atomic_write_text(shifts_path, json.dumps({"days_moved_back": offsets}, indent=2, sort_keys=True) + "\n")
        if target.exists():
            target.rmdir()
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    if verify:
        result.remaining = scan_dataset(target)
    return result


def _copy_one(root: Path, tmp: Path, rel: str, offsets: dict[str, int], hardlink: bool,
              result: DeidentifyResult, dropped_columns: dict[str, list[str]], renames: dict[str, str]) -> list[str]:
    """Copy (clean, leave out) one file; with ``renames``, date labels in its name and text are shifted."""
    changes = _write_one(root, tmp, rel, _renamed(rel, renames), offsets, hardlink, result, dropped_columns)
    dst = tmp / _renamed(rel, renames)
    if renames and dst.is_file():
        if dst.name != Path(rel).name:
            changes.append(f"renamed to {dst.relative_to(tmp).as_posix()}")
        if rel.lower().endswith(_TEXT_SUFFIXES):
            text = eeg.read_text(dst)
            if _renamed(text, renames) != text:
                dst.unlink()  # may be a hard link to the input: replace, never edit in place
                atomic_write_text(dst, _renamed(text, renames))
                changes.append("shifted date labels inside")
    return changes


def _write_one(root: Path, tmp: Path, rel: str, rel_out: str, offsets: dict[str, int], hardlink: bool,
               result: DeidentifyResult, dropped_columns: dict[str, list[str]]) -> list[str]:
    src, dst = root / rel, tmp / rel_out
    kind = kind_of(rel)
    if kind == "maybe-dicom":
        kind = "dicom" if other.is_dicom(src) else None
    if kind in LEFT_OUT_KINDS:
        result.left_out[rel] = LEFT_OUT_KINDS[kind]
        return []
    days = offsets.get(subject_of(rel) or "")
    try:
        if kind == "nifti" and nifti.scan_nifti(src):
            return nifti.scrub_nifti(src, dst)
        if kind == "sidecar" and sidecar.scan_sidecar(src):
            shift = (lambda value: shift_dates(value, days)) if days is not None else None
            data, changes = sidecar.clean_sidecar(src, shift)
            atomic_write_text(dst, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            return changes
        if kind == "table" and tabular.scan_table(src):
            before = tabular.read_table(src).columns
            changes = tabular.clean_table(src, dst, lambda value, subject: _shift_for(value, subject, offsets),
                                          lambda row: subject_of(rel) or _participant(row))
            dropped_columns[rel_out] = [c for c in before if c not in tabular.read_table(dst).columns]
            return changes
        if kind == "text" and other.scan_text(src, rel):
            return other.clean_text(src, dst, rel)
        if kind == "eeg" and eeg.scan_eeg(src):
            return eeg.clean_eeg(src, dst, lambda: days)
    except NeuroFuseError as err:
        result.left_out[rel] = f"could not be read ({err.problem}): fix it and run again"
        Path(dst).unlink(missing_ok=True)
        return []
    except Exception as err:  # a corrupt file of any kind: left out, never half-copied
        result.left_out[rel] = f"could not be read ({err.__class__.__name__}): fix it and run again"
        Path(dst).unlink(missing_ok=True)
        return []
    _place(src, dst, hardlink)
    result.copied += 1
    return []


def _participant(row: dict[str, str]) -> str | None:
    pid = row.get("participant_id", "")
    return pid[4:] if pid.startswith("sub-") else None


def _shift_for(value: str, subject: str | None, offsets: dict[str, int]) -> str | None:
    days = offsets.get(subject or "")
    return None if days is None else shift_dates(value, days)


def _drop_described_columns(tmp: Path, dropped: dict[str, list[str]], result: DeidentifyResult) -> None:
    """Remove dropped columns from the tables' JSON descriptions (participants.json ...)."""
    for rel, columns in dropped.items():
        described = tmp / (rel[: -len(".tsv")] + ".json")
        if not columns or not described.is_file():
            continue
        data = sidecar.read_json(described)
        if isinstance(data, dict) and any(c in data for c in columns):
            for column in columns:
                data.pop(column, None)
            described.unlink()  # may be a hard link to the input: replace, never edit in place
            atomic_write_text(described, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            rel_json = described.relative_to(tmp).as_posix()
            result.changed.setdefault(rel_json, []).append(f"removed the description of {', '.join(columns)}")
