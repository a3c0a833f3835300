"""Datasets and outputs in Google Cloud Storage (``gs://bucket/path``).

Three jobs, all for the Snakefile (the command ``neurofuse upload`` is in
:mod:`neurofuse.upload`):

Where things are (:func:`run_locations`)
    ``bids_dir`` and ``output_dir`` may be ``gs://`` URLs when Snakemake runs with the
    GCS plugin as its default storage provider (``--default-storage-provider gcs
    --default-storage-prefix gs://BUCKET/PATH``; the ``gcp`` and ``kubernetes``
    profiles set the provider). Snakemake then stores every relative output path under
    the prefix, so the outputs' folder must be the prefix or a folder inside it, and
    the Snakefile gets a relative ``OUT``. A relative ``bids_dir`` is taken inside the
    prefix too; a ``gs://`` one may be anywhere. The rules stage each BIDS input with
    ``storage("gs://...")`` (its own files only: a job downloads its run, not the dataset).

The index without the data (:func:`index_bucket`)
    The index needs the file names, the JSON sidecars, ``scans.tsv`` and the BrainVision
    header and marker files -- never the images or the EEG signal. We list the bucket
    (per subject folder, in parallel, only the subjects the filters keep) and mirror it
    into ``.snakemake/neurofuse/gcs/<bucket>/<path>``: small text files are downloaded,
    every other object becomes a *sparse* placeholder of its exact size (no disk space,
    nothing downloaded; the BrainVision sample count comes from the ``.eeg`` size). With
    ``index.check_images`` each BOLD and T1w image contributes its first 64 KiB (the NIfTI header)
    and, for ``.nii.gz``, its last 4 bytes (the gzip size trailer), fetched with range
    requests, so truncated uploads are still caught. EEG files in formats whose markers
    live inside the signal file (EDF, BDF, EEGLAB, FIF) are the exception: they are
    downloaded to read their annotations. The mirror remembers every object's generation,
    so a second run downloads only what changed. Then the ordinary
    :func:`~neurofuse.bids.index.build_index` runs on the mirror, and paths in the index,
    its warnings and its errors are given back as ``gs://`` URLs.

The index beside the outputs (:func:`store_index`, :func:`fetch_index`)
    The main process uploads ``<output>/neurofuse/dataset_index.json`` to the bucket when
    its content changed (an unchanged index keeps its time stamp, so a re-run has nothing
    to do); a job on another machine downloads it instead of indexing again.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import io
import json
import os
import posixpath
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurofuse.errors import NeuroFuseError
from neurofuse.io import atomic_write_bytes, atomic_write_text

__all__ = [
    "GsUrl",
    "parse_gs_url",
    "is_gs_url",
    "gcs_client",
    "credential_description",
    "check_readable",
    "RunLocations",
    "run_locations",
    "index_bucket",
    "store_index",
    "fetch_index",
    "load_bucket_index",
    "gcs_call_options",
    "storage_error",
    "push_file",
    "pull_file",
]

_SCHEME = re.compile(r"^(gs|gcs)://", re.IGNORECASE)
# Bucket names: 3-63 characters (222 with dots), lower-case letters, digits, '-', '_', '.'; alphanumeric at both ends.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
#: Where the index mirror of a bucket lives, inside Snakemake's working directory.
MIRROR_ROOT = Path(".snakemake") / "neurofuse" / "gcs"
#: Downloaded in full to index (small text); everything else is a placeholder or a header.
_TEXT_SUFFIXES = (".json", ".tsv", ".vhdr", ".vmrk", ".bval", ".bvec")
#: EEG formats whose markers are inside the signal file: downloaded in full to index.
_EEG_SELF_CONTAINED = (".edf", ".bdf", ".set", ".fdt", ".fif")
#: Bytes of a BOLD image fetched for its header (covers NIfTI-1/2 headers, gzipped or not).
HEADER_BYTES = 64 * 1024
_SKIP_TOP = ("derivatives/", "sourcedata/", "code/")
_WORKERS = 16


@dataclass(frozen=True)
class GsUrl:
    """A bucket and an object path (``prefix``, no leading or trailing slash; may be empty)."""

    bucket: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}" if self.prefix else f"gs://{self.bucket}"

    def join(self, rel: str) -> GsUrl:
        """The folder or object ``rel`` (a relative path) inside this one."""
        rel = posixpath.normpath(rel.strip("/")) if rel.strip("/") else "."
        if rel == ".":
            return self
        if rel.startswith(".."):
            raise NeuroFuseError("path leaves its bucket folder", f"{self}/{rel}", "remove the '..'")
        return GsUrl(self.bucket, f"{self.prefix}/{rel}" if self.prefix else rel)

    def key(self, rel: str) -> str:
        """Object name of ``rel`` (a path relative to this folder)."""
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def contains(self, other: GsUrl) -> bool:
        """``other`` is this folder or inside it."""
        if other.bucket != self.bucket:
            return False
        return not self.prefix or other.prefix == self.prefix or other.prefix.startswith(self.prefix + "/")

    def relative(self, other: GsUrl) -> str:
        """Path of ``other`` relative to this folder (``"."`` when they are the same)."""
        if other.prefix == self.prefix:
            return "."
        return other.prefix[len(self.prefix) + 1:] if self.prefix else other.prefix


def is_gs_url(value: Any) -> bool:
    return isinstance(value, str) and bool(_SCHEME.match(value))


def parse_gs_url(url: str, what: str = "path") -> GsUrl:
    """``gs://bucket[/path]`` (or ``gcs://``) -> :class:`GsUrl`; a clear error for anything else."""
    match = _SCHEME.match(url or "")
    if not match:
        raise NeuroFuseError(f"{what} is not a gs:// URL", url, "write it as gs://BUCKET/PATH")
    rest = url[match.end():]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise NeuroFuseError(f"{what} has no bucket name", url, "write it as gs://BUCKET/PATH, e.g. gs://my-lab/study1")
    if not _BUCKET.match(bucket) or ".." in bucket or (len(bucket) > 63 and "." not in bucket):
        raise NeuroFuseError(f"{what}: '{bucket}' is not a valid bucket name", url,
                             "bucket names have 3-63 lower-case letters, digits, '-', '_' or '.', and start and "
                             "end with a letter or digit")
    prefix = posixpath.normpath(prefix.strip("/")) if prefix.strip("/") else ""
    if prefix.startswith(".."):
        raise NeuroFuseError(f"{what} leaves its bucket", url, "remove the '..'")
    return GsUrl(bucket, "" if prefix == "." else prefix)


