#!/usr/bin/env python
"""How fast is ``neurofuse privacy-check``? Scan time per 1,000 files, headers and faces.

Two datasets:

* the simulated demo dataset (``--demo DIR``, default: simulated into
  ``benchmarks/.work/privacy-demo`` on first use, ~1 min, 540 MB);
* a large tree of ``--subjects`` subjects x 2 sessions x 2 runs built from the small
  simulated dataset by hard links (real NIfTI, BrainVision, JSON and TSV files under
  new names, no extra disk space), under ``benchmarks/.work/privacy-large``.

For each: files, seconds for the whole scan with the face check off and on, and
seconds per 1,000 files. Every scan is run in this process after one warm-up, so the
file-system cache is warm (as it is on a dataset that was just written or copied).

Usage: ``.venv/bin/python benchmarks/bench_privacy.py [--subjects N] [--demo DIR]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
sys.path.insert(0, str(HERE.parent / "src"))

from neurofuse.privacy.scan import scan_dataset  # noqa: E402
from neurofuse.simulate import simulate_dataset  # noqa: E402


def simulated(path: Path, preset: str) -> Path:
    if not (path / "dataset_description.json").is_file():
        print(f"simulating the {preset} dataset into {path} ...", flush=True)
        simulate_dataset(path, preset=preset, seed=42)
    return path


def large_tree(source: Path, out: Path, n_subjects: int) -> Path:
    """n subjects x 2 sessions x 2 runs, each file a hard link to sub-01's file of the small dataset."""
    marker = out / f".subjects-{n_subjects}"
    if marker.is_file():
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for name in ("dataset_description.json", "README", "task-rest_bold.json", "participants.json"):
        shutil.copy(source / name, out / name)
    labels = [f"{i:04d}" for i in range(1, n_subjects + 1)]
    (out / "participants.tsv").write_text("participant_id\tage\tsex\n" + "".join(f"sub-{s}\t30\tF\n" for s in labels))
    sub = source / "sub-01"
    for label in labels:
        for ses in ("1", "2"):
            for rel in sub.rglob("*"):
                if rel.is_dir() or rel.name.endswith("_scans.tsv"):
                    continue
                for run in ("1", "2") if "task-" in rel.name else ("",):
                    name = rel.name.replace("sub-01", f"sub-{label}_ses-{ses}")
                    if run:
                        name = name.replace("_task-rest", f"_task-rest_run-{run}")
                    target = out / f"sub-{label}" / f"ses-{ses}" / rel.parent.name / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.link(rel, target)
            scans = sub / "sub-01_scans.tsv"
            os.link(scans, out / f"sub-{label}" / f"ses-{ses}" / f"sub-{label}_ses-{ses}_scans.tsv")
    marker.write_text("")
    return out


def measure(root: Path, faces: bool) -> tuple[int, float, int]:
    scan_dataset(root, faces=faces, max_files=50)  # warm-up: imports, caches
    start = time.perf_counter()
    report = scan_dataset(root, faces=faces)
    return report.files_checked, time.perf_counter() - start, len(report.findings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--demo", type=Path, help="the demo dataset (default: simulate one)")
    args = parser.parse_args()
    small = simulated(WORK / "privacy-small", "small")
    demo = args.demo or simulated(WORK / "privacy-demo", "demo")
    large = large_tree(small, WORK / "privacy-large", args.subjects)
    print(f"{'dataset':<34} {'faces':>5} {'files':>7} {'seconds':>8} {'s per 1,000 files':>17} {'findings':>9}")
    for name, root in (("demo (2 subjects)", demo), (f"large ({args.subjects} x 2 ses x 2 runs)", large)):
        for faces in (False, True):
            files, seconds, findings = measure(root, faces)
            print(f"{name:<34} {'on' if faces else 'off':>5} {files:>7} {seconds:>8.2f} "
                  f"{1000 * seconds / files:>17.2f} {findings:>9}", flush=True)


if __name__ == "__main__":
    main()
