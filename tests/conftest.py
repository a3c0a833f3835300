"""Shared pytest fixtures."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset of the simulator's ``small`` preset (seed 42), simulated once per test run.

    Treat it as read-only. The dataset lives in the folder that all pytest-xdist workers
    share, behind a file lock, so however the tests are spread over workers it is
    simulated once.
    """
    from neurofuse.simulate import simulate_dataset

    shared = tmp_path_factory.getbasetemp()
    if shared.name.startswith("popen-gw"):  # a pytest-xdist worker: use the run-wide folder
        shared = shared.parent
    out = shared / "simulate-small-seed42" / "small"
    with open(shared / "simulate-small-seed42.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "dataset_description.json").is_file():
            simulate_dataset(out, preset="small", seed=42)
    return out


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory):
    """A fake-gcs-server on 127.0.0.1 for this worker's tests (started once, stopped by PID)."""
    from gcs_emulator import GcsEmulator

    emulator = GcsEmulator(tmp_path_factory.mktemp("gcs")).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def gcs(gcs_emulator, monkeypatch, request):
    """The emulator with its environment set for this test (subprocesses inherit it) and a fresh bucket."""
    import hashlib

    for name, value in gcs_emulator.env.items():
        monkeypatch.setenv(name, value)
    from gcs_emulator import EmulatorBucket

    client = gcs_emulator.client()
    name = "nf-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:20]
    return EmulatorBucket(gcs_emulator, client, client.create_bucket(name).name)
