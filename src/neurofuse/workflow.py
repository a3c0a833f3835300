"""What the Snakefile needs from the library: the dataset index and the targets.

The index is built once, by the main Snakemake process (including ``snakemake -n``),
and written to ``<output_dir>/neurofuse/dataset_index.json``. Jobs running elsewhere
(cluster, cloud: Snakemake's remote mode) re-parse the Snakefile but only *read* that
file, so a job never walks the dataset again (snakebids #256 is the failure this avoids).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from neurofuse.bids.index import DatasetIndex, build_index
from neurofuse.errors import NeuroFuseError, ResourceLimitError
from neurofuse.io import storage_error

INDEX_NAME = "neurofuse/dataset_index.json"
#: The main Snakemake processes that may hold the working directory's lock (see :func:`release_stale_lock`).
PROCESSES = Path(".snakemake") / "neurofuse" / "processes"


def index_file(output_dir: str) -> str:
    """Where the dataset index of a run lives."""
    return str(Path(output_dir) / INDEX_NAME)


def index_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``build_index`` keyword arguments that a validated config asks for."""
    return {
        "participant_label": tuple(config["participant_label"]),
        "exclude_participant_label": tuple(config["exclude_participant_label"]),
        "task": tuple(config["task"]),
        "session": tuple(config["session"]),
        "volume_marker": config["eeg"]["volume_marker"],
        "unpaired_eeg": config["pairing"]["unpaired_eeg"],
        "check_images": config["index"]["check_images"],
        # (a config validated against an older schema may lack these keys: the defaults)
        "eeg_recorded_in": config["eeg"]["recorded_in"] if "recorded_in" in config["eeg"] else "auto",
        "dummy_scans": int(config["eeg"]["dummy_scans"] if "dummy_scans" in config["eeg"] else 0),
        "volume_mismatch_tolerance": (config["eeg"]["volume_mismatch_tolerance"]
                                      if "volume_mismatch_tolerance" in config["eeg"] else None),
    }


def load_index(config: Mapping[str, Any], *, rebuild: bool, locations=None) -> DatasetIndex:
    """Build (main process) or read (a job) the index for a validated config.

    ``locations`` (:class:`neurofuse.cloud.RunLocations`): when the outputs are in a
    bucket, the index is built from the bucket and stored there (:mod:`neurofuse.cloud`).
    """
    if locations is not None and locations.on_storage:
        from neurofuse.cloud import load_bucket_index

        return load_bucket_index(config, locations, rebuild=rebuild, options=index_options(config))
    path = index_file(config["output_dir"])
    if not rebuild:
        try:
            return DatasetIndex.from_json(path)
        except FileNotFoundError:
            raise NeuroFuseError(
                "the dataset index is missing",
                path,
                "run Snakemake from the main process first (it writes the index), or check output_dir",
            ) from None
    bids_dir = config["bids_dir"]
    if not Path(bids_dir).exists():
        hint = "run `make demo` (or `neurofuse simulate data/demo`) to create the demo dataset"
        if str(bids_dir) != "data/demo":
            hint = "set bids_dir to a BIDS dataset: snakemake --config bids_dir=/path/to/dataset"
        raise NeuroFuseError("bids_dir does not exist", bids_dir, hint)
    index = build_index(bids_dir, **index_options(config))
    index.to_json(path)
    return index


#: ``resources.memory_limit`` values (see config/README.md).
MEMORY_POLICIES = ("enforce", "warn", "off")
_POLL_S = 0.2  # how often the memory guard samples the job's resident memory
_GRACE_S = 5.0  # after asking the step to stop, how long before the job is ended outright


