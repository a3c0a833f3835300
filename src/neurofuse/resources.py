"""What each job asks a scheduler for, from measured figures, and the measurements themselves.

Two halves:

* :class:`ResourceModel` reads ``workflow/resources.yaml`` -- for every rule, the input
  size, CPU time and peak memory of real jobs at two dataset sizes (the simulator's
  ``small`` and ``demo`` presets) -- and turns them into the ``mem_mb`` and ``runtime``
  that a job of *any* input size asks for: a straight line through the measurements
  (more memory and time for bigger inputs), times a safety factor, at least a floor,
  and multiplied by the attempt number so that a job that was killed for lack of
  memory or time asks for more when Snakemake retries it. The rules call it through
  ``measured("<rule>")`` (``workflow/rules/common.smk``), so SLURM (``--mem``,
  ``--time``), Kubernetes (requests and limits) and Google Batch all see the same
  figures. For Google Batch the same call also sets ``googlebatch_memory`` and
  ``googlebatch_max_run_duration`` (the plugin does not read ``mem_mb`` or ``runtime``,
  and its default run limit of 3600 s would kill a long job).
* :func:`read_benchmarks` and :func:`summarize_benchmarks` read the ``benchmark:``
  files of a finished run (``<output_dir>/benchmarks/<rule>/...tsv``) and give the
  time and memory per rule and per subject: the figures to put into
  ``resources.yaml`` and to estimate what a study costs (``neurofuse benchmarks``).
"""

from __future__ import annotations

import csv
import math
import os
import re
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from neurofuse.errors import NeuroFuseError

__all__ = [
    "Measurement",
    "RuleModel",
    "ResourceModel",
    "load_resource_model",
    "BenchmarkRecord",
    "read_benchmarks",
    "summarize_benchmarks",
    "format_benchmarks",
    "gcp_machine_type",
    "GCP_MACHINES",
]


@dataclass(frozen=True, slots=True)
class Measurement:
    """One measured job: input size (MiB), CPU seconds per thread (the wall time on idle cores), peak memory."""

    input_mb: float
    cpu_seconds: float
    max_rss_mb: float
    preset: str = ""


