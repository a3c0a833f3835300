"""``dataset_description.json`` and ``.bidsignore`` of the derivatives folder.

The output root is a BIDS-Derivatives dataset (DESIGN.md §5): ``DatasetType:
derivative``, ``GeneratedBy`` (name, version, code URL and, inside a container, the
image) and ``SourceDatasets`` (where the raw data came from, with its DOI when it has
one). ``DatasetLinks.raw`` makes the ``bids:raw:…`` URIs of the JSON sidecars
(``Sources``) resolvable.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neurofuse import __version__
from neurofuse.io import atomic_write_text

#: BIDS version the derivatives follow (the same as the simulator's datasets).
BIDS_VERSION = "1.10.0"

#: Folders of the output root that are not BIDS: the validator skips them.
BIDSIGNORE = ("work/", "logs/", "benchmarks/", "neurofuse/", "report/", "CITATION.md", "ro-crate-metadata.json")

DESCRIPTION_NAME = "dataset_description.json"


def dataset_url(bids_dir: str | os.PathLike) -> str:
    """A URL for the source dataset: ``gs://…``/``s3://…`` as given, else ``file://`` of its absolute path."""
    text = os.fspath(bids_dir)
    if "://" in text:
        return text.rstrip("/")
    return Path(text).resolve().as_uri()


def read_source_description(bids_dir: str | os.PathLike) -> dict[str, Any]:
    """The source dataset's ``dataset_description.json`` ({} if missing or unreadable)."""
    path = Path(os.fspath(bids_dir)) / DESCRIPTION_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def code_url() -> str | None:
    """The project's source URL from the package metadata (``[project.urls]``), if declared."""
    try:
        urls = importlib.metadata.metadata("neurofuse").get_all("Project-URL") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    by_label = {}
    for entry in urls:
        label, _, url = entry.partition(",")
        by_label[label.strip().lower()] = url.strip()
    for label in ("source", "repository", "code", "homepage"):
        if by_label.get(label):
            return by_label[label]
    return None


def container_info(env: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """BIDS ``GeneratedBy.Container`` from ``NEUROFUSE_CONTAINER`` / ``NEUROFUSE_CONTAINER_DIGEST``.

    ``NEUROFUSE_CONTAINER`` is the image reference the container was started from
    (``ghcr.io/org/neurofuse:0.1.0``, ``docker://…``, ``apptainer://…`` or a ``.sif``
    file); ``NEUROFUSE_CONTAINER_DIGEST`` its content digest (``sha256:…``), which is
    what pins the bytes. Returns None when neither is set (not in a container).
    """
    env = os.environ if env is None else env
    image = env.get("NEUROFUSE_CONTAINER", "").strip()
    digest = env.get("NEUROFUSE_CONTAINER_DIGEST", "").strip()
    if not image and not digest:
        return None
    kind = "docker"
    tag = image
    for scheme in ("docker", "apptainer", "singularity", "oras", "library"):
        if image.startswith(f"{scheme}://"):
            kind = "apptainer" if scheme in ("singularity", "library", "oras") else scheme
            tag = image[len(scheme) + 3:]
            break
    else:
        if image.endswith((".sif", ".simg")):
            kind = "apptainer"
    info = {"Type": kind}
    if tag:
        info["Tag"] = tag
    if digest:
        repo = tag.rsplit("@", 1)[0]
        if ":" in repo.rsplit("/", 1)[-1]:
            repo = repo.rsplit(":", 1)[0]
        info["URI"] = f"docker://{repo}@{digest}" if repo and kind == "docker" else digest
    return info


def derivative_description(
    bids_dir: str | os.PathLike,
    *,
    env: Mapping[str, str] | None = None,
    url: str | None = None,
) -> dict[str, Any]:
    """The content of the derivatives' ``dataset_description.json`` for source ``bids_dir``."""
    source = read_source_description(bids_dir)
    source_url = url or dataset_url(bids_dir)
    generated: dict[str, Any] = {
        "Name": "neurofuse",
        "Version": __version__,
        "Description": "NeuroFuse EEG-fMRI workflow (Snakemake)",
    }
    link = code_url()
    if link:
        generated["CodeURL"] = link
    container = container_info(env)
    if container:
        generated["Container"] = container
    source_entry: dict[str, str] = {"URL": source_url}
    doi = source.get("DatasetDOI")
    if isinstance(doi, str) and doi.strip():
        source_entry["DOI"] = doi.strip()
    name = source.get("Name") if isinstance(source.get("Name"), str) else Path(os.fspath(bids_dir)).name
    return {
        "Name": f"NeuroFuse derivatives of {name}",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [generated],
        "SourceDatasets": [source_entry],
        "DatasetLinks": {"raw": source_url},
    }


def write_derivative_description(
    output_dir: str | os.PathLike,
    bids_dir: str | os.PathLike,
    *,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Write ``dataset_description.json`` and ``.bidsignore`` into ``output_dir``.

    Deterministic (no dates) and written only when the content changes, so an identical
    re-run leaves both files, and their modification times, alone. Returns the
    description's path.
    """
    root = Path(output_dir)
    path = root / DESCRIPTION_NAME
    text = json.dumps(derivative_description(bids_dir, env=env), indent=2, sort_keys=False) + "\n"
    atomic_write_text(path, text, only_if_changed=True)
    write_bidsignore(root)
    return path


def write_bidsignore(output_dir: str | os.PathLike) -> Path:
    """Write ``.bidsignore`` listing :data:`BIDSIGNORE` (only if it changes)."""
    path = Path(output_dir) / ".bidsignore"
    atomic_write_text(path, "".join(f"{entry}\n" for entry in BIDSIGNORE), only_if_changed=True)
    return path
