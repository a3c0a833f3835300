#!/usr/bin/env python
"""Load: the small preset with N subjects (default 50) end to end on 2 cores; time and peak memory.

Simulates ``--subjects`` subjects with the ``small`` preset (seed 42) under
``benchmarks/.work/``, runs the real Snakefile with ``--cores 2`` and a memory budget of
``--limit-gb`` (Snakemake's ``mem_mb`` resource: it never starts jobs whose declared
memory would exceed it together), and samples the whole process tree (Snakemake and every
job with its children) every ``--interval`` seconds with psutil:

* per rule: jobs, wall seconds (mean, max, sum), peak RSS of one job (the job's script
  process and its children, summed);
* the whole run: wall time, the peak of the summed RSS of the tree (what the machine must
  hold), checked against ``--limit-gb``;
* Snakemake's own ``benchmark:`` figures (``neurofuse benchmarks``) for the rules that
  write them.

A job is recognised by the rule script it runs (``.snakemake/scripts/tmp*.<rule>.py``).
Per-subject figures: wall time per subject is the run's wall time over N (the group rules
are included, so it falls a little as N grows); per-subject rules' peaks do not grow with
N (at most 2 jobs at once), the group rules' (``fusion_*``, ``report_build_group``) do,
and are printed apart for extrapolation.

Usage: ``.venv/bin/python benchmarks/bench_load.py [--subjects 50] [--cores 2] [--limit-gb 24] [--keep]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SCRIPT = re.compile(r"\.snakemake/scripts/tmp[^/ ]*?\.(\w+)\.py")
#: Rules that see every subject at once: their memory grows with N.
GROUP_RULES = ("fusion_combine_glm", "fusion_train_model", "report_build_group", "report_write_methods",
               "report_summarize_dataset", "privacy_write_findings")


class TreeSampler(threading.Thread):
    """Samples RSS of a process and all its descendants; attributes job processes to rules."""

    def __init__(self, root_pid: int, interval: float):
        super().__init__(daemon=True)
        self.root = psutil.Process(root_pid)
        self.interval = interval
        self.stop_event = threading.Event()
        self.peak_total = 0
        self.peak_at = 0.0
        self.jobs: dict[int, dict] = {}  # job pid -> rule, first, last, peak
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.sample()
            self.stop_event.wait(self.interval)

    def sample(self) -> None:
        try:
            procs = [self.root] + self.root.children(recursive=True)
        except psutil.NoSuchProcess:
            return
        rss: dict[int, int] = {}
        parent: dict[int, int] = {}
        rule_of: dict[int, str] = {}
        for proc in procs:
            try:
                with proc.oneshot():
                    rss[proc.pid] = proc.memory_info().rss
                    parent[proc.pid] = proc.ppid()
                    match = SCRIPT.search(" ".join(proc.cmdline()))
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            if match:
                rule_of[proc.pid] = match.group(1)
        now = time.monotonic() - self.t0
        total = sum(rss.values())
        if total > self.peak_total:
            self.peak_total, self.peak_at = total, now
        per_job: dict[int, int] = defaultdict(int)
        for pid, value in rss.items():
            job, seen = pid, set()
            while job not in rule_of and job in parent and job not in seen:  # climb to the job's script process
                seen.add(job)
                job = parent[job]
            if job in rule_of:
                per_job[job] += value
        for job, value in per_job.items():
            entry = self.jobs.setdefault(job, {"rule": rule_of[job], "first": now, "last": now, "peak": 0})
            entry["last"] = now
            entry["peak"] = max(entry["peak"], value)


def simulate(out: Path, subjects: int, seed: int) -> None:
    if (out / "dataset_description.json").is_file():
        return
    from neurofuse.simulate import simulate_dataset

    t0 = time.perf_counter()
    simulate_dataset(out, preset="small", n_subjects=subjects, seed=seed)
    print(f"simulated {subjects} subjects in {time.perf_counter() - t0:.0f} s -> {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subjects", type=int, default=50)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--limit-gb", type=float, default=24.0, help="memory budget of the run (GB)")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the outputs (benchmarks/.work/load-N/project)")
    args = parser.parse_args(argv)

    base = WORK / f"load-{args.subjects}"
    dataset = base / "bids"
    simulate(dataset, args.subjects, args.seed)
    project = base / "project"
    shutil.rmtree(project, ignore_errors=True)
    shutil.copytree(REPO / "config", project / "config")
    limit_mb = int(args.limit_gb * 1000)
    cmd = [SNAKEMAKE, "-s", str(REPO / "workflow" / "Snakefile"), "--directory", str(project),
           "--cores", str(args.cores), "--resources", f"mem_mb={limit_mb}", "--quiet", "all",
           "--config", f"bids_dir={dataset}"]
    log = open(base / "snakemake.log", "w")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONHASHSEED="0"))
    sampler = TreeSampler(proc.pid, args.interval)
    sampler.start()
    code = proc.wait()
    wall = time.monotonic() - t0
    sampler.stop_event.set()
    sampler.join()
    log.close()
    if code != 0:
        print((base / "snakemake.log").read_text()[-3000:])
        print(f"the run failed (exit {code}); log in {base / 'snakemake.log'}")
        return 1

    rules: dict[str, list[dict]] = defaultdict(list)
    for entry in sampler.jobs.values():
        rules[entry["rule"]].append(entry)
    gb = 1e9  # GB as in the budget (--limit-gb), not GiB
    print(f"\n{args.subjects} subjects (small preset), --cores {args.cores}, budget {args.limit_gb:g} GB: "
          f"{wall:.0f} s wall ({wall / args.subjects:.1f} s per subject), "
          f"peak RSS of the whole process tree {sampler.peak_total / gb:.2f} GB at {sampler.peak_at:.0f} s "
          f"({'within' if sampler.peak_total / gb <= args.limit_gb else 'ABOVE'} {args.limit_gb:g} GB)")
    print(f"\n{'rule (sampled every %.1f s)' % args.interval:<36}{'jobs':>5}{'mean s':>9}{'max s':>9}{'sum s':>9}"
          f"{'peak MB':>9}")
    table = {}
    for rule, entries in sorted(rules.items()):
        durations = [e["last"] - e["first"] for e in entries]
        peak = max(e["peak"] for e in entries) / 1e6
        table[rule] = {"jobs": len(entries), "mean_s": sum(durations) / len(durations), "max_s": max(durations),
                       "sum_s": sum(durations), "peak_mb": peak, "group": rule in GROUP_RULES}
        mark = " (group)" if rule in GROUP_RULES else ""
        print(f"{rule + mark:<36}{len(entries):>5}{table[rule]['mean_s']:9.1f}{max(durations):9.1f}"
              f"{sum(durations):9.1f}{peak:9.0f}")
    subject_sum = sum(row["sum_s"] for row in table.values() if not row["group"])
    group_sum = sum(row["sum_s"] for row in table.values() if row["group"])
    print(f"\njob time per subject (per-subject rules, summed over jobs): {subject_sum / args.subjects:.1f} s; "
          f"group rules: {group_sum:.1f} s in all")
    print(f"extrapolated wall time for 50 subjects on {args.cores} cores: "
          f"{(subject_sum / args.subjects * 50 / args.cores + group_sum) / 60:.0f} min "
          "(per-subject job time x 50 / cores + the group rules as measured here)")
    bench = subprocess.run([str(Path(sys.executable).with_name("neurofuse")), "benchmarks", str(project / "results")],
                           capture_output=True, text=True)
    print("\nSnakemake's benchmark: figures (neurofuse benchmarks):\n" + bench.stdout)
    if args.json:
        args.json.write_text(json.dumps({"subjects": args.subjects, "cores": args.cores, "wall_s": wall,
                                         "peak_rss_gb": sampler.peak_total / gb, "rules": table}, indent=2))
    if not args.keep:
        shutil.rmtree(project, ignore_errors=True)
    return 0 if sampler.peak_total / gb <= args.limit_gb else 1


if __name__ == "__main__":
    sys.exit(main())
