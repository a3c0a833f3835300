"""``neurofuse upload BIDS_DIR gs://bucket/path``: one bucket as the single source of truth.

What it does, in order:

1. Indexes the dataset (:func:`~neurofuse.bids.index.build_index`, images checked), so a
   dataset the workflow would refuse is not uploaded.
2. Lists the files to upload: every file of the dataset tree except hidden files and
   folders (``.git``, ``.datalad`` ...), ``derivatives/`` and ``sourcedata/`` (raw
   scanner files may hold identifying data); that is every modality, sidecar, ``scans.tsv``,
   BrainVision ``.eeg``/``.vmrk`` and top-level file the index relies on.
3. Lists the bucket folder once and compares each file with the object of the same name:
   same size and CRC32C (Google's own checksum, computed locally with ``google-crc32c``)
   -> already there, skipped (this is how an interrupted upload resumes); missing -> to
   upload; different -> a *conflict*. Conflicts stop the upload before anything is
   written, unless ``--force`` (then those objects are overwritten, guarded by their
   generation number so that a concurrent writer is not clobbered). Objects in the
   bucket that the dataset does not have are never deleted.
4. Uploads in parallel with a progress bar (files, bytes, rate, ETA). Every upload is
   verified: the client sends the CRC32C and the server checks it, and the stored
   object's CRC32C is compared with the local file's again. New objects are created
   with ``if_generation_match=0``: never over an object that appeared meanwhile.

Every request is retried on refused or reset connections, timeouts and 5xx answers until
a deadline (:func:`neurofuse.cloud.gcs_call_options`); an upload whose answer was lost is
recognised on the retry by its own CRC32C. When the retries run out, the command stops
with one line naming the object and the last error.

``--dry-run`` prints the plan (new, identical, conflicting; bytes) and uploads nothing.
An interrupted upload (Ctrl-C, a lost connection, a killed process) leaves only complete
objects behind -- a GCS object appears only once its upload completed -- so running the
same command again finishes the job.
"""

from __future__ import annotations

import base64
import concurrent.futures
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from neurofuse.cloud import (GsUrl, check_readable, credential_description, gcs_call_options, gcs_client, parse_gs_url,
                             storage_error)
from neurofuse.errors import NeuroFuseError

__all__ = ["UploadItem", "UploadPlan", "UploadResult", "plan_upload", "run_upload", "upload_report", "crc32c_of",
           "dataset_files"]

_SKIP_TOP = ("derivatives", "sourcedata")
_CHUNK = 8 * 1024 * 1024


def crc32c_of(path: str | os.PathLike) -> str:
    """CRC32C of a file, base64 of the big-endian bytes (the form GCS reports)."""
    import google_crc32c

    checksum = google_crc32c.Checksum()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            checksum.update(chunk)
    return base64.b64encode(checksum.digest()).decode("ascii")