# --------------------------------------------------------------------------- client


def _project(project: str | None) -> str | None:
    return (project or os.environ.get("SNAKEMAKE_STORAGE_GCS_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT")
            or None)


def gcs_client(project: str | None = None):
    """A ``google.cloud.storage.Client``; a :class:`NeuroFuseError` when there are no credentials.

    With ``STORAGE_EMULATOR_HOST`` set (a local emulator) the client is anonymous.
    """
    from google.cloud import storage

    try:
        return storage.Client(project=_project(project))
    except Exception as exc:  # noqa: BLE001 - google.auth raises DefaultCredentialsError and friends
        name = type(exc).__name__
        raise NeuroFuseError(
            f"no Google Cloud credentials for gs:// paths ({name})", None,
            "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a service "
            "account key, or STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT for a local emulator") from None


#: Seconds a single request to GCS may take before it is abandoned and retried.
DEFAULT_TIMEOUT_S = 60.0
#: Seconds of retrying a failing request (exponential back-off, 1 s doubling up to 60 s) before giving up.
DEFAULT_RETRY_DEADLINE_S = 300.0


def _seconds_from_env(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise NeuroFuseError(f"{name} must be a positive number of seconds, not {value!r}", None,
                             f"unset it for the default ({default:g} s)")
    return seconds


def gcs_call_options() -> dict[str, Any]:
    """``timeout`` and ``retry`` for every google-cloud-storage call that NeuroFuse makes.

    Transient failures -- refused or reset connections, timeouts, 408/429/5xx answers --
    are retried with exponential back-off until the deadline (the library's own
    predicate, ``google.cloud.storage.retry.DEFAULT_RETRY``); every call that writes is
    made safe to repeat by a generation precondition. ``NEUROFUSE_GCS_TIMEOUT`` (seconds
    per request, default 60) and ``NEUROFUSE_GCS_RETRY_DEADLINE`` (seconds of retrying,
    default 300) change the two limits.
    """
    from google.cloud.storage.retry import DEFAULT_RETRY

    deadline = _seconds_from_env("NEUROFUSE_GCS_RETRY_DEADLINE", DEFAULT_RETRY_DEADLINE_S)
    return {"timeout": _seconds_from_env("NEUROFUSE_GCS_TIMEOUT", DEFAULT_TIMEOUT_S),
            "retry": DEFAULT_RETRY.with_deadline(deadline)}


def _cause(exc: BaseException) -> str:
    """A short description of a storage failure: the last error behind a retry that gave up."""
    from google.api_core import exceptions as gexc

    if isinstance(exc, gexc.RetryError) and exc.cause is not None:
        exc = exc.cause
    if isinstance(exc, gexc.GoogleAPICallError):
        import http

        try:
            text = f"{int(exc.code)} {http.HTTPStatus(int(exc.code)).phrase}"
        except (TypeError, ValueError):
            text = str(exc.code)
        said = re.search(r'"message":\s*"([^"]{1,200})"', str(exc.message))  # the server's own words, not the URL
        return f"{text}: {said.group(1)}" if said else text
    text = str(exc).split("\n")[0]
    for marker in ("Connection refused", "Connection reset", "timed out", "Read timed out", "RemoteDisconnected"):
        if marker in text:
            return f"{type(exc).__name__}: {marker.lower()}"
    return f"{type(exc).__name__}: {text[:160]}"


def storage_error(exc: BaseException, action: str, url: str, client=None, hint: str | None = None) -> NeuroFuseError:
    """A :class:`NeuroFuseError` for a GCS call that failed for good (after its retries)."""
    deadline = gcs_call_options()["retry"].deadline
    who = credential_description(client) if client is not None else None
    return NeuroFuseError(
        f"{action} failed after retrying for up to {deadline:g} s ({_cause(exc)})", url,
        hint or ("check the network and the bucket" + (f" ({who})" if who else "")
                 + "; run the same command again to continue: nothing incomplete was kept"))


def credential_description(client) -> str:
    """Which identity the client uses, for error messages."""
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator:
        return f"anonymous, emulator at {emulator}"
    creds = getattr(client, "_credentials", None)
    email = getattr(creds, "service_account_email", None)
    if email and email != "default":
        return f"service account {email}"
    key = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key:
        return f"credentials in {key}"
    return f"application default credentials ({type(creds).__name__})"


def check_readable(client, url: GsUrl) -> None:
    """Fail clearly when the bucket does not exist or this identity may not list it."""
    from google.api_core import exceptions as gexc

    try:
        next(iter(client.list_blobs(url.bucket, prefix=url.key(""), max_results=1, **gcs_call_options())), None)
    except gexc.NotFound:
        raise NeuroFuseError(f"bucket '{url.bucket}' does not exist", str(url),
                             f"check the name, or create it (gcloud storage buckets create gs://{url.bucket}); "
                             f"looked up with {credential_description(client)}") from None
    except gexc.Forbidden:
        raise NeuroFuseError(f"bucket '{url.bucket}' is not readable with {credential_description(client)}",
                             str(url), "grant this identity roles/storage.objectViewer (read) or "
                             "roles/storage.objectAdmin (outputs) on the bucket") from None
    except Exception as exc:  # noqa: BLE001 - API errors, and connection errors from requests/urllib3
        raise storage_error(exc, f"listing bucket '{url.bucket}'", str(url), client,
                            "check the network and the credentials "
                            f"({credential_description(client)}), or STORAGE_EMULATOR_HOST if you use an emulator") from None


# --------------------------------------------------------------------------- locations


@dataclass(frozen=True)
class RunLocations:
    """Where a run reads its dataset and writes its outputs.

    ``out_path`` is what the Snakefile uses for output paths (local, or relative to the
    default storage prefix); ``out_url`` / ``bids_url`` are set when they live in GCS.
    """

    out_path: str
    bids_dir: str
    out_url: GsUrl | None = None
    bids_url: GsUrl | None = None
    project: str | None = None

    @property
    def on_storage(self) -> bool:
        return self.out_url is not None

    def bids_object(self, rel: str) -> str:
        """The ``gs://`` URL of a dataset file (``rel`` relative to the dataset root)."""
        assert self.bids_url is not None
        return f"gs://{self.bids_url.bucket}/{self.bids_url.key(rel)}"


def run_locations(config: Mapping[str, Any], provider: str | None, prefix: str | None,
                  project: str | None = None) -> RunLocations:
    """Resolve ``bids_dir``/``output_dir`` against Snakemake's default storage settings."""
    bids_dir, output_dir = str(config["bids_dir"]), str(config["output_dir"])
    remote = [name for name, value in (("bids_dir", bids_dir), ("output_dir", output_dir)) if is_gs_url(value)]
    if provider is None:
        if remote:
            raise NeuroFuseError(
                f"{' and '.join(remote)} {'is a' if len(remote) == 1 else 'are'} gs:// URL"
                f"{'' if len(remote) == 1 else 's'} but Snakemake has no default storage provider", None,
                "run with --profile gcp (or kubernetes), or add --default-storage-provider gcs "
                "--default-storage-prefix gs://BUCKET/PATH")
        return RunLocations(out_path=output_dir, bids_dir=bids_dir)
    if provider != "gcs":
        raise NeuroFuseError(f"the default storage provider is '{provider}'; NeuroFuse reads datasets from Google "
                             "Cloud Storage only", None, "use --default-storage-provider gcs")
    if not prefix:
        raise NeuroFuseError("the gcs default storage provider needs a bucket and folder", None,
                             "add --default-storage-prefix gs://BUCKET/PATH (where the outputs go)")
    base = parse_gs_url(prefix, "--default-storage-prefix")
    for name, value in (("bids_dir", bids_dir), ("output_dir", output_dir)):
        if not is_gs_url(value) and os.path.isabs(value):
            hint = ("upload the dataset first: neurofuse upload " + value + f" {base.join('bids')}"
                    if name == "bids_dir" else f"use a path relative to {base} or a gs:// URL inside it")
            raise NeuroFuseError(f"{name} is a local folder but outputs go to {base}", value, hint)
    out_url = parse_gs_url(output_dir, "output_dir") if is_gs_url(output_dir) else base.join(output_dir)
    if not base.contains(out_url):
        raise NeuroFuseError(f"output_dir must be inside the default storage prefix {base}", str(out_url),
                             f"set --default-storage-prefix {out_url} (or a folder above it)")
    bids_url = parse_gs_url(bids_dir, "bids_dir") if is_gs_url(bids_dir) else base.join(bids_dir)
    return RunLocations(out_path=base.relative(out_url), bids_dir=str(bids_url), out_url=out_url, bids_url=bids_url,
                        project=project)


# --------------------------------------------------------------------------- index mirror


def _b64_hex(value: str | None) -> str | None:
    return base64.b64decode(value).hex() if value else None


def _list_folder(client, url: GsUrl, rel: str, *, recursive: bool) -> tuple[list[Any], list[str]]:
    """Blobs under ``url/rel/`` and, when not recursive, the sub-folder names."""
    prefix = url.key(rel) + "/" if rel else (url.prefix + "/" if url.prefix else "")
    it = client.list_blobs(url.bucket, prefix=prefix, delimiter=None if recursive else "/", **gcs_call_options())
    blobs = list(it)
    folders = [p[len(prefix):].rstrip("/") for p in getattr(it, "prefixes", ())] if not recursive else []
    return blobs, folders


def _wanted_subjects(folders: Iterable[str], options: Mapping[str, Any]) -> list[str]:
    """The ``sub-*`` folders that the participant filters keep (the index checks unknown labels)."""

    def folder(label: str) -> str:
        return label if label.startswith("sub-") else f"sub-{label}"

    subjects = [f for f in folders if f.startswith("sub-")]
    keep = {folder(s) for s in options.get("participant_label", ())}
    drop = {folder(s) for s in options.get("exclude_participant_label", ())}
    return [s for s in subjects if (not keep or s in keep) and s not in drop]


class _Mirror:
    """The local shadow of one dataset in a bucket (see the module docstring)."""

    def __init__(self, client, url: GsUrl, root: Path, check_images: bool):
        self.client = client
        self.url = url
        self.root = root
        self.check_images = check_images
        self.state_file = root.parent / f".{root.name}.objects.json"
        try:
            self.state: dict[str, Any] = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            self.state = {}
        self.fetched: Counter[str] = Counter()  # objects fetched by this sync: full, header, none

    def kind(self, rel: str) -> str:
        name = rel.rsplit("/", 1)[-1].lower()
        if name.endswith(_TEXT_SUFFIXES):
            return "text"
        if name.endswith(_EEG_SELF_CONTAINED) and "/eeg/" in f"/{rel}":
            return "full"
        if self.check_images and (("/func/" in f"/{rel}" and name.endswith(("_bold.nii.gz", "_bold.nii")))
                                  or ("/anat/" in f"/{rel}" and name.endswith(("_t1w.nii.gz", "_t1w.nii")))):
            return "header"
        return "placeholder"

    def sync(self, blobs: list[Any]) -> None:
        """Bring the mirror up to date with ``blobs`` (objects under the dataset folder)."""
        base = self.url.key("")
        wanted: dict[str, Any] = {}
        for blob in blobs:
            rel = blob.name[len(base):] if base else blob.name
            if not rel or rel.endswith("/") or rel.startswith(_SKIP_TOP) or any(p.startswith(".") for p in rel.split("/")):
                continue
            wanted[rel] = blob
        todo = []
        for rel, blob in wanted.items():
            kind = self.kind(rel)
            stamp = f"{blob.generation}:{blob.size}:{kind}"
            if self.state.get(rel) != stamp or not (self.root / rel).exists():
                todo.append((rel, blob, kind, stamp))
        if todo:
            with concurrent.futures.ThreadPoolExecutor(_WORKERS) as pool:
                for rel, stamp, fetched in pool.map(self._fetch, todo):
                    self.state[rel] = stamp
                    self.fetched[fetched] += 1
        # Objects gone from the bucket leave the mirror too.
        stale = set(self.state) - set(wanted)
        for rel in stale:
            self.state.pop(rel, None)
            try:
                (self.root / rel).unlink()
            except FileNotFoundError:
                pass
        if self.root.exists():
            for path in list(self.root.rglob("*")):
                if path.is_file() and path.relative_to(self.root).as_posix() not in wanted:
                    path.unlink()
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.state_file, json.dumps(self.state, sort_keys=True))

    def _fetch(self, item: tuple[str, Any, str, str]) -> tuple[str, str, str]:
        rel, blob, kind, stamp = item
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        size = int(blob.size or 0)
        if kind in ("text", "full"):
            atomic_write_bytes(path, blob.download_as_bytes(**gcs_call_options()))  # checked against the object's MD5
            return rel, stamp, "full"
        fetched = "none"
        with open(path, "wb") as handle:
            handle.truncate(size)  # sparse: the right size, no data, no disk blocks
            if kind == "header" and size:
                head = blob.download_as_bytes(start=0, end=min(size, HEADER_BYTES) - 1, checksum=None,
                                              **gcs_call_options())
                handle.seek(0)
                handle.write(head)
                fetched = "header"
                if rel.lower().endswith(".gz") and size > len(head):
                    tail = blob.download_as_bytes(start=size - 4, end=size - 1, checksum=None,
                                                  **gcs_call_options())
                    handle.seek(size - 4)
                    handle.write(tail)
                    if not _gzip_trailer_matches(head, tail):
                        # A multi-member gzip or a damaged file: the trailer cannot be trusted,
                        # so this one image is downloaded and checked in full.
                        handle.seek(0)
                        handle.truncate(0)
                        blob.download_to_file(handle, **gcs_call_options())
                        fetched = "full"
        return rel, stamp, fetched