@dataclass
class JobContext:
    """What a workflow script's ``snakemake`` object says about its job (for messages and checks)."""

    rule: str = "step"
    wildcards: dict[str, str] = field(default_factory=dict)
    mem_mb: float | None = None
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    output_dir: str | None = None
    bids_dir: str | None = None
    memory_limit: str = "enforce"

    @classmethod
    def from_snakemake(cls, smk: Any) -> JobContext:
        if smk is None:
            return cls()
        wildcards = getattr(smk, "wildcards", None)
        items = wildcards.items() if hasattr(wildcards, "items") else []
        config = getattr(smk, "config", None) or {}
        limits = config["resources"] if "resources" in config else {}  # validated configs always have it
        mem = getattr(getattr(smk, "resources", None), "mem_mb", None)
        def paths(files):
            return [str(p) for p in (files or []) if isinstance(p, (str, PathLike))]

        inputs, outputs = paths(getattr(smk, "input", None)), paths(getattr(smk, "output", None))
        return cls(rule=str(getattr(smk, "rule", None) or "step"),
                   wildcards={str(k): str(v) for k, v in items},
                   mem_mb=float(mem) if isinstance(mem, (int, float)) and not isinstance(mem, bool) else None,
                   inputs=inputs, outputs=outputs, output_dir=config.get("output_dir"),
                   bids_dir=config.get("bids_dir"),
                   memory_limit=str(limits["memory_limit"] if "memory_limit" in limits else "enforce"))

    @property
    def subject(self) -> str | None:
        for value in self.wildcards.values():
            match = re.search(r"(?:^|[/_])sub-([A-Za-z0-9]+)", value)
            if match:
                return match.group(1)
        return self.wildcards.get("subject", "").removeprefix("sub-") or None

    def describe(self) -> str:
        """``rule fmri_estimate_head_motion for subject 01 (run=sub-01_task-rest)``."""
        text = f"rule {self.rule}"
        subject = self.subject
        if subject:
            text += f" for subject {subject}"
        shown = {k: v for k, v in self.wildcards.items() if k not in ("sdir", "adir", "subject")}
        if shown:
            text += " (" + ", ".join(f"{k}={v}" for k, v in shown.items()) + ")"
        return text

    def raw_inputs(self) -> list[str]:
        """Inputs from the raw dataset: under ``bids_dir`` (for a bucket, its downloaded copy) and not
        under ``output_dir`` (which may lie inside the dataset, in derivatives/)."""
        def under(folder: str | None) -> Callable[[str], bool]:
            if not folder:
                return lambda path: False
            folder = str(folder)
            if "://" in folder:  # Snakemake storage keeps a local copy at .../<bucket>/<key>
                marker = "/" + folder.split("://", 1)[1].strip("/") + "/"
                return lambda path: marker in "/" + path.replace(os.sep, "/")
            prefix = os.path.abspath(folder) + os.sep
            return lambda path: os.path.abspath(path).startswith(prefix)

        in_bids, in_output = under(self.bids_dir), under(self.output_dir)
        if not self.bids_dir:  # not run by the workflow: everything outside the outputs
            return [p for p in self.inputs if not in_output(p)]
        return [p for p in self.inputs if in_bids(p) and not in_output(p)]

    def more_memory_hint(self, needed_mb: float | None = None) -> str:
        ask = max(int(2 * (self.mem_mb or 1000)), int(1.2 * needed_mb) if needed_mb else 0)
        return (f"give the rule more memory: snakemake ... --set-resources {self.rule}:mem_mb={ask} (or --retries 2: "
                "each retry asks for mem_mb x attempt); the measured figures behind mem_mb are in "
                "workflow/resources.yaml, resources.memory_limit in the config sets what happens when a job "
                "exceeds them")


def _snakemake_object() -> Any:
    """The ``snakemake`` global of the workflow script that called :func:`run_logged`, if any."""
    frame = sys._getframe(1)
    while frame is not None:
        for scope in (frame.f_globals, frame.f_locals):
            smk = scope.get("snakemake")
            if smk is not None and hasattr(smk, "rule"):
                return smk
        frame = frame.f_back
    return None


def _rss_bytes(process) -> int:
    """Resident memory of the job: its process and every child process."""
    import psutil

    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


class _MemoryExceeded(BaseException):
    """Raised in the main thread by the memory guard (a BaseException: steps' ``except Exception`` let it pass)."""


