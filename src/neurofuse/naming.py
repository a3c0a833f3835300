"""BIDS names for every file NeuroFuse reads or writes.

One place builds and parses names so that rules, scripts and tests never assemble
``sub-…_desc-…`` strings by hand. Entity order follows the BIDS specification
(``tests/unit/test_naming.py`` checks it against the official schema).

A *run prefix* is the raw-entity part of a file name (``sub-01_ses-1_task-rest_run-1``);
a *subject dir* is ``sub-01`` or ``sub-01/ses-1``. Derivatives are written as
``<root>/<subject dir>/<datatype>/<run prefix>_<derivative entities>_<suffix><ext>``,
which is valid BIDS because derivative entities (``space``, ``res``, ``desc`` …) all
come after the raw ones. Either part may be a Snakemake wildcard such as ``{run}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath

#: BIDS entity keys in the order the specification puts them in a file name.
ENTITY_ORDER: tuple[str, ...] = (
    "sub", "ses", "sample", "task", "tracksys", "acq", "nuc", "voi", "ce", "trc", "stain",
    "rec", "dir", "run", "mod", "echo", "flip", "inv", "mt", "part", "proc", "hemi",
    "space", "split", "recording", "chunk", "seg", "res", "den", "label", "desc",
)
#: Derivative entities outside the raw specification, after ``desc`` (BIDS Stats Models and
#: fMRIPrep/nilearn put the statistic of a ``_statmap`` last: ``desc-alpha_stat-z``).
DERIVATIVE_ENTITIES: tuple[str, ...] = ("stat",)
_RANK = {key: i for i, key in enumerate(ENTITY_ORDER + DERIVATIVE_ENTITIES)}

#: Entities that identify an acquisition (they make up a run prefix).
RAW_ENTITIES: tuple[str, ...] = ("sub", "ses", "task", "acq", "ce", "rec", "dir", "run", "echo")

_LABEL = re.compile(r"^[A-Za-z0-9]+$")
_WILDCARD = re.compile(r"^\{[A-Za-z_][A-Za-z0-9_]*(,[^}]*)?\}$")
_NAME = re.compile(
    r"^(?P<entities>(?:[a-zA-Z]+-[A-Za-z0-9]+_)*)(?P<suffix>[A-Za-z0-9]+)(?P<ext>(?:\.[A-Za-z0-9]+)*)$"
)


def _check_label(key: str, value: str) -> str:
    value = str(value)
    if not (_LABEL.match(value) or _WILDCARD.match(value)):
        raise ValueError(f"BIDS label for '{key}' must be alphanumeric, got {value!r}")
    return value


def entity_string(entities: Mapping[str, str]) -> str:
    """``{"run": "1", "sub": "01"}`` -> ``"sub-01_run-1"`` (BIDS order; ``None`` values dropped)."""
    unknown = [k for k in entities if k not in _RANK]
    if unknown:
        raise ValueError(f"unknown BIDS entities: {', '.join(sorted(unknown))}")
    keys = sorted((k for k, v in entities.items() if v is not None and v != ""), key=_RANK.__getitem__)
    return "_".join(f"{k}-{_check_label(k, entities[k])}" for k in keys)


def parse_name(name: str) -> tuple[dict[str, str], str, str]:
    """Split a BIDS file name into ``(entities, suffix, extension)``.

    >>> parse_name("sub-01_task-rest_run-1_bold.nii.gz")
    ({'sub': '01', 'task': 'rest', 'run': '1'}, 'bold', '.nii.gz')
    """
    match = _NAME.match(PurePosixPath(name).name)
    if not match:
        raise ValueError(f"not a BIDS file name: {name!r}")
    pairs = [p.split("-", 1) for p in match["entities"].rstrip("_").split("_") if p]
    return dict(pairs), match["suffix"], match["ext"]


def subject_dir(entities: Mapping[str, str]) -> str:
    """``sub-01`` or ``sub-01/ses-1`` for the given entities."""
    parts = [f"sub-{entities['sub']}"]
    if entities.get("ses"):
        parts.append(f"ses-{entities['ses']}")
    return "/".join(parts)


def run_prefix(entities: Mapping[str, str]) -> str:
    """The raw-entity part of a name: ``sub-01_ses-1_task-rest_run-1``."""
    return entity_string({k: v for k, v in entities.items() if k in RAW_ENTITIES})


def derivative_path(
    root: str,
    subdir: str,
    datatype: str,
    prefix: str,
    *,
    suffix: str,
    extension: str,
    **entities: str | None,
) -> str:
    """Path of a derivative file, e.g. the preprocessed BOLD of one run.

    ``derivative_path("results", "sub-01", "func", "sub-01_task-rest", space="MNI152NLin2009cAsym",
    desc="preproc", suffix="bold", extension=".nii.gz")`` ->
    ``results/sub-01/func/sub-01_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz``.
    """
    if not extension.startswith("."):
        raise ValueError(f"extension must start with '.', got {extension!r}")
    if not _WILDCARD.match(prefix):
        prefix_entities, _, _ = parse_name(f"{prefix}_x")
        last = max((_RANK[k] for k in prefix_entities if k in _RANK), default=-1)
        early = [k for k, v in entities.items() if v and _RANK.get(k, 1 << 30) <= last]
        if early:
            raise ValueError(f"entities {early} would come before the run prefix {prefix!r}")
    extra = entity_string(entities)
    stem = "_".join(part for part in (prefix, extra) if part)
    return str(PurePosixPath(root, subdir, datatype, f"{stem}_{suffix}{extension}"))


def group_path(root: str, *, suffix: str, extension: str, **entities: str | None) -> str:
    """Path of a group-level output under ``<root>/group/``."""
    stem = entity_string(entities)
    name = f"{stem}_{suffix}{extension}" if stem else f"{suffix}{extension}"
    return str(PurePosixPath(root, "group", name))