def _gzip_trailer_matches(head: bytes, tail: bytes) -> bool:
    """Whether the gzip size trailer equals the size the NIfTI header at the start of ``head`` implies."""
    import nibabel as nib
    import numpy as np

    try:
        raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 1 << 16)
        nifti1 = raw[:4] == (348).to_bytes(4, "little")
        header = (nib.Nifti1Header if nifti1 else nib.Nifti2Header).from_fileobj(io.BytesIO(raw), check=False)
        offset = int(header.get_data_offset()) or (352 if nifti1 else 544)
        expected = offset + int(np.prod(header.get_data_shape(), dtype=np.int64)) * header.get_data_dtype().itemsize
    except Exception:  # noqa: BLE001 - not a NIfTI header: the index reports it
        return True
    return int.from_bytes(tail, "little") == expected % (1 << 32)


def _swap_root(text: str, mirror: str, url: str) -> str:
    return text.replace(mirror + "/", url + "/").replace(mirror, url)


def index_bucket(url: GsUrl, index_options: Mapping[str, Any], *, client=None, mirror_root: Path = MIRROR_ROOT):
    """Index the dataset at ``url`` from its listing, sidecars and headers (see the module docstring)."""
    from neurofuse.bids.index import build_index

    client = client or gcs_client()
    check_readable(client, url)
    try:
        root_blobs, folders = _list_folder(client, url, "", recursive=False)
    except Exception as exc:  # noqa: BLE001
        raise storage_error(exc, "listing the dataset folder", str(url), client) from None
    if not any(b.name == url.key("dataset_description.json") for b in root_blobs):
        raise NeuroFuseError("not a BIDS dataset: dataset_description.json is missing", str(url),
                             "point bids_dir at the dataset root in the bucket, or upload it with "
                             "`neurofuse upload BIDS_DIR " + str(url) + "`")
    subjects = _wanted_subjects(folders, index_options)
    try:
        with concurrent.futures.ThreadPoolExecutor(_WORKERS) as pool:
            listed = list(pool.map(lambda s: _list_folder(client, url, s, recursive=True)[0], subjects))
        blobs = root_blobs + [b for chunk in listed for b in chunk]
        mirror = _Mirror(client, url, Path(mirror_root) / url.bucket / (url.prefix or "_root_"),
                         bool(index_options.get("check_images", True)))
        mirror.sync(blobs)
    except NeuroFuseError:
        raise
    except Exception as exc:  # noqa: BLE001 - the last error after the retries (see gcs_call_options)
        raise storage_error(exc, "reading the dataset's listing, sidecars and headers", str(url), client) from None
    local = str(mirror.root.resolve())
    try:
        index = build_index(mirror.root, **index_options)
    except NeuroFuseError as err:
        problem, path, hint = (_swap_root(t, local, str(url)) if t else t for t in (err.problem, err.path, err.hint))
        raise type(err)(problem, path, hint) from None
    index.bids_dir = str(url)
    if index.name == mirror.root.name:  # no Name in dataset_description.json: the folder's name
        index.name = url.prefix.rsplit("/", 1)[-1] or url.bucket
    index.warnings = [_swap_root(w, local, str(url)) for w in index.warnings]
    return index


