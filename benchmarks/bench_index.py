#!/usr/bin/env python
"""How fast is the one BIDS index? Our build_index against the floor and the peers.

Generates a dry BIDS skeleton (empty files + real sidecars and scans.tsv) of
``--subjects`` subjects x 2 sessions x 2 runs of simultaneous EEG-fMRI under
``benchmarks/.work/`` (git-ignored), then prints, side by side:

* ``build_index(check_images=False)``: a cold first call in a fresh process (imports
  included, file-system cache warm from the generation) and the best of 3 in-process;
* the floor: a plain ``os.walk`` + regex over the same tree;
* ``DatasetIndex.from_json``: what every Snakemake job pays to read the index, and
  the index's size;
* the peers, each in its own venv under ``benchmarks/.work/peers-venv/`` created on
  first use from PyPI (they pin packages we must not downgrade in the project venv):
  pybids 0.22.0 ``BIDSLayout`` (defaults), snakebids 0.15.0 ``generate_inputs`` with
  pybids inputs and with ``custom_path`` inputs. snakebids 0.15.0 needs pybids < 0.22,
  so it gets its own venv (with pybids 0.21). A peer that cannot be installed is
  reported and skipped.

Usage: ``.venv/bin/python benchmarks/bench_index.py [--subjects N] [--skip-peers] [--vmrk-markers N]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work"
PEERS_DIR = WORK / "peers-venv"
sys.path.insert(0, str(REPO / "src"))

from neurofuse.bids import DatasetIndex, build_index  # noqa: E402
from neurofuse.bids.skeleton import write_skeleton  # noqa: E402

#: peer name -> pip requirement installed into benchmarks/.work/peers-venv/<name>
PEERS = {"pybids": "pybids==0.22.0", "snakebids": "snakebids==0.15.0"}
SESSIONS = ("1", "2")
RUNS = ("1", "2")
SLICE_TIMING = [round(i * 2.0 / 32, 4) for i in range(32)]


def skeleton_spec(n_subjects: int, vmrk_markers: int = 0, sessions: tuple[str, ...] = SESSIONS,
                  runs: tuple[str, ...] = RUNS) -> dict:
    """1 T1w + per session a scans.tsv and per run BOLD (nii.gz + json) and EEG (vhdr, vmrk, eeg, channels).

    ``vmrk_markers`` = 0: empty .vmrk files (no markers). N > 0: each .vmrk holds N
    'Response/R128' volume markers (TR 2 s at 5 kHz) and 2N 'SyncStatus/Sync On' markers,
    like a recorder file of an N-volume run.
    """
    subjects = [f"{i:04d}" for i in range(1, n_subjects + 1)]
    files: dict[str, object] = {
        "participants.tsv": "participant_id\n" + "".join(f"sub-{s}\n" for s in subjects),
        "task-rest_bold.json": {"TaskName": "rest", "RepetitionTime": 2.0, "SliceTiming": SLICE_TIMING,
                                "EchoTime": 0.03, "PhaseEncodingDirection": "j-"},
        "task-rest_eeg.json": {"TaskName": "rest", "SamplingFrequency": 5000, "PowerLineFrequency": 50,
                               "EEGReference": "FCz", "SoftwareFilters": "n/a"},
        "sub-{sub}/ses-1/anat/sub-{sub}_ses-1_T1w.nii.gz": None,
    }
    scans = ["filename\tacq_time"]
    for run in runs:
        stem = f"sub-{{sub}}_ses-{{ses}}_task-rest_run-{run}"
        files[f"sub-{{sub}}/ses-{{ses}}/func/{stem}_bold.nii.gz"] = None
        files[f"sub-{{sub}}/ses-{{ses}}/func/{stem}_bold.json"] = {"AcquisitionTime": f"10:{int(run) * 10}:00"}
        for ext in (".vhdr", ".vmrk", ".eeg"):
            files[f"sub-{{sub}}/ses-{{ses}}/eeg/{stem}_eeg{ext}"] = None
        if vmrk_markers:
            sync = [["SyncStatus", "Sync On", 300 + 5000 * i] for i in range(2 * vmrk_markers)]
            files[f"sub-{{sub}}/ses-{{ses}}/eeg/{stem}_eeg.vmrk"] = {
                "markers": sync, "volumes": {"n": vmrk_markers, "interval": 10000, "start": 1000}}
        files[f"sub-{{sub}}/ses-{{ses}}/eeg/{stem}_channels.tsv"] = "name\ttype\tunits\nFp1\tEEG\tuV\n"
        minute = int(run) * 10
        scans.append(f"func/{stem}_bold.nii.gz\t2020-01-0{{ses}}T10:{minute}:00")
        scans.append(f"eeg/{stem}_eeg.vhdr\t2020-01-0{{ses}}T10:{minute - 1}:30")
    files["sub-{sub}/ses-{ses}/sub-{sub}_ses-{ses}_scans.tsv"] = "\n".join(scans) + "\n"
    return {"subjects": subjects, "sessions": list(sessions), "files": files,
            "dataset_description": {"Name": f"bench {n_subjects}", "BIDSVersion": "1.10.0"}}


def make_dataset(n_subjects: int, vmrk_markers: int = 0, sessions: tuple[str, ...] = SESSIONS,
                 runs: tuple[str, ...] = RUNS) -> tuple[Path, int, float]:
    shape = "" if (sessions, runs) == (SESSIONS, RUNS) else f"-{len(sessions)}x{len(runs)}"
    root = WORK / (f"bids-{n_subjects}" + (f"-mk{vmrk_markers}" if vmrk_markers else "") + shape)
    marker = root / ".complete"
    if not marker.exists():
        if root.exists():
            shutil.rmtree(root)
        t0 = time.perf_counter()
        written = write_skeleton(root, skeleton_spec(n_subjects, vmrk_markers, sessions, runs))
        marker.write_text(str(len(written)))
        return root, len(written), time.perf_counter() - t0
    return root, int(marker.read_text()), 0.0


def floor_walk(root: Path) -> tuple[float, int]:
    """A plain os.walk + one regex per file name: the least any indexer can do."""
    pattern = re.compile(r"^sub-[A-Za-z0-9]+(?:_[a-z]+-[A-Za-z0-9]+)*_(bold|eeg|T1w)\.(nii\.gz|nii|vhdr|edf|json)$")
    t0 = time.perf_counter()
    hits = 0
    for _dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("derivatives", "sourcedata", "code")]
        for name in filenames:
            if pattern.match(name):
                hits += 1
    return time.perf_counter() - t0, hits


def time_ours(root: Path) -> dict:
    cold_code = textwrap.dedent(f"""
        import time, json, sys
        t0 = time.perf_counter()
        sys.path.insert(0, {str(REPO / 'src')!r})
        from neurofuse.bids import build_index
        t1 = time.perf_counter()
        ix = build_index({str(root)!r}, check_images=False)
        t2 = time.perf_counter()
        print(json.dumps({{"import": t1 - t0, "build": t2 - t1}}))
    """)
    out = subprocess.run([sys.executable, "-c", cold_code], capture_output=True, text=True, check=True)
    cold = json.loads(out.stdout.strip().splitlines()[-1])
    best = float("inf")
    index = None
    for _ in range(3):
        t0 = time.perf_counter()
        index = build_index(root, check_images=False)
        best = min(best, time.perf_counter() - t0)
    assert index is not None
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        path = Path(tmp) / "index.json"
        t0 = time.perf_counter()
        index.to_json(path)
        write = time.perf_counter() - t0
        load = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            DatasetIndex.from_json(path)
            load = min(load, time.perf_counter() - t0)
        size = path.stat().st_size
    return {"cold_build": cold["build"], "cold_import": cold["import"], "best": best, "runs": len(index.runs),
            "paired": len(index.paired_runs()), "warnings": len(index.warnings), "json_write": write,
            "json_load": load, "json_bytes": size}


PEER_SNIPPETS = {
    "pybids BIDSLayout": ("pybids", """
        from bids import BIDSLayout
        t0 = time.perf_counter()
        layout = BIDSLayout(ROOT)
        n = len(layout.get(suffix="bold", extension=".nii.gz"))
    """),
    "snakebids generate_inputs": ("snakebids", """
        from snakebids import generate_inputs
        W = ["subject", "session", "task", "run"]
        t0 = time.perf_counter()
        inputs = generate_inputs(bids_dir=ROOT, pybids_inputs={
            "bold": {"filters": {"suffix": "bold", "extension": ".nii.gz", "datatype": "func"}, "wildcards": W},
            "eeg": {"filters": {"suffix": "eeg", "extension": ".vhdr", "datatype": "eeg"}, "wildcards": W},
            "t1w": {"filters": {"suffix": "T1w", "extension": ".nii.gz", "datatype": "anat"},
                    "wildcards": ["subject", "session"]},
        })
        n = len(inputs["bold"].zip_lists["subject"])
    """),
    "snakebids custom_path": ("snakebids", """
        from snakebids import generate_inputs
        S = ROOT + "/sub-{subject}/ses-{session}/"
        t0 = time.perf_counter()
        inputs = generate_inputs(bids_dir=ROOT, pybids_inputs={
            "bold": {"custom_path": S + "func/sub-{subject}_ses-{session}_task-{task}_run-{run}_bold.nii.gz"},
            "eeg": {"custom_path": S + "eeg/sub-{subject}_ses-{session}_task-{task}_run-{run}_eeg.vhdr"},
            "t1w": {"custom_path": S + "anat/sub-{subject}_ses-{session}_T1w.nii.gz"},
        })
        n = len(inputs["bold"].zip_lists["subject"])
    """),
}


def ensure_peer(name: str) -> tuple[Path | None, str]:
    """Python of the peer's venv, creating it on first use; (None, reason) if that fails."""
    venv = PEERS_DIR / name
    python = venv / "bin" / "python"
    module = "bids" if name == "pybids" else name
    if python.exists():
        check = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, text=True)
        if check.returncode == 0:
            return python, ""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    print(f"  installing {PEERS[name]} into {venv.relative_to(REPO)} (first use) ...", flush=True)
    try:
        if uv:
            subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True,
                           capture_output=True, text=True)
            cmd = [uv, "pip", "install", "--quiet", "--python", str(python), PEERS[name]]
        else:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
            cmd = [str(python), "-m", "pip", "install", "--quiet", PEERS[name]]
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        err = getattr(exc, "stderr", "") or str(exc)
        return None, (err.strip().splitlines() or ["unknown error"])[-1]
    return python, ""