class _MemoryGuard:
    """Samples the job's resident memory; past ``mem_mb`` it warns or stops the job (``memory_limit``).

    Snakemake's ``mem_mb`` is what a scheduler reserves for the job; a cluster's cgroup kills
    a job that goes over it without saying why. The guard makes every executor behave the
    same and say so: the rule, the subject, the limit and the memory used. ``RLIMIT_AS`` is
    not used because it caps *virtual* memory, which for a process with PyTorch and BLAS
    thread pools is several times its resident memory and would stop healthy jobs.
    """

    def __init__(self, ctx: JobContext, log: logging.Logger):
        import psutil

        self.ctx = ctx
        self.log = log
        self.limit = ctx.mem_mb * 1e6 if ctx.mem_mb else None
        self.peak = 0
        self.exceeded_at: int | None = None
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._old_handler = None

    def start(self) -> None:
        self.peak = _rss_bytes(self._process)
        if self.limit is None or self.ctx.memory_limit == "off":
            return
        if self.ctx.memory_limit == "enforce":
            if threading.current_thread() is not threading.main_thread():
                return
            self._old_handler = signal.signal(signal.SIGUSR2, self._interrupt)
        self._thread = threading.Thread(target=self._watch, name="neurofuse-memory-guard", daemon=True)
        self._thread.start()
        self._check(self.peak)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_GRACE_S)
        if self._old_handler is not None:
            # a sample still in flight must not deliver a signal nobody handles (the default ends the process)
            alive = self._thread is not None and self._thread.is_alive()
            signal.signal(signal.SIGUSR2, signal.SIG_IGN if alive else self._old_handler)

    def message(self) -> str:
        used = (self.exceeded_at or self.peak) / 1e6
        return (f"{self.ctx.describe()} exceeded its memory limit: {used:.0f} MB resident, the rule was given "
                f"mem_mb={self.ctx.mem_mb:g} MB")

    def error(self) -> ResourceLimitError:
        used = (self.exceeded_at or self.peak) / 1e6
        return ResourceLimitError(self.message() + "; the job was stopped", None, self.ctx.more_memory_hint(used))

    def _interrupt(self, signum, frame):  # runs in the main thread
        raise _MemoryExceeded()

    def _check(self, rss: int) -> None:
        self.peak = max(self.peak, rss)
        if self.limit is None or rss <= self.limit or self.exceeded_at is not None or self._stop.is_set():
            return
        self.exceeded_at = rss
        if self.ctx.memory_limit == "warn":
            self.log.warning("%s -> %s", self.message(), self.ctx.more_memory_hint(rss / 1e6))
            print(f"NeuroFuse: warning: {self.message()}", file=sys.stderr, flush=True)
            return
        os.kill(os.getpid(), signal.SIGUSR2)  # the step unwinds in the main thread (temporary files removed)

    def _watch(self) -> None:
        while not self._stop.wait(_POLL_S):
            try:
                self._check(_rss_bytes(self._process))
            except Exception:  # noqa: BLE001 - a failed sample must not kill the job
                continue
            if self.exceeded_at is not None and self.ctx.memory_limit == "enforce":
                # the main thread may be inside one long C call that never returns to Python
                if self._stop.wait(_GRACE_S):
                    return
                text = f"NeuroFuse: {self.error()}"
                self.log.error(text)
                print(text, file=sys.stderr, flush=True)
                logging.shutdown()
                os._exit(1)


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text
                                              or "not enough memory" in text)


