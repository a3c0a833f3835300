"""``neurofuse privacy-check``: walk a BIDS dataset and list everything identifying.

Every file under the root is looked at (``derivatives/``, ``sourcedata/`` and hidden
folders included: they travel with the dataset), except version-control internals
(:data:`SKIPPED_DIRS`). What is read, per file:

=========================  ==========================================================
``*.nii``, ``*.nii.gz``    header text fields and extensions (:mod:`.nifti`); for
                           T1w/T2w/FLAIR/PDw images also the voxels (:mod:`.face`)
``*.json``                 every key and string value (:mod:`.sidecar`)
``*.tsv``                  columns and values (:mod:`.tabular`)
``.vhdr .vmrk .edf .bdf``  header text / bytes, never the signal (:mod:`.eeg`)
``.fif``                   ``mne.io.read_info`` (:mod:`.eeg`)
``.par``, DICOM, photos    :mod:`.other`
text, README, logs         labelled names, e-mail, phone numbers, dates (:mod:`.other`)
every path                 dates in file and folder names
=========================  ==========================================================

A file that cannot be read is a finding (severity high, field ``(file)``): it could not
be checked, so it cannot be called clean. Large datasets: ``max_files`` checks a
seeded random sample of the files (top-level files and ``participants.tsv`` always)
and the report says how many were left out; ``max_face_images`` does the same for the
face check, which reads whole images and is by far the slowest part.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from neurofuse.errors import NeuroFuseError
from neurofuse.privacy import eeg, nifti, other, sidecar, tabular
from neurofuse.privacy.face import FACE_SUFFIXES, check_face
from neurofuse.privacy.report import Finding, ScanReport

SKIPPED_DIRS = frozenset({".git", ".datalad", ".snakemake", "__pycache__", ".tmp"})
FACE_ACTION = ("deface it before sharing (pydeface, mri_deface, FreeSurfer mri_deface, AFNI refacer); "
               "neurofuse deidentify does not deface")
UNREADABLE_ACTION = "fix or replace the file: it could not be checked"

Check = Callable[[Path], list[tuple[str, str, str, str]]]


def kind_of(rel: str) -> str | None:
    """Which check a file gets (``None``: only its name is checked)."""
    name = rel.rsplit("/", 1)[-1]
    lower = name.lower()
    if lower.endswith((".nii", ".nii.gz")):
        return "nifti"
    if lower.endswith(".json"):
        return "sidecar"
    if lower.endswith(".tsv"):
        return "table"
    if lower.endswith(eeg.EEG_SUFFIXES):
        return "eeg"
    if lower.endswith(".par"):
        return "par"
    if lower.endswith(other.DICOM_SUFFIXES):
        return "dicom"
    if other.PHOTO.search(name):
        return "photo"
    if other.HEADSHAPE.search(name):
        return "headshape"
    if lower.endswith(other.TEXT_SUFFIXES) or other.DOC_NAMES.match(name):
        return "text"
    if "." not in name:
        return "maybe-dicom"
    return None


CHECKS: dict[str, Check] = {
    "nifti": nifti.scan_nifti,
    "sidecar": sidecar.scan_sidecar,
    "table": tabular.scan_table,
    "eeg": eeg.scan_eeg,
    "par": other.scan_par,
    "dicom": other.scan_dicom,
    "photo": other.scan_photo,
    "headshape": other.scan_headshape,
}


def has_face_suffix(rel: str) -> bool:
    stem = rel.rsplit("/", 1)[-1].split(".", 1)[0]
    return stem.rsplit("_", 1)[-1] in FACE_SUFFIXES and rel.lower().endswith((".nii", ".nii.gz"))


def subject_of(rel: str) -> str | None:
    for part in rel.split("/"):
        if part.startswith("sub-"):
            return part[4:].split("_", 1)[0]
    return None


def list_files(root: Path) -> list[str]:
    """Every file under ``root`` (POSIX paths relative to it), sorted, without :data:`SKIPPED_DIRS`."""
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        base = Path(folder).relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        files += [prefix + name for name in names]
    return sorted(files)


def _sample(files: list[str], limit: int | None, seed: int) -> list[str]:
    if limit is None or len(files) <= limit:
        return files
    always = [f for f in files if "/" not in f]
    rest = [f for f in files if "/" in f]
    picked = random.Random(seed).sample(rest, max(0, limit - len(always)))
    return sorted(always + picked)


def check_file(root: Path, rel: str, kind: str | None, *, face: bool) -> list[Finding]:
    """Findings of one file (its name, its content, and its face when ``face``)."""
    subject = subject_of(rel)
    make = lambda field, severity, found, action: Finding(rel, field, severity, found, action, subject)
    findings = [make(*item) for item in other.scan_name(rel)]
    path = root / rel
    try:
        if kind == "maybe-dicom":
            if other.is_dicom(path):
                findings += [make(*item) for item in other.scan_dicom(path)]
        elif kind == "text":
            findings += [make(*item) for item in other.scan_text(path, rel)]
        elif kind is not None:
            findings += [make(*item) for item in CHECKS[kind](path)]
        if face:
            result = check_face(path)
            if result.face:
                findings.append(make("(face)", "high", f"the image shows a face: {result.reason}", FACE_ACTION))
    except NeuroFuseError as err:
        findings.append(make("(file)", "high", f"unreadable: {err.problem}", UNREADABLE_ACTION))
    except Exception as err:  # any reader failure on a corrupt file is a finding, never a crash
        findings.append(make("(file)", "high", f"unreadable: {err.__class__.__name__}: {str(err)[:80]}",
                             UNREADABLE_ACTION))
    return findings


def scan_dataset(
    root: str | os.PathLike,
    *,
    faces: bool = True,
    max_files: int | None = None,
    max_face_images: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> ScanReport:
    """Scan the dataset at ``root`` (see the module docstring)."""
    start = time.perf_counter()
    base = Path(root)
    if not base.is_dir():
        raise NeuroFuseError("not a folder", root, "give the BIDS dataset's root folder")
    all_files = list_files(base)
    chosen = _sample(all_files, max_files, seed)
    report = ScanReport(root=str(base), files_total=len(all_files), files_checked=len(chosen))
    face_files = [rel for rel in chosen if has_face_suffix(rel)] if faces else []
    face_chosen = set(_sample(face_files, max_face_images, seed))
    for i, rel in enumerate(chosen):
        kind = kind_of(rel)
        report.kinds[kind or "name only"] += 1
        report.findings += check_file(base, rel, kind, face=rel in face_chosen)
        if progress is not None:
            progress(i + 1, len(chosen))
    report.kinds["face"] = len(face_chosen)
    if len(chosen) < len(all_files):
        report.sampled = True
        report.notes.append(f"sampled {len(chosen)} of {len(all_files)} files (seed {seed}); "
                            f"{len(all_files) - len(chosen)} files were NOT checked")
    if len(face_chosen) < len(face_files):
        report.sampled = True
        report.notes.append(f"face check on {len(face_chosen)} of {len(face_files)} anatomical images (seed {seed})")
    if not faces:
        report.notes.append("face check turned off: anatomical images were not checked for faces")
    if (base / ".git").exists():
        report.notes.append(".git was not scanned: its history may still hold earlier, identifying versions of files")
    report.seconds = time.perf_counter() - start
    return report
