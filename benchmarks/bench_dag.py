#!/usr/bin/env python
"""How long does ``snakemake -n`` take on a large study? Start-up, index and DAG, timed end to end.

Builds a dry BIDS skeleton (the same one as ``bench_index.py``: empty images, real
sidecars and scans.tsv, BrainVision marker files with volume markers so that every
EEG run is an in-scanner run and gets the gradient and BCG steps) of ``--subjects``
subjects x 2 sessions x 2 runs under ``benchmarks/.work/``, then times in fresh
processes, as a user would type them:

* ``snakemake --version``: Snakemake's own start-up (imports, plugin registry);
* the index alone (``neurofuse index --no-check-images``, imports included);
* ``snakemake -n --quiet host rules`` (job stats, no per-job blocks) on the real Snakefile (config: ``index.check_images: false``,
  the skeleton's images are empty): start-up + index + parsing + the DAG of every job;
* the same with Snakemake's own code throughout (``NEUROFUSE_PLAIN_SNAKEMAKE=1``: without
  the shortcuts of ``neurofuse.dag``), to show what they save;
* ``snakemake -n --quiet``: no job stats and no scheduling pass over the jobs (Snakemake
  stops after the DAG);
* the same with the full job listing (``snakemake -n``, output thrown away), if
  ``--listing`` is given.

It prints wall time, peak memory (RSS of the process tree, from ``wait4``), the number
of jobs and the milliseconds per job, next to the figures in ``ANCHORS.md`` (Snakemake
9 alone: about 10 s per 1,000 runs with 8 rules per run, about 1 ms per job).

Usage: ``.venv/bin/python benchmarks/bench_dag.py [--subjects N] [--listing]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

from bench_index import RUNS, SESSIONS, WORK, make_dataset  # noqa: E402

from neurofuse.dag import PLAIN_ENV  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
NEUROFUSE = str(Path(sys.executable).with_name("neurofuse"))

#: Volume markers per skeleton .vmrk: enough for the TR check, small enough to stay a skeleton.
VMRK_MARKERS = 10
#: ANCHORS.md: Snakemake 9.27 dry run with 8 rules per run, seconds per 1,000 runs; ms per job.
ANCHOR_S_PER_1000_RUNS = 10.0
ANCHOR_MS_PER_JOB = 1.0
#: ``-n`` with the job stats and reasons but not one block per job (``--quiet`` alone hides the stats too).
QUIET = ("--quiet", "host", "rules")


def bytecode_env() -> dict[str, str]:
    """Python may cache compiled bytecode (in benchmarks/.work/pycache, not in the venv).

    Where ``PYTHONDONTWRITEBYTECODE=1`` is set and the venv holds no ``.pyc`` files (uv
    installs without them), every process compiles Snakemake and its plugins from source
    first: 3-4 s of each call here. A normal installation caches bytecode after the first
    run; that is what is timed.
    """
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPYCACHEPREFIX=str(WORK / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def timed(cmd: list[str], cwd: Path | None = None,
          env: dict[str, str] | None = None) -> tuple[float, float, float, subprocess.CompletedProcess]:
    """Wall seconds, CPU seconds, peak RSS (MB) and the result of ``cmd``.

    CPU time (user + system) is what the run costs on a core of its own: on a machine shared
    with other work, wall time also counts the waiting. CPU time and peak RSS are those of
    this process and the processes it waited for (``os.wait4``), not of earlier commands.
    """
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, text=True,
                                env=dict(bytecode_env(), **(env or {})))
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, result


def job_counts(text: str) -> dict[str, int]:
    """The ``Job stats`` table of a dry run: rule -> number of jobs (``total`` included)."""
    if "Job stats:" not in text:
        return {}
    table = text.split("Job stats:", 1)[1]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


def make_project(bids: Path) -> Path:
    """A working directory with the repository's config, images not read (empty placeholders)."""
    import yaml

    project = WORK / f"dag-project-{bids.name}"
    if project.exists():
        shutil.rmtree(project)
    shutil.copytree(REPO / "config", project / "config")
    config_file = project / "config" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["bids_dir"] = str(bids)
    config["index"]["check_images"] = False
    config_file.write_text(yaml.safe_dump(config))
    return project


