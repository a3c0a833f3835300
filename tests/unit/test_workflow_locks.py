"""Stale Snakemake locks and the temporaries of killed writers (neurofuse.workflow, neurofuse.io)."""

import json
import os
import socket
import subprocess
import sys

import pytest

from neurofuse.io import atomic_path, atomic_write_text, remove_stale_temporaries, scratch_path
from neurofuse.workflow import _start_time, alone, record_process, release_stale_lock


@pytest.fixture
def dotsnakemake(tmp_path):
    """A ``.snakemake`` folder holding the lock of a run; returns (processes folder, locks folder)."""
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text("results/x.tsv\n")
    return tmp_path / ".snakemake" / "neurofuse" / "processes", locks


def _record(processes, pid, start, host=None):
    processes.mkdir(parents=True, exist_ok=True)
    host = host or socket.gethostname()
    path = processes / f"{host}-{pid}.json"
    path.write_text(json.dumps({"host": host, "pid": pid, "start": start}))
    return path


@pytest.fixture
def ended_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def running():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_of_a_killed_run_is_removed(dotsnakemake, ended_pid):
    processes, locks = dotsnakemake
    dead = _record(processes, ended_pid, "12345")
    message = release_stale_lock(processes)
    assert message is not None and str(ended_pid) in message and "killed" in message
    assert not locks.exists() and not dead.exists()
    mine = json.loads((processes / f"{socket.gethostname()}-{os.getpid()}.json").read_text())
    assert mine == {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid())}


def test_a_recycled_pid_does_not_keep_the_lock(dotsnakemake, running):
    processes, locks = dotsnakemake
    _record(processes, running, "1")  # the PID runs again, but not the process that was recorded
    assert release_stale_lock(processes) is not None and not locks.exists()


def test_a_running_holder_keeps_its_lock(dotsnakemake, running, ended_pid):
    processes, locks = dotsnakemake
    _record(processes, running, _start_time(running))
    dead = _record(processes, ended_pid, "12345")
    assert release_stale_lock(processes) is None
    assert locks.is_dir() and any(locks.iterdir())
    assert not dead.exists()  # the record of the ended process is gone all the same
    assert not alone(processes)


@pytest.mark.parametrize("case", ["other host", "unreadable", "no record"])
def test_a_lock_of_unknown_holder_is_left_alone(dotsnakemake, ended_pid, case):
    processes, locks = dotsnakemake
    if case == "other host":
        _record(processes, ended_pid, "12345", host="another-node")
    elif case == "unreadable":
        processes.mkdir(parents=True)
        (processes / "x-1.json").write_text("{not json")
    assert release_stale_lock(processes) is None
    assert locks.is_dir() and any(locks.iterdir())


def test_without_a_lock_nothing_is_removed(tmp_path, ended_pid):
    processes = tmp_path / ".snakemake" / "neurofuse" / "processes"
    dead = _record(processes, ended_pid, "12345")
    assert release_stale_lock(processes) is None
    assert not dead.exists()
    record_process(processes)
    assert alone(processes)


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    (tmp_path / "sub-01").mkdir()
    keep = [tmp_path / "sub-01/a.tsv", tmp_path / "sub-01/.hidden", tmp_path / "b.tmp-x"]
    stale = [tmp_path / "sub-01/.a.tsv.tmp-k2j3", tmp_path / ".c.nii.gz.tmp-99.nii.gz"]
    for path in keep + stale:
        path.write_text("x")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert all(path.exists() for path in keep) and not any(path.exists() for path in stale)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.tsv"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["out.tsv"]


def test_a_scratch_file_is_gone_after_its_block_and_after_a_kill(tmp_path):
    target = tmp_path / "sub-01" / "bold.nii.gz"
    with pytest.raises(RuntimeError):
        with scratch_path(target, suffix=".nii") as scratch:
            assert scratch.parent == target.parent and scratch.name.endswith(".nii")
            scratch.write_text("series")
            raise RuntimeError("the step failed")
    assert os.listdir(target.parent) == []
    with scratch_path(target) as scratch:
        scratch.write_text("series")
        # what a job killed here would leave: the next run's start removes it
        assert remove_stale_temporaries(tmp_path) == [scratch]