def _line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares ``(intercept, slope)`` through the points; slope >= 0, intercept >= 0.

    A single point (or points at one input size) gives a flat line at their maximum.
    """
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    n = len(points)
    mean_x = sum(xs) / n
    mean_y = sum(ys) / n
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return max(ys), 0.0
    slope = max(sum((x - mean_x) * (y - mean_y) for x, y in points) / var, 0.0)
    intercept = max(mean_y - slope * mean_x, 0.0)
    # The line must not promise less than what any measurement needed.
    shortfall = max(y - (intercept + slope * x) for x, y in points)
    return intercept + max(shortfall, 0.0), slope


@dataclass(frozen=True)
class RuleModel:
    """``mem_mb`` and ``runtime`` of one rule as functions of its input size (MB) and attempt."""

    rule: str
    measurements: tuple[Measurement, ...]
    mem_safety: float
    runtime_safety: float
    max_run_factor: float
    min_mem_mb: int
    min_runtime: int
    min_max_run_s: int
    mem_line: tuple[float, float] = field(init=False)
    time_line: tuple[float, float] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mem_line", _line([(m.input_mb, m.max_rss_mb) for m in self.measurements]))
        object.__setattr__(self, "time_line", _line([(m.input_mb, m.cpu_seconds) for m in self.measurements]))

    def mem_mb(self, input_mb: float, attempt: int = 1) -> int:
        """Memory to ask for, in MB: the measured line x safety, rounded up to 100 MB, x attempt."""
        a, b = self.mem_line
        need = max((a + b * max(input_mb, 0.0)) * self.mem_safety, self.min_mem_mb)
        return int(math.ceil(need / 100.0) * 100) * max(int(attempt), 1)

    def runtime(self, input_mb: float, attempt: int = 1) -> int:
        """Wall time to ask for, in minutes: the measured line x safety, rounded up, x attempt."""
        a, b = self.time_line
        minutes = max((a + b * max(input_mb, 0.0)) * self.runtime_safety / 60.0, self.min_runtime)
        return int(math.ceil(minutes)) * max(int(attempt), 1)

    def max_run_seconds(self, input_mb: float, attempt: int = 1) -> int:
        """Hard limit for cloud executors (Google Batch ``max_run_duration``): a multiple of runtime,
        never below the floor (which leaves room for the VM to pull the image and stage inputs)."""
        return max(int(self.runtime(input_mb, attempt) * 60 * self.max_run_factor), self.min_max_run_s)


_last_input: tuple[Any, float] | None = None  # (weak reference to a job's input, its size)


def _input_mb(input: Any) -> float:
    """Size of a job's input files in MiB; files that do not exist yet count 0 (a dry run).

    Snakemake evaluates all of a job's resources in a row with the same ``input`` object,
    so the size is computed once per job (the last one is remembered). Local files are
    sized with ``os.stat``: Snakemake's ``input.size_mb`` starts an event loop per call,
    which at 46,000 jobs costs more than building the whole DAG. Files in storage
    (buckets) go through Snakemake, which knows their sizes from its storage inventory.
    """
    global _last_input
    if _last_input is not None and _last_input[0]() is input:
        return _last_input[1]
    from snakemake.io import is_flagged

    total = 0
    try:
        for path in input:
            if is_flagged(path, "storage_object"):
                total = float(input.size_mb) * 1024**2
                break
            try:
                total += os.stat(path).st_size
            except OSError:
                pass
    except Exception:  # noqa: BLE001 - storage that cannot be asked yet: size unknown, the floors apply
        total = 0
    size = total / 1024**2 if math.isfinite(total) else 0.0
    try:
        _last_input = (weakref.ref(input), size)
    except TypeError:  # not weak-referenceable (a plain list in the tests): no memo
        _last_input = None
    return size


class ResourceModel:
    """Every rule's :class:`RuleModel`, read from ``workflow/resources.yaml``."""

    def __init__(self, data: Mapping[str, Any], source: str = "resources.yaml"):
        self.source = source
        safety = data.get("safety") or {}
        floor = data.get("floor") or {}
        rules = data.get("rules") or {}
        if not isinstance(rules, Mapping) or not rules:
            raise NeuroFuseError("no rules with measurements", source, "list each rule under 'rules:'")
        self.models: dict[str, RuleModel] = {}
        for rule, points in rules.items():
            try:
                measurements = tuple(
                    Measurement(float(p["input_mb"]), float(p["cpu_seconds"]), float(p["max_rss_mb"]),
                                str(p.get("preset", ""))) for p in points)
            except (KeyError, TypeError, ValueError):
                raise NeuroFuseError(f"rule {rule}: every measurement needs input_mb, cpu_seconds and max_rss_mb",
                                     source, "copy the figures that `neurofuse benchmarks` prints") from None
            if not measurements:
                raise NeuroFuseError(f"rule {rule} has no measurements", source)
            self.models[rule] = RuleModel(
                rule, measurements,
                mem_safety=float(safety.get("mem", 1.5)), runtime_safety=float(safety.get("runtime", 3.0)),
                max_run_factor=float(safety.get("max_run", 2.0)), min_mem_mb=int(floor.get("mem_mb", 1000)),
                min_runtime=int(floor.get("runtime", 5)), min_max_run_s=int(floor.get("max_run_s", 3600)))

    def __getitem__(self, rule: str) -> RuleModel:
        try:
            return self.models[rule]
        except KeyError:
            raise NeuroFuseError(f"no measured resources for rule {rule}", self.source,
                                 "run the rule once with benchmark: and add its figures") from None

    def snakemake_resources(self, rule: str, google_batch: bool = True) -> dict[str, Callable[..., Any]]:
        """The ``resources:`` of ``rule``: callables of the job's input, threads and attempt.

        ``mem_mb`` and ``runtime`` are what every executor reads. The Google Batch plugin
        reads neither, so with ``google_batch`` the same figures are also given in its terms:
        the task's memory (``googlebatch_memory``), its run limit
        (``googlebatch_max_run_duration``, a multiple of ``runtime``) and the smallest N2
        machine that holds both (``googlebatch_machine_type``; a profile's ``set-resources``
        may override it, e.g. with a GPU machine). Other executors ignore these three; the
        Snakefile asks for them only when the data live in a bucket (every resource costs
        Snakemake time per job: ~3 s per 10,000 jobs for these three).
        """
        model = self[rule]

        def mem_mb(wildcards, input, attempt):
            return model.mem_mb(_input_mb(input), attempt)

        def runtime(wildcards, input, attempt):
            return model.runtime(_input_mb(input), attempt)

        def googlebatch_max_run_duration(wildcards, input, attempt):
            return f"{model.max_run_seconds(_input_mb(input), attempt)}s"

        def googlebatch_machine_type(wildcards, input, threads, attempt):
            return gcp_machine_type(threads, model.mem_mb(_input_mb(input), attempt))

        if not google_batch:
            return {"mem_mb": mem_mb, "runtime": runtime}
        return {"mem_mb": mem_mb, "runtime": runtime, "googlebatch_memory": mem_mb,
                "googlebatch_max_run_duration": googlebatch_max_run_duration,
                "googlebatch_machine_type": googlebatch_machine_type}


#: Compute Engine N2 shapes a Google Batch job may get (name, vCPUs, memory MiB), cheapest first.
GCP_MACHINES = (
    ("n2-standard-2", 2, 8192), ("n2-highmem-2", 2, 16384), ("n2-highmem-4", 4, 32768),
    ("n2-highmem-8", 8, 65536), ("n2-highmem-16", 16, 131072), ("n2-highmem-32", 32, 262144),
)
#: Memory a VM needs besides the task: Container-Optimized OS, Docker, the Batch agent (MiB).
GCP_VM_OVERHEAD_MB = 1024