def time_peer(label: str, root: Path) -> tuple[float | None, str]:
    venv_name, body = PEER_SNIPPETS[label]
    python, reason = ensure_peer(venv_name)
    if python is None:
        return None, f"not installed: {reason}"
    code = "import time, json, warnings\nwarnings.simplefilter('ignore')\nROOT = " + repr(str(root)) + "\n"
    code += textwrap.dedent(body) + "\nprint(json.dumps({'seconds': time.perf_counter() - t0, 'n': n}))\n"
    try:
        out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        return None, "timed out after 1800 s"
    if out.returncode != 0:
        return None, "failed: " + ((out.stderr.strip().splitlines() or ["?"])[-1])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return float(result["seconds"]), f"{result['n']} BOLD runs found"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=1000, help="number of subjects (default 1000)")
    parser.add_argument("--skip-peers", action="store_true", help="do not time pybids/snakebids")
    parser.add_argument("--vmrk-markers", type=int, default=0, metavar="N",
                        help="write N volume markers (+2N sync markers) into every .vmrk instead of empty files")
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)

    root, n_files, gen = make_dataset(args.subjects, args.vmrk_markers)
    n_paths = n_files + sum(len(d) for _, d, _ in os.walk(root))
    print(f"dataset: {root.relative_to(REPO)}  {args.subjects} subjects x {len(SESSIONS)} sessions x {len(RUNS)} runs, "
          f"{n_files} files, {n_paths} paths (files + folders)" + (f", generated in {gen:.1f} s" if gen else "")
          + (f"; .vmrk files with {args.vmrk_markers} volume + {2 * args.vmrk_markers} sync markers"
             if args.vmrk_markers else "; empty .vmrk files"))
    ours = time_ours(root)
    floor, hits = floor_walk(root)
    rows: list[tuple[str, float | None, str]] = [
        ("neurofuse build_index (best of 3)", ours["best"], f"{ours['runs']} runs, {ours['paired']} paired, "
                                                           f"{ours['warnings']} warnings"),
        ("neurofuse build_index (cold process)", ours["cold_build"], f"+ {ours['cold_import']:.2f} s imports"),
        ("floor: os.walk + regex", floor, f"{hits} data/sidecar names matched"),
        ("DatasetIndex.from_json (per job)", ours["json_load"],
         f"{ours['json_bytes'] / 1e6:.2f} MB JSON, written in {ours['json_write']:.2f} s"),
    ]
    peers: list[tuple[str, float | None, str]] = []
    if not args.skip_peers:
        for label in PEER_SNIPPETS:
            print(f"timing {label} ...", flush=True)
            seconds, note = time_peer(label, root)
            peers.append((label, seconds, note))
    width = max(len(r[0]) for r in rows + peers) + 2
    print()
    print(f"{'what':<{width}}{'seconds':>9}  {'ours is faster by':>17}  note")
    for label, seconds, note in rows + peers:
        secs = f"{seconds:9.3f}" if seconds is not None else f"{'-':>9}"
        speed = f"{seconds / ours['best']:16.1f}x" if seconds is not None and (label, seconds, note) in peers else ""
        print(f"{label:<{width}}{secs}  {speed:>17}  {note}")
    goal = "meets" if ours["best"] <= 2.0 * args.subjects / 1000 else "MISSES"
    print(f"\ngoal <= 2 s per 1,000 subjects: {goal} ({ours['best']:.2f} s best, {ours['cold_build']:.2f} s cold)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
