"""Helpers of the broken-dataset corpus (tests/unit/test_bad_input_corpus.py).

Each broken dataset is a copy of one subject of the simulator's ``small`` preset with ONE
thing broken. The copy lives under a folder whose name has non-ASCII letters and spaces,
so every case also checks that such paths work.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import runpy
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
from snakemake.iocontainers import Namedlist

from neurofuse.config import REPO_ROOT

SUB = "sub-01"
RUN = "sub-01_task-rest"
BOLD = f"{SUB}/func/{RUN}_bold.nii.gz"
BOLD_JSON = f"{SUB}/func/{RUN}_bold.json"
T1W = f"{SUB}/anat/{SUB}_T1w.nii.gz"
VHDR = f"{SUB}/eeg/{RUN}_eeg.vhdr"
EEGDATA = f"{SUB}/eeg/{RUN}_eeg.eeg"
VMRK = f"{SUB}/eeg/{RUN}_eeg.vmrk"
EEG_JSON = f"{SUB}/eeg/{RUN}_eeg.json"
N_CHANNELS = 34  # the small preset: 33 EEG + ECG, IEEE_FLOAT_32

#: A dataset folder with letters outside ASCII and spaces in its path.
DATASET_DIR = "données EEG-IRM/étude 1"


def copy_subject(source: Path, dest: Path) -> Path:
    """Top-level files and sub-01 of a simulated dataset (no derivatives, no sub-02)."""
    dest.mkdir(parents=True)
    for item in source.iterdir():
        if item.is_file():
            shutil.copy2(item, dest / item.name)
    shutil.copytree(source / SUB, dest / SUB)
    participants = dest / "participants.tsv"
    if participants.exists():
        lines = participants.read_text().splitlines()
        participants.write_text("\n".join([lines[0]] + [l for l in lines[1:] if l.startswith(SUB)]) + "\n")
    return dest


# --------------------------------------------------------------------------- breakers


def cut(path: Path, n_bytes: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-n_bytes])


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(changes)
    path.write_text(json.dumps(data))


def rewrite_bold(path: Path, dtype=None, nan_volume: int | None = None) -> None:
    img = nib.load(path)
    data = np.asarray(img.dataobj).astype(dtype or np.float32)
    if nan_volume is not None:
        data[10:14, 10:14, 5, nan_volume] = np.nan
        data[0, 0, 0, nan_volume + 1] = np.inf
    out = nib.Nifti1Image(data, img.affine, img.header)
    out.set_data_dtype(data.dtype)
    nib.save(out, path)


def put_in_eeg(path: Path, channel: int, second: float, value: float, sfreq: float = 2000.0) -> None:
    """Write ``value`` into the float32 multiplexed BrainVision data at one channel and time."""
    data = np.fromfile(path, dtype="<f4").reshape(-1, N_CHANNELS)
    data[int(second * sfreq): int(second * sfreq) + 20, channel] = value
    data.tofile(path)


def drop_volume_markers(path: Path, keep_every: int = 1, drop_last: int = 0) -> None:
    """Remove volume markers from a .vmrk: keep one in ``keep_every``, then drop the last ``drop_last``."""
    lines = path.read_text().splitlines()
    marks = [i for i, line in enumerate(lines) if "R128" in line]
    keep = set(marks[::keep_every][: len(marks[::keep_every]) - drop_last])
    path.write_text("\n".join(l for i, l in enumerate(lines) if i not in marks or i in keep) + "\n")


def gzip_of(raw: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as fh:
        fh.write(raw)
    return buffer.getvalue()


# --------------------------------------------------------------------------- running a job


def snakemake_object(rule: str, *, input: dict, output: dict, params: dict, wildcards: dict, log: str,
                     config: dict, mem_mb: float | None = None):
    """A stand-in for the ``snakemake`` object Snakemake gives a job's script (same attributes)."""

    class Job:
        pass

    job = Job()
    job.input = Namedlist(fromdict=input)
    job.output = Namedlist(fromdict=output)
    job.params = Namedlist(fromdict=params)
    job.wildcards = Namedlist(fromdict=wildcards)
    job.resources = Namedlist(fromdict={"_cores": 1, **({"mem_mb": mem_mb} if mem_mb else {})})
    job.log = Namedlist(fromdict={"log": log})
    job.threads = 1
    job.config = config
    job.rule = rule
    return job


def run_script(script: str, job) -> int:
    """Run ``workflow/scripts/<script>.py`` in this process as Snakemake would; its exit code."""
    try:
        runpy.run_path(str(REPO_ROOT / "workflow" / "scripts" / f"{script}.py"), init_globals={"snakemake": job},
                       run_name="__main__")
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@contextlib.contextmanager
def read_only_dir(path: Path):
    """A folder nothing can be written into: chmod for a normal user; root ignores file modes, so
    for root a read-only tmpfs mount (skipped where mounting is not allowed)."""
    import pytest

    path.mkdir(parents=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"running as root and cannot mount a read-only tmpfs: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)