def dry_run(project: Path, *extra: str, env: dict[str, str] | None = None
            ) -> tuple[float, float, float, subprocess.CompletedProcess]:
    cmd = [SNAKEMAKE, "-s", str(REPO / "workflow" / "Snakefile"), "--directory", str(project), "-n", *extra]
    return timed(cmd, env=env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=1000, help="number of subjects (default 1000)")
    parser.add_argument("--sessions", type=int, default=len(SESSIONS), help=f"sessions per subject (default {len(SESSIONS)})")
    parser.add_argument("--runs", type=int, default=len(RUNS), help=f"runs per session (default {len(RUNS)})")
    parser.add_argument("--listing", action="store_true", help="also time the dry run that lists every job")
    args = parser.parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)

    sessions = tuple(str(i) for i in range(1, args.sessions + 1))
    runs = tuple(str(i) for i in range(1, args.runs + 1))
    bids, n_files, gen = make_dataset(args.subjects, VMRK_MARKERS, sessions, runs)
    n_runs = args.subjects * len(sessions) * len(runs)
    print(f"dataset: {bids.relative_to(REPO)}  {args.subjects} subjects x {len(sessions)} sessions x {len(runs)} runs "
          f"= {n_runs} EEG-fMRI runs, {n_files} files" + (f", generated in {gen:.1f} s" if gen else ""))
    project = make_project(bids)

    timed([SNAKEMAKE, "--version"])  # compile and cache the bytecode once
    startup, startup_cpu, startup_rss, _ = timed([SNAKEMAKE, "--version"])
    index_s, index_cpu, index_rss, res = timed([NEUROFUSE, "index", str(bids), "--no-check-images"])
    if res.returncode != 0:
        print(res.stderr, file=sys.stderr)
        return 1
    dry_run(project, *QUIET)  # warm the file-system cache and write the index once
    total, total_cpu, rss, res = dry_run(project, *QUIET)
    if res.returncode != 0:
        print(res.stdout[-2000:], res.stderr[-3000:], file=sys.stderr)
        return 1
    jobs = job_counts(res.stdout + res.stderr)
    n_jobs = jobs.get("total", 0)
    dag_cpu = max(total_cpu - startup_cpu - index_cpu, 0.0)
    rows = [
        ("snakemake --version (start-up)", startup, startup_cpu, startup_rss, ""),
        ("neurofuse index (imports + index)", index_s, index_cpu, index_rss, ""),
        ("snakemake -n --quiet host rules", total, total_cpu, rss, f"{n_jobs} jobs"),
        ("  of which parsing + DAG (the rest)", None, dag_cpu, None,
         f"{1000 * dag_cpu / max(n_jobs, 1):.2f} ms CPU per job"),
    ]
    plain, plain_cpu, plain_rss, res_plain = dry_run(project, *QUIET, env={PLAIN_ENV: "1"})
    same = job_counts(res_plain.stdout + res_plain.stderr) == jobs
    rows.append(("  same, Snakemake's own code only", plain, plain_cpu, plain_rss,
                 f"{PLAIN_ENV}=1: {'same jobs' if same else 'DIFFERENT JOBS'}; neurofuse.dag saves "
                 f"{100 * (1 - total_cpu / max(plain_cpu, 1e-9)):.0f}% CPU"))
    quiet, quiet_cpu, quiet_rss, _ = dry_run(project, "--quiet")
    rows.append(("snakemake -n --quiet", quiet, quiet_cpu, quiet_rss,
                 "no job stats; Snakemake stops after the DAG (no scheduling pass)"))
    judged = [("snakemake -n --quiet host rules", total, total_cpu, rss)]
    if args.listing:
        listed, listed_cpu, listed_rss, res2 = dry_run(project)
        rows.append(("snakemake -n (every job listed)", listed, listed_cpu, listed_rss,
                     f"{len(res2.stdout) / 1e6:.1f} MB printed"))
        judged.append(("snakemake -n", listed, listed_cpu, listed_rss))
    print()
    print(f"{'what':<38}{'wall s':>9}{'CPU s':>9}{'peak MB':>9}  note")
    blank = lambda value, fmt: f"{'':>9}" if value is None else format(value, fmt)  # noqa: E731
    for label, seconds, cpu, mem, note in rows:
        print(f"{label:<38}{blank(seconds, '9.2f')}{cpu:9.2f}{blank(mem, '9.0f')}  {note}")
    print()
    print("jobs per rule: " + ", ".join(f"{k} {v}" for k, v in jobs.items() if k != "total"))
    anchor_s = ANCHOR_S_PER_1000_RUNS * n_runs / 1000
    print(f"anchor (ANCHORS.md): Snakemake alone, 8 rules per run: ~{anchor_s:.0f} s for {n_runs} runs "
          f"(+ 2-3 s start-up), ~{ANCHOR_MS_PER_JOB:.0f} ms per job; here {n_jobs / n_runs:.1f} jobs per run")
    for label, seconds, cpu, mem in judged:
        verdict = "meets" if cpu <= 60 and mem <= 1536 else "MISSES"
        print(f"goal: {label} <= 60 s and <= 1.5 GB: {verdict} ({cpu:.1f} s CPU, {seconds:.1f} s wall, "
              f"{mem:.0f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
