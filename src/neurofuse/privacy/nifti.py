"""NIfTI headers: the free-text fields and header extensions, read (and scrubbed) with nibabel.

Read: ``nibabel.load`` parses the header and the extensions and maps no voxel data.

Scrub: the cleaned file is the original header with ``descrip``, ``db_name``,
``aux_file`` and ``intent_name`` emptied and every extension dropped, followed by the
original voxel bytes copied as they are (``vox_offset`` moved to just after the
header). Going through ``nibabel.save`` instead would re-encode the data and may change
its scaling; copying the bytes keeps every voxel bit-identical.
"""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import nibabel as nib

from neurofuse.io import atomic_path
from neurofuse.privacy.text import classify_text, mask

TEXT_FIELDS = ("descrip", "db_name", "aux_file", "intent_name")

#: Software stamps that tools write into ``descrip``/``aux_file`` (not about a person).
_SOFTWARE_STAMP = re.compile(
    r"^\s*(fsl|afni|spm|freesurfer|dcm2niix|ants|itk|nibabel|nilearn|mrtrix|neurofuse|fmriprep|"
    r"nipype|niftyreg|brainvoyager|3d[a-z]+|created by|converted by)\b", re.IGNORECASE)
_INTENT_LABELS = {label.lower() for label in nib.nifti1.intent_codes.value_set("label")}
_DICOM_EXTENSIONS = {2}
CLEAR_ACTION = "clear the field (neurofuse deidentify does)"
EXTENSION_ACTION = "drop the header extension (neurofuse deidentify does)"


def _text(value) -> str:
    raw = value.item() if hasattr(value, "item") else value
    if isinstance(raw, bytes):
        raw = raw.split(b"\x00", 1)[0].decode("latin-1")
    return str(raw).strip()


def _field_items(name: str, value: str) -> list[tuple[str, str, str, str]]:
    if not value:
        return []
    hits = classify_text(value, compact_dates=True)
    if hits:
        return [(name, hit.severity, f"{hit.what}: {mask(value)}", CLEAR_ACTION) for hit in hits]
    if name == "intent_name" and value.lower() in _INTENT_LABELS | {"z", "t", "f", "p", "zstat", "tstat"}:
        return []
    if _SOFTWARE_STAMP.match(value):
        return []
    return [(name, "low", f"free text {mask(value)}: check what it says", CLEAR_ACTION)]


def scan_nifti(path: str | Path) -> list[tuple[str, str, str, str]]:
    """(field, severity, found, action) for every identifying item in the header."""
    img = nib.load(str(path))
    header = img.header
    items: list[tuple[str, str, str, str]] = []
    for name in TEXT_FIELDS:
        if name in header:
            items += _field_items(name, _text(header[name]))
    for ext in getattr(header, "extensions", []):
        code = int(ext.get_code())
        content = ext.get_content()
        label = nib.nifti1.extension_codes.label[code] if code in nib.nifti1.extension_codes.code else str(code)
        field = f"extension {code} ({label})"
        size = len(content) if isinstance(content, (bytes, bytearray)) else len(str(content))
        if code in _DICOM_EXTENSIONS:
            items.append((field, "high", f"an embedded DICOM header ({size} bytes): it can hold the "
                          "patient's name, ID and birth date", EXTENSION_ACTION))
            continue
        text = content.decode("latin-1") if isinstance(content, (bytes, bytearray)) else str(content)
        hits = classify_text(text)
        if hits:
            items += [(field, hit.severity, f"{hit.what} in a {size}-byte extension", EXTENSION_ACTION) for hit in hits]
        else:
            items.append((field, "low", f"a {size}-byte header extension (history, comments): check it",
                          EXTENSION_ACTION))
    return items


def needs_scrub(items: list[tuple[str, str, str, str]]) -> bool:
    return bool(items)


def scrub_nifti(src: str | Path, dst: str | Path) -> list[str]:
    """Write ``src`` to ``dst`` with the text fields emptied and extensions dropped.

    Voxel bytes are copied unchanged. Returns what was changed.
    """
    src, dst = Path(src), Path(dst)
    img = nib.load(str(src))
    old = img.header
    new = old.copy()
    changes = [f"cleared {name}" for name in TEXT_FIELDS if name in old and _text(old[name])]
    for name in TEXT_FIELDS:
        if name in new:
            new[name] = b""
    if len(new.extensions):
        changes.append(f"dropped {len(new.extensions)} header extension(s)")
        new.extensions.clear()
    old_offset = int(img.dataobj.offset)  # the header field may read 0; the proxy knows where data start
    new_offset = int(new.sizeof_hdr) + 4  # header + the 4-byte extension flag
    new["vox_offset"] = new_offset
    opener = gzip.open if src.name.endswith(".gz") else open
    suffix = ".nii.gz" if src.name.endswith(".gz") else ".nii"
    with opener(src, "rb") as fin, atomic_path(dst, suffix=suffix) as tmp:
        raw_out = open(tmp, "wb")
        writer = gzip.GzipFile(fileobj=raw_out, mode="wb", compresslevel=6, mtime=0) if suffix == ".nii.gz" else raw_out
        with raw_out, writer as fout:
            new.write_to(fout)  # header, extension flag (and no extensions)
            fout.write(b"\x00" * (new_offset - fout.tell()))
            fin.seek(old_offset)
            shutil.copyfileobj(fin, fout, 1 << 20)
    return changes
