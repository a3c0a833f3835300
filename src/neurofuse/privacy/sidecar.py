"""JSON sidecars: identifying keys (DICOM attributes as dcm2niix names them) and values.

Every key at any depth is checked against :data:`~neurofuse.privacy.text.SIDECAR_KEYS`;
every string value is checked for e-mail addresses, phone numbers and dates (keys
whose name holds "Version" are skipped: ``v1.0.20190902`` is not a date). In
``dataset_description.json`` the public keys (authors, funding, licence ...) are skipped.

Cleaning (:func:`clean_sidecar`): identifying keys are removed, date keys are shifted
with the subject's offset (removed when the file belongs to no subject), other strings
have the matched e-mail/phone/date replaced by ``[removed]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurofuse.errors import NeuroFuseError
from neurofuse.privacy.text import (
    PUBLIC_DESCRIPTION_KEYS,
    classify_text,
    find_dates,
    mask,
    redact_text,
    sidecar_rule,
    unshifted,
)

_PERSON_PARENTS = {"patient", "subject", "participant", "referringphysician", "operator"}
REMOVE = "remove the key (neurofuse deidentify does)"
SHIFT = "shift the date per subject to 1925 or earlier, as BIDS recommends (neurofuse deidentify does)"
REDACT = "remove it from the text (neurofuse deidentify does)"


@dataclass(frozen=True)
class _Hit:
    path: str
    severity: str
    found: str
    action: str
    op: str  # remove | shift | redact


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; :class:`NeuroFuseError` naming the file for binary junk or bad JSON."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise NeuroFuseError(f"not UTF-8 text (byte {err.start}): binary data in a JSON sidecar?", path,
                             "replace the file with a valid JSON sidecar") from None
    except json.JSONDecodeError as err:
        raise NeuroFuseError(f"not valid JSON ({err.msg} at line {err.lineno})", path,
                             "fix the JSON (a BIDS validator names the problem)") from None


def _age_hit(path: str, value: Any) -> list[_Hit]:
    digits = "".join(ch for ch in str(value) if ch.isdigit() or ch == ".")
    try:
        years = float(digits)
    except ValueError:
        return []
    if str(value).strip().upper().endswith(("M", "W", "D")):
        years /= 12 if str(value).strip().upper().endswith("M") else 365
    if years >= 89:
        return [_Hit(path, "medium", "an age of 89 or over", "code it as 89+ (neurofuse deidentify does)", "remove")]
    return []


def _assess(path: str, key: str, value: Any) -> list[_Hit]:
    parent = path.rsplit(".", 2)[-2].split("[")[0] if "." in path else ""
    rule = sidecar_rule(key) or (sidecar_rule(parent + key) if parent.lower() in _PERSON_PARENTS else None)
    if key.lower() == "patientage":
        return _age_hit(path, value)
    if rule is not None and value not in (None, "", [], {}):
        if rule.action == "shift":
            dates = find_dates(str(value), compact=True)
            if dates and not unshifted(dates):
                return []  # already shifted
            found = f"{rule.what}: {mask(value)}"
            return [_Hit(path, rule.severity, found, SHIFT, "shift" if dates else "remove")]
        return [_Hit(path, rule.severity, f"{rule.what}: {mask(value)}", REMOVE, "remove")]
    if isinstance(value, str) and "version" not in key.lower():
        return [_Hit(path, hit.severity, f"{hit.what} in the text", REDACT, "redact") for hit in classify_text(value)]
    return []


def _walk(node: Any, prefix: str, skip_public: bool) -> list[_Hit]:
    hits: list[_Hit] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if skip_public and not prefix and key in PUBLIC_DESCRIPTION_KEYS:
                continue
            path = f"{prefix}.{key}" if prefix else str(key)
            found = _assess(path, str(key), value)
            hits += found
            if not found and isinstance(value, (dict, list)):
                hits += _walk(value, path, False)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            path = f"{prefix}[{i}]"
            if isinstance(value, str):
                hits += _assess(path, prefix.rsplit(".", 1)[-1], value)
            else:
                hits += _walk(value, path, False)
    return hits


def _is_description(path: str | Path) -> bool:
    return Path(path).name == "dataset_description.json"


def scan_sidecar(path: str | Path) -> list[tuple[str, str, str, str]]:
    data = read_json(path)
    return [(h.path, h.severity, h.found, h.action) for h in _walk(data, "", _is_description(path))]


def clean_sidecar(path: str | Path, shift: Callable[[str], str | None] | None) -> tuple[Any, list[str]]:
    """The sidecar's content with every finding removed, shifted or redacted, and the changes.

    ``shift(value)`` returns the value with its dates moved by the subject's offset, or
    ``None`` when it cannot (then the key is removed); ``shift=None`` removes date keys.
    """
    data = read_json(path)
    changes: list[str] = []
    for hit in _walk(data, "", _is_description(path)):
        parent, last = _locate(data, hit.path)
        value = parent[last]
        if hit.op == "shift" and shift is not None and (moved := shift(str(value))) is not None:
            parent[last] = moved
            changes.append(f"shifted {hit.path}")
        elif hit.op == "redact" and isinstance(value, str):
            parent[last] = redact_text(value)
            changes.append(f"redacted {hit.path}")
        else:
            del parent[last]
            changes.append(f"removed {hit.path}")
    return data, changes


def _locate(data: Any, path: str) -> tuple[Any, Any]:
    """Parent container and key/index of a ``a.b[2].c`` path produced by :func:`_walk`."""
    tokens: list[Any] = []
    for part in path.split("."):
        name, *indices = part.split("[")
        if name:
            tokens.append(name)
        tokens += [int(i.rstrip("]")) for i in indices]
    node = data
    for token in tokens[:-1]:
        node = node[token]
    return node, tokens[-1]