# --------------------------------------------------------------------------- index beside the outputs


def store_index(client, index_bytes: bytes, url: GsUrl) -> bool:
    """Upload the index JSON to ``url`` unless the object already holds these bytes."""
    blob = client.bucket(url.bucket).blob(url.prefix)
    try:
        blob.reload(**gcs_call_options())
        if blob.md5_hash and _b64_hex(blob.md5_hash) == hashlib.md5(index_bytes).hexdigest():  # noqa: S324
            return False
    except Exception as exc:  # noqa: BLE001
        from google.api_core import exceptions as gexc

        if not isinstance(exc, gexc.NotFound):
            raise storage_error(exc, "reading the stored dataset index", str(url), client) from None
    try:
        blob.upload_from_string(index_bytes, content_type="application/json", **gcs_call_options())
    except Exception as exc:  # noqa: BLE001
        raise storage_error(exc, "storing the dataset index", str(url), client) from None
    return True


def fetch_index(client, url: GsUrl, local: Path) -> Path:
    """Download the index a main process stored (a job on another machine)."""
    from google.api_core import exceptions as gexc

    try:
        data = client.bucket(url.bucket).blob(url.prefix).download_as_bytes(**gcs_call_options())
    except gexc.NotFound:
        raise NeuroFuseError("the dataset index is missing from the bucket", str(url),
                             "run Snakemake's main process first (it writes the index), or check output_dir") from None
    except Exception as exc:  # noqa: BLE001
        raise storage_error(exc, "downloading the dataset index", str(url), client) from None
    atomic_write_bytes(local, data)
    return local