def dataset_files(root: Path) -> list[str]:
    """Relative POSIX paths of the files to upload (see the module docstring)."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and not (rel_dir == Path(".") and d in _SKIP_TOP))
        for name in sorted(filenames):
            if not name.startswith("."):
                files.append((rel_dir / name).as_posix())
    return files


@dataclass
class UploadItem:
    rel: str
    size: int
    crc32c: str | None = None  # computed when needed
    remote_generation: int | None = None  # object that will be replaced (with --force)


@dataclass
class UploadPlan:
    """What an upload would do."""

    source: Path
    target: GsUrl
    new: list[UploadItem] = field(default_factory=list)
    identical: list[UploadItem] = field(default_factory=list)
    conflicts: list[UploadItem] = field(default_factory=list)
    remote_only: int = 0  # objects under the target the dataset does not have (left alone)

    @property
    def n_files(self) -> int:
        return len(self.new) + len(self.identical) + len(self.conflicts)

    def bytes_of(self, items: list[UploadItem]) -> int:
        return sum(item.size for item in items)

    def summary(self) -> str:
        mb = 1e6
        text = (f"{self.source} -> {self.target}: {self.n_files} files; {len(self.new)} to upload "
                f"({self.bytes_of(self.new) / mb:.1f} MB), {len(self.identical)} already there with the same CRC32C "
                f"({self.bytes_of(self.identical) / mb:.1f} MB), {len(self.conflicts)} different in the bucket")
        if self.remote_only:
            text += f"; {self.remote_only} objects in the bucket folder that the dataset does not have (left alone)"
        return text


def plan_upload(source: str | os.PathLike, target: str, *, client=None, check_dataset: bool = True) -> UploadPlan:
    """Compare the dataset with the bucket folder (nothing is written)."""
    from neurofuse.bids.index import build_index

    root = Path(source).expanduser()
    url = parse_gs_url(target, "upload target")
    if check_dataset:
        build_index(root, check_images=True)  # a dataset the workflow would refuse is not uploaded
    root = root.resolve()
    client = client or gcs_client()
    check_readable(client, url)
    remote = {}
    base = url.key("")
    try:
        for blob in client.list_blobs(url.bucket, prefix=base, **gcs_call_options()):
            remote[blob.name[len(base):]] = blob
    except Exception as exc:  # noqa: BLE001 - the last error after the retries
        raise storage_error(exc, "listing the upload target", str(url), client) from None
    plan = UploadPlan(root, url)
    local = dataset_files(root)
    for rel in local:
        item = UploadItem(rel, (root / rel).stat().st_size)
        blob = remote.get(rel)
        if blob is None:
            plan.new.append(item)
            continue
        same_size = int(blob.size or 0) == item.size
        if same_size:
            item.crc32c = crc32c_of(root / rel)
        if same_size and blob.crc32c == item.crc32c:
            plan.identical.append(item)
        else:
            item.remote_generation = int(blob.generation)
            plan.conflicts.append(item)
    plan.remote_only = len(set(remote) - set(local))
    return plan


class _CountingReader:
    """A file object that reports bytes read (once: a retry that seeks back is not counted twice)."""

    def __init__(self, handle, report: Callable[[int], None]):
        self._handle = handle
        self._report = report
        self._high = 0

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        position = self._handle.tell()
        if position > self._high:
            self._report(position - self._high)
            self._high = position
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def tell(self) -> int:
        return self._handle.tell()


@dataclass
class UploadResult:
    uploaded: int = 0
    uploaded_bytes: int = 0
    skipped: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def rate_mb_s(self) -> float:
        return self.uploaded_bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


def _upload_one(client, plan: UploadPlan, item: UploadItem, force: bool, report: Callable[[int], None]) -> None:
    from google.api_core import exceptions as gexc

    bucket = client.bucket(plan.target.bucket)
    blob = bucket.blob(plan.target.key(item.rel))
    path = plan.source / item.rel
    local_crc = item.crc32c or crc32c_of(path)
    # New objects must not exist yet; a forced overwrite replaces exactly the generation we compared with.
    generation = item.remote_generation if (force and item.remote_generation is not None) else 0
    where = f"{plan.target}/{item.rel}"
    try:
        with open(path, "rb") as handle:
            # Retried on refused/reset connections, timeouts and 5xx (gcs_call_options); the
            # generation precondition makes a repeat safe. The server checks the CRC32C sent
            # along and stores nothing that does not match; an upload cut off mid-way leaves
            # no object (a GCS object appears only once its upload completed).
            blob.upload_from_file(_CountingReader(handle, report), size=item.size, checksum="crc32c",
                                  if_generation_match=generation, **gcs_call_options())
    except gexc.PreconditionFailed:
        # Either someone else wrote the object meanwhile, or an earlier attempt of this very
        # upload succeeded and only its answer was lost (then the retry meets its own object).
        try:
            blob.reload(**gcs_call_options())
        except Exception as exc:  # noqa: BLE001
            raise storage_error(exc, "checking the object after an upload", where, client) from None
        if blob.crc32c != local_crc or int(blob.size or 0) != item.size:
            raise NeuroFuseError("the object changed in the bucket during the upload", where,
                                 "run the upload again to compare it afresh") from None
    except gexc.Forbidden:
        raise NeuroFuseError(f"no permission to write to bucket '{plan.target.bucket}' with "
                             f"{credential_description(client)}", where,
                             "grant roles/storage.objectCreator (or objectAdmin for --force)") from None
    except NeuroFuseError:
        raise
    except Exception as exc:  # noqa: BLE001 - the last error after the retries (connection, timeout, 5xx)
        raise storage_error(exc, "uploading", where, client,
                            "check the network; run the same command again: objects already in the bucket are "
                            "compared by CRC32C and skipped, and no partial object was left") from None
    if blob.crc32c != local_crc:  # the server's checksum of what it stored, against the local file
        raise NeuroFuseError(f"CRC32C mismatch after upload (local {local_crc}, bucket {blob.crc32c})",
                             f"{plan.target}/{item.rel}", "run the upload again; the object will be compared afresh")


def run_upload(plan: UploadPlan, *, client=None, force: bool = False, jobs: int = 8, progress: bool = True,
               on_file_done: Callable[[UploadItem], None] | None = None) -> UploadResult:
    """Upload the plan's new files (and, with ``force``, its conflicts); verify each one.

    ``on_file_done`` is called in this thread after each verified upload. An interruption
    (Ctrl-C) stops submitting files, lets the running uploads finish or fail, and returns
    with ``interrupted`` set; the bucket then holds only complete, verified objects.
    """
    from tqdm import tqdm

    if plan.conflicts and not force:
        listed = ", ".join(item.rel for item in plan.conflicts[:5]) + (" ..." if len(plan.conflicts) > 5 else "")
        raise NeuroFuseError(
            f"{len(plan.conflicts)} files differ from the objects already in the bucket ({listed}); nothing was "
            "uploaded", str(plan.target), "check which copy is right; --force overwrites the bucket's objects")
    client = client or gcs_client()
    items = plan.new + (plan.conflicts if force else [])
    total = plan.bytes_of(items)
    result = UploadResult(skipped=len(plan.identical))
    lock = threading.Lock()
    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, disable=not progress, dynamic_ncols=True,
               desc=f"0/{len(items)} files")

    def report(n: int) -> None:
        with lock:
            bar.update(n)

    counted: set[concurrent.futures.Future] = set()

    def count(future: concurrent.futures.Future) -> None:
        counted.add(future)
        result.uploaded += 1
        result.uploaded_bytes += futures[future].size
        bar.set_description(f"{result.uploaded}/{len(items)} files")

    t0 = time.perf_counter()
    pool = concurrent.futures.ThreadPoolExecutor(max(1, jobs))
    futures = {pool.submit(_upload_one, client, plan, item, force, report): item for item in items}
    try:
        for future in concurrent.futures.as_completed(futures):
            future.result()
            count(future)
            if on_file_done is not None:
                on_file_done(futures[future])
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if result.interrupted:  # uploads that were running when the interruption came did finish
            for future in futures:
                if future not in counted and future.done() and not future.cancelled() and future.exception() is None:
                    count(future)
        bar.close()
        result.seconds = time.perf_counter() - t0
    return result


def upload_report(plan: UploadPlan, result: UploadResult) -> str:
    """The closing line(s) of ``neurofuse upload``."""
    text = (f"uploaded {result.uploaded} files ({result.uploaded_bytes / 1e6:.1f} MB) in {result.seconds:.1f} s "
            f"({result.rate_mb_s:.1f} MB/s), every CRC32C verified; {result.skipped} already there")
    if result.interrupted:
        left = len(plan.new) + len(plan.conflicts) - result.uploaded
        text += (f"\ninterrupted: {left} files not uploaded; the bucket holds only complete objects -> run the same "
                 "command again to upload the rest")
    return text
