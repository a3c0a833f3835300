"""Run the real Snakefile in a scratch working directory."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from neurofuse.config import REPO_ROOT

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


class Workdir:
    """A user project folder: config/ copied from the repo, outputs under results/."""

    def __init__(self, path: Path):
        self.path = path
        shutil.copytree(REPO_ROOT / "config", path / "config")

    def snakemake(self, *args: str, bids_dir: str | Path | None = None, config: tuple[str, ...] = (),
                  timeout: float = 300) -> subprocess.CompletedProcess:
        cmd = [SNAKEMAKE, "-s", str(REPO_ROOT / "workflow" / "Snakefile"), "--directory", str(self.path)]
        cmd += list(args)
        overrides = list(config)
        if bids_dir is not None:
            overrides.append(f"bids_dir={bids_dir}")
        if overrides:
            cmd += ["--config", *overrides]
        env = dict(os.environ, PYTHONHASHSEED="0")
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def workdir(tmp_path) -> Workdir:
    return Workdir(tmp_path / "project")