def _fail(ctx: JobContext, log: logging.Logger, text: str) -> None:
    log.error(text)
    print(f"NeuroFuse: {text}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def run_logged(log_path: str, func, *args, **kwargs):
    """Run one library step for a Snakemake job with logging sent to the rule's log.

    Every workflow script goes through here, so every job gets the same guarantees:

    * the job's raw inputs (those outside ``output_dir``) are checked first
      (:func:`neurofuse.checks.check_input_file`: truncated or damaged images, voxel types,
      NaN/Inf voxels, BrainVision data files that do not match their header);
    * the job's resident memory is watched against the rule's ``mem_mb``
      (``resources.memory_limit``: stop the job, warn, or nothing);
    * every failure ends the job with ONE line on stderr and in the log, naming the rule
      and subject, and exit code 1 — a :class:`NeuroFuseError` as it is, running out of
      memory with the limit and what to ask for, a full disk or unwritable folder with
      the path, and anything unexpected with the exception and where its traceback is
      (the log file), never a bare traceback.
    """
    import traceback

    ctx = JobContext.from_snakemake(_snakemake_object())
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    log = logging.getLogger("neurofuse")
    guard = _MemoryGuard(ctx, log)
    try:
        guard.start()
        from neurofuse.checks import check_input_file

        for path in ctx.raw_inputs():
            check_input_file(path)
        result = func(*args, **kwargs)
        if guard.limit:
            log.info("%s: peak resident memory %.0f MB of mem_mb=%g MB", ctx.describe(), guard.peak / 1e6,
                     ctx.mem_mb)
        return result
    except _MemoryExceeded:
        _fail(ctx, log, str(guard.error()))
    except NeuroFuseError as err:
        _fail(ctx, log, f"{ctx.describe()}: {err}" if ctx.rule != "step" else str(err))
    except OSError as exc:
        # a writer that is not atomic (MNE, nibabel) ran out of space: name the output it was writing
        target = exc.filename or (ctx.outputs[0] if ctx.outputs else None)
        error = storage_error(exc, target) if target else None
        if error is None:
            log.error("traceback:\n%s", traceback.format_exc())
            _fail(ctx, log, f"{ctx.describe()} failed: {type(exc).__name__}: {exc} -> the traceback is in {log_path}")
        _fail(ctx, log, f"{ctx.describe()}: {error}")
    except Exception as exc:  # noqa: BLE001 - one line for the user, the traceback in the log
        if _is_out_of_memory(exc):
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            limit = f"mem_mb={ctx.mem_mb:g} MB" if ctx.mem_mb else "no mem_mb set"
            _fail(ctx, log, str(ResourceLimitError(
                f"{ctx.describe()} ran out of memory ({limit}, {guard.peak / 1e6:.0f} MB resident at the last "
                f"sample): {type(exc).__name__}: {reason}", None, ctx.more_memory_hint(guard.peak / 1e6))))
        log.error("traceback:\n%s", traceback.format_exc())
        reason = (str(exc).strip().splitlines() or [""])[0][:300]
        _fail(ctx, log, f"{ctx.describe()} failed: {type(exc).__name__}: {reason} -> this is not a known input "
                        f"problem; the full traceback is in {log_path}: check the inputs it names, or report it "
                        "with that log")
    finally:
        guard.stop()
        root.removeHandler(handler)
        handler.close()


# --------------------------------------------------------------------------- containers


def container_images(config: Mapping[str, Any], environ: Mapping[str, str] | None = None,
                     *, backend: str = "native") -> dict[str, str | None]:
    """The container images the rules run in when Snakemake deploys software in containers.

    ``neurofuse``: every rule (``containers.neurofuse``, else ``$NEUROFUSE_IMAGE``: the
    image of ``resources/containers/Dockerfile``, the same variable the cloud profiles
    read). ``fmri_tools``: the fMRI rules that call FSL or AFNI when ``fmri.backend`` is
    ``fsl`` or ``afni`` (``containers.fmri_tools``, else ``$NEUROFUSE_FMRI_TOOLS_IMAGE``);
    with the native backend those rules use the project image. Values are Snakemake image
    references (``docker://REPO/NAME@sha256:...``); a bare ``REPO/NAME:TAG`` gets
    ``docker://``.
    """
    env = os.environ if environ is None else environ
    given = (config["containers"] if "containers" in config else None) or {}

    def pick(value: str | None, variable: str) -> str | None:
        value = value or env.get(variable) or None
        if value and "://" not in value:
            value = f"docker://{value}"
        return value

    project = pick(given.get("neurofuse"), "NEUROFUSE_IMAGE")
    tools = pick(given.get("fmri_tools"), "NEUROFUSE_FMRI_TOOLS_IMAGE") if backend in ("fsl", "afni") else project
    return {"neurofuse": project, "fmri_tools": tools}


def check_container_images(images: Mapping[str, str | None], *, in_containers: bool, backend: str) -> None:
    """A run that deploys software in containers must know its images (one clear error)."""
    if not in_containers:
        return
    if not images.get("neurofuse"):
        raise NeuroFuseError(
            "Snakemake was asked to run every job in a container (--software-deployment-method apptainer) but no "
            "image is set",
            hint="build and push the project image (resources/containers/README.md), then export "
                 "NEUROFUSE_IMAGE=docker://REPO/neurofuse@sha256:... or set containers.neurofuse in the config")
    if backend in ("fsl", "afni") and not images.get("fmri_tools"):
        raise NeuroFuseError(
            f"fmri.backend is {backend!r} and jobs run in containers, but no image with FSL/AFNI is set",
            hint="export NEUROFUSE_FMRI_TOOLS_IMAGE=docker://... (an image with the project's environment plus "
                 f"{'FSL' if backend == 'fsl' else 'AFNI'} on the PATH) or set containers.fmri_tools")


# --------------------------------------------------------------------------- stale locks

# Snakemake locks its working directory (``.snakemake/locks``) for a run and removes the
# lock when the run ends, but a run killed outright (SIGKILL, the OOM killer, a laptop
# losing power) leaves it behind, and the next run stops with "Directory cannot be
# locked" until someone runs ``--unlock``. The lock files do not say who wrote them, so
# every main Snakemake process of this workflow records itself (host, PID and the
# process's start time, which tells a recycled PID apart) in ``.snakemake/neurofuse/
# processes/`` while the Snakefile is parsed, before Snakemake takes its lock. A lock is
# stale when every recorded process is gone: none of them can hold it.


def _start_time(pid: int) -> str | None:
    """The kernel's start time of process ``pid`` (clock ticks since boot), None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc (not Linux): existence only
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "unknown"
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name may hold spaces


def _runs(pid: int, start: str) -> bool:
    """Whether the process that was ``pid``, started at ``start``, still runs (not a recycled PID)."""
    now = _start_time(pid)
    return now is not None and (now == start or "unknown" in (now, start))


def record_process(processes: str | os.PathLike = PROCESSES) -> Path:
    """Record this process as one that may hold the working directory's Snakemake lock."""
    from neurofuse.io import atomic_write_text

    me = {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid())}
    record = Path(processes) / f"{me['host']}-{me['pid']}.json"
    atomic_write_text(record, json.dumps(me, sort_keys=True) + "\n")
    return record