def gcp_machine_type(threads: int, mem_mb: int) -> str:
    """The smallest N2 machine with ``threads`` vCPUs and ``mem_mb`` + the VM's own overhead."""
    for name, cpus, memory in GCP_MACHINES:
        if cpus >= int(threads or 1) and memory >= mem_mb + GCP_VM_OVERHEAD_MB:
            return name
    return GCP_MACHINES[-1][0]


def load_resource_model(path: str | os.PathLike) -> ResourceModel:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise NeuroFuseError("the measured resources file is missing", path) from None
    return ResourceModel(data, source=str(path))


# --------------------------------------------------------------------------- benchmarks

#: Columns of Snakemake's benchmark TSV that we keep.
_BENCH_FIELDS = ("s", "max_rss", "cpu_time", "io_in", "io_out")
_SUBJECT = re.compile(r"sub-([A-Za-z0-9]+)")


@dataclass(frozen=True, slots=True)
class BenchmarkRecord:
    """One benchmark file: the rule, the job's wildcard part of the path and its figures."""

    rule: str
    job: str
    seconds: float
    max_rss_mb: float
    cpu_seconds: float

    @property
    def subject(self) -> str | None:
        match = _SUBJECT.search(self.job)
        return match.group(1) if match else None


def _number(value: str | None) -> float:
    try:
        number = float(value) if value not in (None, "", "-", "NA") else float("nan")
    except ValueError:
        return float("nan")
    return number


def read_benchmarks(output_dir: str | os.PathLike) -> list[BenchmarkRecord]:
    """Every ``<output_dir>/benchmarks/<rule>/**/*.tsv`` (last row: the last repeat)."""
    root = Path(output_dir) / "benchmarks"
    if not root.is_dir():
        raise NeuroFuseError("no benchmarks folder", root,
                             "run the workflow first: the heavy rules write benchmarks/<rule>/... files")
    records = []
    for path in sorted(root.rglob("*.tsv")):
        rel = path.relative_to(root)
        rule, job = rel.parts[0], "/".join(rel.parts[1:])[: -len(".tsv")]
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
        if not rows:
            continue
        row = rows[-1]
        records.append(BenchmarkRecord(rule, job or rule, _number(row.get("s")), _number(row.get("max_rss")),
                                       _number(row.get("cpu_time"))))
    if not records:
        raise NeuroFuseError("the benchmarks folder holds no benchmark files", root, "run the workflow first")
    return records


def summarize_benchmarks(records: Iterable[BenchmarkRecord]) -> dict[str, Any]:
    """Per rule (jobs, mean and max seconds, max memory, CPU time) and per subject (sums)."""
    by_rule: dict[str, list[BenchmarkRecord]] = defaultdict(list)
    by_subject: dict[str, list[BenchmarkRecord]] = defaultdict(list)
    for record in records:
        by_rule[record.rule].append(record)
        by_subject[record.subject or "(group)"].append(record)

    def finite(values):
        return [v for v in values if math.isfinite(v)]

    rules = {}
    for rule, rows in sorted(by_rule.items()):
        secs = finite(r.seconds for r in rows)
        rss = finite(r.max_rss_mb for r in rows)
        cpu = finite(r.cpu_seconds for r in rows)
        rules[rule] = {
            "jobs": len(rows),
            "mean_s": sum(secs) / len(secs) if secs else None,
            "max_s": max(secs) if secs else None,
            "max_rss_mb": max(rss) if rss else None,
            "cpu_s": sum(cpu) if cpu else None,
        }
    subjects = {}
    for subject, rows in sorted(by_subject.items()):
        secs = finite(r.seconds for r in rows)
        cpu = finite(r.cpu_seconds for r in rows)
        rss = finite(r.max_rss_mb for r in rows)
        subjects[subject] = {"jobs": len(rows), "wall_s": sum(secs), "cpu_s": sum(cpu),
                             "max_rss_mb": max(rss) if rss else None}
    return {"rules": rules, "subjects": subjects}


def format_benchmarks(summary: Mapping[str, Any]) -> str:
    """Two plain-text tables: per rule and per subject."""

    def num(value, fmt):
        return format(value, fmt) if value is not None else "-"

    lines = [f"{'rule':<34}{'jobs':>5}{'mean s':>9}{'max s':>9}{'max MB':>9}{'CPU s':>9}"]
    for rule, row in summary["rules"].items():
        lines.append(f"{rule:<34}{row['jobs']:>5}{num(row['mean_s'], '9.1f')}{num(row['max_s'], '9.1f')}"
                     f"{num(row['max_rss_mb'], '9.0f')}{num(row['cpu_s'], '9.1f')}")
    lines.append("")
    lines.append(f"{'subject':<34}{'jobs':>5}{'wall s':>9}{'CPU s':>9}{'max MB':>9}")
    for subject, row in summary["subjects"].items():
        lines.append(f"{subject:<34}{row['jobs']:>5}{row['wall_s']:9.1f}{row['cpu_s']:9.1f}"
                     f"{num(row['max_rss_mb'], '9.0f')}")
    return "\n".join(lines)
