"""What the Snakefile needs from the library: the dataset index and the targets.

The index is built once, by the main Snakemake process (including ``snakemake -n``),
and written to ``<output_dir>/neurofuse/dataset_index.json``. Jobs running elsewhere
(cluster, cloud: Snakemake's remote mode) re-parse the Snakefile but only *read* that
file, so a job never walks the dataset again (snakebids #256 is the failure this avoids).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neurofuse.bids.index import DatasetIndex, build_index
from neurofuse.errors import NeuroFuseError

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


def run_logged(log_path: str, func, *args, **kwargs):
    """Run one library step for a Snakemake job with logging sent to the rule's log.

    A :class:`NeuroFuseError` ends the job with its one-line message (in the log and on
    stderr) and exit code 1, instead of a traceback.
    """
    import logging
    import sys

    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        return func(*args, **kwargs)
    except NeuroFuseError as err:
        logging.getLogger("neurofuse").error(str(err))
        print(f"NeuroFuse: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        root.removeHandler(handler)
        handler.close()


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
