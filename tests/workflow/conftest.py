"""Run the real Snakefile in a scratch working directory."""

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neurofuse.config import REPO_ROOT

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


class Workdir:
    """A user project folder: config/ copied from the repo, outputs under results/."""

    def __init__(self, path: Path):
        self.path = path
        if not (path / "config").is_dir():
            shutil.copytree(REPO_ROOT / "config", path / "config")

    def command(self, *args: str, bids_dir: str | Path | None = None, config: tuple[str, ...] = ()) -> list[str]:
        cmd = [SNAKEMAKE, "-s", str(REPO_ROOT / "workflow" / "Snakefile"), "--directory", str(self.path)]
        cmd += list(args)
        overrides = list(config)
        if bids_dir is not None:
            overrides.append(f"bids_dir={bids_dir}")
        if overrides:
            cmd += ["--config", *overrides]
        return cmd

    @staticmethod
    def env() -> dict[str, str]:
        return dict(os.environ, PYTHONHASHSEED="0")

    def snakemake(self, *args: str, bids_dir: str | Path | None = None, config: tuple[str, ...] = (),
                  timeout: float = 300) -> subprocess.CompletedProcess:
        cmd = self.command(*args, bids_dir=bids_dir, config=config)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=self.env())


@pytest.fixture
def workdir(tmp_path) -> Workdir:
    return Workdir(tmp_path / "project")


@pytest.fixture(scope="session")
def small_run(small_dataset, tmp_path_factory) -> tuple[Workdir, subprocess.CompletedProcess, float]:
    """One uninterrupted run of the small preset (``--cores 2``), shared by the tests that read it.

    Returns the project folder, the finished Snakemake process and its wall time in
    seconds. Treat the results as read-only (copy before editing). Like ``small_dataset``,
    it lives in the run-wide folder behind a file lock, so it is made once.
    """
    shared = tmp_path_factory.getbasetemp()
    if shared.name.startswith("popen-gw"):
        shared = shared.parent
    record = shared / "small-run-seed42.json"
    with open(shared / "small-run-seed42.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        workdir = Workdir(shared / "small-run-seed42")
        if not record.is_file():
            t0 = time.monotonic()
            result = workdir.snakemake("--cores", "2", bids_dir=small_dataset, timeout=900)
            seconds = time.monotonic() - t0
            record.write_text(json.dumps({"args": result.args, "returncode": result.returncode,
                                          "stdout": result.stdout, "stderr": result.stderr, "seconds": seconds}))
        saved = json.loads(record.read_text())
    result = subprocess.CompletedProcess(saved["args"], saved["returncode"], saved["stdout"], saved["stderr"])
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result, saved["seconds"]