def load_bucket_index(config: Mapping[str, Any], locations: RunLocations, *, rebuild: bool,
                      options: Mapping[str, Any]):
    """The index of a run whose outputs are in a bucket: built and stored (main process) or fetched (a job)."""
    from neurofuse.bids.index import DatasetIndex
    from neurofuse.workflow import INDEX_NAME

    assert locations.out_url is not None and locations.bids_url is not None
    client = gcs_client(locations.project)
    url = locations.out_url.join(INDEX_NAME)
    if not rebuild:
        local = MIRROR_ROOT.parent / "index" / url.bucket / url.prefix
        return DatasetIndex.from_json(fetch_index(client, url, local))
    index = index_bucket(locations.bids_url, options, client=client)
    check_readable(client, locations.out_url)
    store_index(client, index.to_bytes(), url)
    return index


# --------------------------------------------------------------------------- job state kept in the bucket


def push_file(local: str | os.PathLike, url: str, client=None) -> str | None:
    """Copy a local file to ``url`` (a training checkpoint, so that a job on a new VM can resume).

    Returns None, or the reason it failed (the caller goes on: only resuming is lost).
    """
    target = parse_gs_url(url, "checkpoint location")
    try:
        client = client or gcs_client()
        client.bucket(target.bucket).blob(target.prefix).upload_from_filename(
            os.fspath(local), checksum="crc32c", **gcs_call_options())
    except Exception as exc:  # noqa: BLE001
        return str(storage_error(exc, "copying the checkpoint to the bucket", url, client))
    return None


def pull_file(url: str, local: str | os.PathLike, client=None) -> bool:
    """Download ``url`` to ``local`` (atomically) if the object exists; False if it does not."""
    from google.api_core import exceptions as gexc

    source = parse_gs_url(url, "checkpoint location")
    client = client or gcs_client()
    try:
        data = client.bucket(source.bucket).blob(source.prefix).download_as_bytes(**gcs_call_options())
    except gexc.NotFound:
        return False
    except Exception as exc:  # noqa: BLE001
        raise storage_error(exc, "downloading the checkpoint", url, client) from None
    atomic_write_bytes(local, data)
    return True