def _other_processes(processes: Path, mine: Path | None) -> tuple[bool, list[int]]:
    """Whether another recorded process may still run; the PIDs of those that ended (records deleted)."""
    host = socket.gethostname()
    running, gone = False, []
    for record in sorted(processes.glob("*.json")):
        if record == mine:
            continue
        try:
            owner = json.loads(record.read_text())
            pid, start = int(owner["pid"]), owner["start"]
            if owner["host"] != host or _runs(pid, start):
                running = True
                continue
        except (OSError, ValueError, KeyError, TypeError):
            running = True  # unreadable: assume the worst
            continue
        record.unlink(missing_ok=True)
        gone.append(pid)
    return running, gone


def release_stale_lock(processes: str | os.PathLike = PROCESSES) -> str | None:
    """Remove Snakemake's lock if no process that could hold it still runs; say what was done.

    Call from the main Snakemake process before it takes its lock (the Snakefile does, while
    it is parsed): this process is recorded, and the records of processes that ended are
    deleted. The lock is left alone (Snakemake then reports it) while another recorded
    process of this host still runs, when a record comes from another host (a shared file
    system: its processes cannot be checked from here) or cannot be read, and when there
    is no record of an ended process (a lock taken by a version of the workflow that did
    not record itself).
    """
    processes = Path(processes)
    locks = processes.parent.parent / "locks"
    running, gone = _other_processes(processes, record_process(processes))
    if running or not gone or not (locks.is_dir() and any(locks.iterdir())):
        return None
    shutil.rmtree(locks, ignore_errors=True)
    pids = ", ".join(str(pid) for pid in gone)
    return (f"removed the lock of an earlier run that was killed (process {pids} no longer runs); "
            "its unfinished jobs run again")


def alone(processes: str | os.PathLike = PROCESSES) -> bool:
    """True when no other recorded Snakemake process of this workflow may run in this working directory.

    Snakemake lets two runs with disjoint outputs share a working directory; only a run that
    is alone may delete what killed writers left behind (:func:`neurofuse.io.remove_stale_temporaries`).
    """
    processes = Path(processes)
    mine = processes / f"{socket.gethostname()}-{os.getpid()}.json"
    return not _other_processes(processes, mine)[0]
