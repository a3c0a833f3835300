"""``neurofuse cost``: what a study would cost on Google Cloud, per subject and in total.

The estimate multiplies three things, each shown in the output with where it came from:

* **Job times and shapes.** Either the ``benchmark:`` files of a measured run
  (``RESULTS/benchmarks``, read by :func:`neurofuse.resources.read_benchmarks`) or, for
  rules without a benchmark file and when no run is given, the per-rule measurements of
  ``workflow/resources.yaml`` for one of its presets (``small``, ``demo``). Each job is
  priced on the VM the gcp profile would give it: the smallest N2 shape for its threads
  and memory (:func:`neurofuse.resources.gcp_machine_type`, the code the rules use), or
  the profile's ``set-resources`` (training: ``n1-standard-8`` + one T4 GPU).
* **Data sizes.** Inputs per subject from the BIDS folder, outputs per subject (and once
  per study) from the results folder; with neither, storage and egress are left out and
  the output says so.
* **Prices** from an editable YAML table (``config/gcp_prices.yaml``): every price with
  its source page and the date it was read. A price that is needed but not filled in is
  an error naming its key, never a guess.

Billing follows the Compute Engine model: each job is its own Google Batch VM, billed per
second after a minimum of one minute, plus the VM's start-up time (not measured here:
``startup_minutes``, default 0, stated in the output). What is not priced is listed in
the output's assumptions (boot disks, Cloud Logging, bucket operations, Spot
preemptions and retries, taxes).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from neurofuse.config import REPO_ROOT
from neurofuse.errors import NeuroFuseError
from neurofuse.resources import (
    ResourceModel,
    gcp_machine_type,
    load_resource_model,
    read_benchmarks,
)

__all__ = ["PriceTable", "load_prices", "RULES", "estimate_cost", "CostEstimate", "DEFAULT_PRICES"]

DEFAULT_PRICES = REPO_ROOT / "config" / "gcp_prices.yaml"
GCP_PROFILE = REPO_ROOT / "profiles" / "gcp" / "config.v8+.yaml"
GIB = 1024**3
#: The plugin's accelerator type when ``nvidia_gpu`` is a count (snakemake-executor-plugin-googlebatch 0.5.1).
DEFAULT_GPU = "nvidia-tesla-t4"
#: Compute Engine bills every VM for at least one minute.
MIN_BILLED_S = 60.0

#: Every rule: how often it runs (per BOLD/EEG run, per subject, once per study) and its threads
#: (as in workflow/rules/*.smk; tests/unit/test_cost.py checks both against the workflow).
RULES: dict[str, tuple[str, int]] = {
    "fmri_estimate_head_motion": ("run", 1),
    "anat_register_t1w_to_template": ("subject", 1),
    "fmri_resample_bold_to_template": ("run", 1), "fmri_compute_confounds": ("run", 1),
    "eeg_remove_gradient_artifact": ("run", 1),
    "eeg_remove_bcg_artifact": ("run", 1), "eeg_clean_signal": ("run", 1),
    "eeg_compute_band_power": ("run", 1), "fusion_fit_glm": ("run", 1),
    "fusion_combine_glm": ("study", 1), "fusion_train_model": ("study", 2),
    "report_summarize_dataset": ("study", 1), "report_build_subject": ("subject", 1),
    "report_write_methods": ("study", 1), "privacy_write_findings": ("study", 1),
    "report_build_group": ("study", 1),
}


# --------------------------------------------------------------------------- prices

@dataclass(frozen=True)
class Price:
    key: str
    price: float
    unit: str
    source: str
    read: str


class PriceTable:
    """One region of a price file; :meth:`get` returns a sourced price or raises naming the key."""

    UNITS = {"machine_hour": "per VM hour", "gpu_hour": "per GPU hour",
             "storage_gb_month": "per GB and month", "egress_gb": "per GB"}

    def __init__(self, data: Mapping[str, Any], source: str, region: str | None = None):
        self.source = source
        regions = data.get("regions") if isinstance(data, Mapping) else None
        if not isinstance(regions, Mapping) or not regions:
            raise NeuroFuseError("no 'regions:' with prices", source, "start from config/gcp_prices.yaml")
        self.region = region or data.get("default_region") or next(iter(regions))
        if self.region not in regions:
            raise NeuroFuseError(f"no prices for region {self.region}", source,
                                 f"add a 'regions: {self.region}:' block (regions in the file: {', '.join(regions)})")
        self.currency = str(data.get("currency", "USD"))
        self.table = regions[self.region] or {}
        self.used: dict[str, Price] = {}

    def get(self, *path: str) -> Price:
        key = ".".join(("regions", self.region) + path)
        node: Any = self.table
        for part in path:
            node = node.get(part) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping) or node.get("price") is None:
            where = f" from {node['source']}" if isinstance(node, Mapping) and node.get("source") else ""
            raise NeuroFuseError(f"the price {key} is needed for this estimate but not filled in", self.source,
                                 f"read it{where}, set price (USD {self.UNITS.get(path[0], '')}) and read "
                                 "(the date), or pass --prices with your own table")
        try:
            value = float(node["price"])
        except (TypeError, ValueError):
            raise NeuroFuseError(f"the price {key} is not a number: {node['price']!r}", self.source) from None
        if not math.isfinite(value) or value < 0:
            raise NeuroFuseError(f"the price {key} must be >= 0, got {value}", self.source)
        price = Price(key, value, self.UNITS.get(path[0], ""), str(node.get("source") or "not given"),
                      str(node.get("read") or "not given"))
        self.used[key] = price
        return price


def load_prices(path: str | os.PathLike | None = None, region: str | None = None) -> PriceTable:
    path = Path(path) if path else DEFAULT_PRICES
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise NeuroFuseError("the price table does not exist", path, "pass --prices FILE (see config/gcp_prices.yaml)") from None
    except yaml.YAMLError as err:
        raise NeuroFuseError(f"the price table is not valid YAML ({err.__class__.__name__})", path) from None
    return PriceTable(data, str(path), region)


# --------------------------------------------------------------------------- jobs

@dataclass(frozen=True)
class Job:
    """One job type of the estimate: how many per subject (or per study), how long, on what VM."""

    rule: str
    scope: str  # "subject" (per subject) or "study" (once)
    count: float  # jobs per subject (scope subject) or per study
    seconds: float  # run time of one job
    machine: str
    gpus: int
    gpu_type: str | None
    source: str


def profile_overrides(path: str | os.PathLike = GCP_PROFILE) -> dict[str, dict[str, Any]]:
    """``set-resources`` of the gcp profile: rule -> machine type and GPU count it sets."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    out = {}
    for rule, res in (data.get("set-resources") or {}).items():
        gpu = res.get("nvidia_gpu")
        count = int(gpu) if isinstance(gpu, int) or (isinstance(gpu, str) and gpu.isdigit()) else (1 if gpu else 0)
        out[rule] = {"machine": res.get("googlebatch_machine_type"), "gpus": count,
                     "gpu_type": DEFAULT_GPU if isinstance(gpu, int) or str(gpu).isdigit() else gpu}
    return out


def _vm(rule: str, mem_mb: int, overrides: Mapping[str, Mapping[str, Any]]) -> tuple[str, int, str | None]:
    threads = RULES[rule][1]
    override = overrides.get(rule, {})
    machine = override.get("machine") or gcp_machine_type(threads, mem_mb)
    gpus = int(override.get("gpus") or 0)
    return machine, gpus, (override.get("gpu_type") if gpus else None)


def jobs_from_presets(model: ResourceModel, preset: str, runs_per_subject: float,
                      overrides: Mapping[str, Mapping[str, Any]], rules=None) -> list[Job]:
    """One :class:`Job` per rule from resources.yaml's measurement for ``preset``."""
    jobs = []
    for rule in rules if rules is not None else [r for r in RULES if r in model.models]:
        scope = RULES[rule][0]
        points = [m for m in model[rule].measurements if m.preset == preset]
        if not points:
            raise NeuroFuseError(f"rule {rule} has no measurement for preset {preset!r}", model.source,
                                 "choose --preset small or demo")
        point = max(points, key=lambda m: m.input_mb)
        machine, gpus, gpu_type = _vm(rule, model[rule].mem_mb(point.input_mb), overrides)
        count = runs_per_subject if scope == "run" else 1.0
        jobs.append(Job(rule, "study" if scope == "study" else "subject", count, point.cpu_seconds, machine, gpus,
                        gpu_type, f"resources.yaml, preset {preset}"))
    return jobs


def jobs_from_benchmarks(results: str | os.PathLike, model: ResourceModel,
                         overrides: Mapping[str, Mapping[str, Any]]) -> tuple[list[Job], list[str]]:
    """Jobs measured in ``results/benchmarks``: mean per subject over the measured subjects.

    Returns the jobs and the measured subjects. The VM of a measured job is the one its
    peak memory x the memory safety factor calls for (the request of the rule is the
    measured line x that factor; the job's input size is not in the benchmark file).
    """
    records = read_benchmarks(results)
    subjects = sorted({r.subject for r in records if r.subject})
    by_rule: dict[str, list] = defaultdict(list)
    for record in records:
        if record.rule not in RULES:
            raise NeuroFuseError(f"benchmark files of an unknown rule {record.rule}", Path(results) / "benchmarks",
                                 "use the results of this NeuroFuse version")
        by_rule[record.rule].append(record)
    jobs = []
    for rule, rows in sorted(by_rule.items()):
        seconds = [r.seconds for r in rows if math.isfinite(r.seconds)]
        if not seconds:
            continue
        rss = max((r.max_rss_mb for r in rows if math.isfinite(r.max_rss_mb)), default=0.0)
        rm = model[rule]
        mem = max(int(math.ceil(rss * rm.mem_safety / 100.0) * 100), rm.min_mem_mb)
        machine, gpus, gpu_type = _vm(rule, mem, overrides)
        study = RULES[rule][0] == "study"
        count = len(seconds) if study else len(seconds) / max(len(subjects), 1)
        jobs.append(Job(rule, "study" if study else "subject", count, sum(seconds) / len(seconds), machine, gpus,
                        gpu_type, f"measured: {len(seconds)} job(s) in {results}"))
    return jobs, subjects


# --------------------------------------------------------------------------- sizes

_SUB = re.compile(r"(?:^|/)sub-([A-Za-z0-9]+)")


def folder_sizes(root: str | os.PathLike, skip: tuple[str, ...] = ()) -> tuple[dict[str, int], int]:
    """Bytes per subject (files under a ``sub-XX`` path part) and bytes of everything else.

    ``skip``: top-level folders to leave out; hidden folders are always left out.
    """
    per: dict[str, int] = defaultdict(int)
    rest = 0
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        dirnames[:] = [d for d in dirnames
                       if not d.startswith(".") and (f"{rel_dir}/{d}" if rel_dir != "." else d) not in skip]
        for name in filenames:
            rel = f"{rel_dir}/{name}" if rel_dir != "." else name
            try:
                size = os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
            match = _SUB.search(rel)
            if match:
                per[match.group(1)] += size
            else:
                rest += size
    return dict(per), rest


# --------------------------------------------------------------------------- estimate

@dataclass
class Line:
    item: str
    scope: str  # "per subject" | "once"
    quantity: float
    unit: str
    unit_price: float
    cost: float
    price_key: str
    basis: str


@dataclass
class CostEstimate:
    subjects: int
    region: str
    currency: str
    pricing: str
    source: str
    lines: list[Line]
    per_subject: float
    once: float
    total: float
    prices: list[dict[str, Any]]
    assumptions: list[str]
    not_priced: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def _rows(self) -> list[tuple[str, ...]]:
        rows = [("item", "scope", "quantity", "unit", f"price ({self.currency})", f"cost ({self.currency})")]
        for line in self.lines:
            rows.append((line.item, line.scope, f"{line.quantity:.4g}", line.unit, f"{line.unit_price:.4g}",
                         f"{line.cost:.4f}"))
        return rows

    def _summary(self) -> list[str]:
        c = self.currency
        return [f"per subject: {self.per_subject:.4f} {c}",
                f"once per study: {self.once:.4f} {c}",
                f"total for {self.subjects} subject(s): {self.total:.2f} {c}"
                f" = {self.subjects} x {self.per_subject:.4f} + {self.once:.4f}"]

    def text(self) -> str:
        rows = self._rows()
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        out = [f"Google Cloud cost estimate ({self.region}, {self.pricing}), {self.subjects} subject(s)",
               f"job times: {self.source}", ""]
        out += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows[:1]]
        out.append("  ".join("-" * w for w in widths))
        out += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows[1:]]
        out += [""] + self._summary() + ["", "prices:"]
        out += [f"  {p['key']} = {p['price']} {c} {p['unit']} (source {p['source']}, read {p['read']})"
                for p, c in ((p, self.currency) for p in self.prices)]
        out += ["", "assumptions:"] + [f"  - {a}" for a in self.assumptions]
        if self.not_priced:
            out += ["", "not priced:"] + [f"  - {a}" for a in self.not_priced]
        return "\n".join(out) + "\n"

    def markdown(self) -> str:
        rows = self._rows()
        out = [f"# Google Cloud cost estimate: {self.subjects} subject(s), {self.region}, {self.pricing}", "",
               f"Job times: {self.source}.", "", "| " + " | ".join(rows[0]) + " |",
               "|" + "---|" * len(rows[0])]
        out += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        out += [""] + [f"- **{s.split(':', 1)[0]}**:{s.split(':', 1)[1]}" for s in self._summary()]
        out += ["", "## Prices", "", "| key | price | unit | source | read |", "|---|---|---|---|---|"]
        out += [f"| `{p['key']}` | {p['price']} {self.currency} | {p['unit']} | {p['source']} | {p['read']} |"
                for p in self.prices]
        out += ["", "## Assumptions", ""] + [f"- {a}" for a in self.assumptions]
        if self.not_priced:
            out += ["", "## Not priced", ""] + [f"- {a}" for a in self.not_priced]
        return "\n".join(out) + "\n"


def estimate_cost(*, subjects: int, results: str | os.PathLike | None = None, bids_dir: str | os.PathLike | None = None,
                  preset: str = "demo", runs_per_subject: float = 1.0, spot: bool = True,
                  download_results: bool = False, months: float = 1.0, startup_minutes: float = 0.0,
                  prices: PriceTable | None = None, model: ResourceModel | None = None,
                  overrides: Mapping[str, Mapping[str, Any]] | None = None) -> CostEstimate:
    """The estimate for ``subjects`` subjects (see the module docstring)."""
    if subjects < 1:
        raise NeuroFuseError(f"the number of subjects must be >= 1, got {subjects}")
    prices = prices or load_prices()
    model = model or load_resource_model(REPO_ROOT / "workflow" / "resources.yaml")
    overrides = profile_overrides() if overrides is None else overrides
    pricing = "spot" if spot else "on_demand"
    assumptions: list[str] = []

    measured_subjects: list[str] = []
    if results is not None:
        jobs, measured_subjects = jobs_from_benchmarks(results, model, overrides)
        missing = [rule for rule in RULES if rule in model.models and rule not in {j.rule for j in jobs}]
        jobs += jobs_from_presets(model, preset, runs_per_subject, overrides, rules=missing) if missing else []
        source = (f"benchmark files of the run in {results} ({len(measured_subjects)} subject(s): "
                  f"{', '.join(measured_subjects) or '-'}), wall-clock seconds per job")
        if missing:
            source += f"; rules without a benchmark file from workflow/resources.yaml, preset {preset}"
            assumptions.append(f"rules without a benchmark file in the run ({', '.join(missing)}) use the CPU "
                               f"seconds measured for the {preset} preset in workflow/resources.yaml, "
                               f"{runs_per_subject:g} run(s) per subject")
        assumptions.append("the measured wall-clock times are those of the machine that ran the workflow; on a "
                           "loaded machine they overstate, on a slower cloud vCPU (one hyperthread) they may "
                           "understate the time on Google Cloud")
    else:
        jobs = jobs_from_presets(model, preset, runs_per_subject, overrides)
        source = (f"workflow/resources.yaml, the '{preset}' preset (CPU seconds per job measured on one core), "
                  f"{runs_per_subject:g} EEG-fMRI run(s) per subject")
        assumptions.append(f"job times are the simulator's '{preset}' dataset; real recordings are longer: "
                           "measure a pilot subject (`neurofuse cost RESULTS`) before a budget is final")

    lines: list[Line] = []
    startup_s = startup_minutes * 60.0
    short = [job.rule for job in jobs if job.seconds + startup_s < MIN_BILLED_S]
    if short:
        assumptions.append(f"{len(short)} of {len(jobs)} job types run under a minute and are billed the 1-minute "
                           "minimum: for them the VM's minimum, not the work, sets the cost")
    for job in jobs:
        billed_s = max(job.seconds + startup_s, MIN_BILLED_S)
        hours = job.count * billed_s / 3600.0
        scope = "per subject" if job.scope == "subject" else "once"
        vm = prices.get("machine_hour", pricing, job.machine)
        lines.append(Line(f"{job.rule} on {job.machine}", scope, hours, "VM hours", vm.price, hours * vm.price, vm.key,
                          f"{job.count:g} job(s) x {billed_s:.0f} s billed ({job.seconds:.1f} s run"
                          f"{f' + {startup_s:.0f} s start-up' if startup_s else ''}, at least 60 s); {job.source}"))
        if job.gpus:
            gpu = prices.get("gpu_hour", pricing, job.gpu_type or DEFAULT_GPU)
            gpu_hours = hours * job.gpus
            lines.append(Line(f"{job.rule}: {job.gpus} x {job.gpu_type}", scope, gpu_hours, "GPU hours", gpu.price,
                              gpu_hours * gpu.price, gpu.key, "GPU attached for the whole VM time"))

    not_priced = ["boot disks of the VMs (pd-balanced, 30 GB + 3 x the job's inputs, for the job's duration)",
                  "Cloud Storage operations (object reads and writes), Cloud Logging, Artifact Registry",
                  "taxes; negotiated or committed-use discounts"]
    # storage and egress
    input_per_subject = output_per_subject = output_once = None
    n_in = n_out = 0
    if bids_dir is not None:
        per, _rest = folder_sizes(bids_dir, skip=("derivatives", "sourcedata", "code"))  # what `upload` sends
        if not per:
            raise NeuroFuseError("no sub-* files in the dataset", bids_dir, "pass the BIDS folder")
        n_in = len(per)
        input_per_subject = sum(per.values()) / len(per) / GIB
    if results is not None:
        per, rest = folder_sizes(results, skip=("benchmarks",))
        if per:
            n_out = len(per)
            output_per_subject = sum(per.values()) / len(per) / GIB
            output_once = rest / GIB
    stored = [(name, gb, scope, basis) for name, gb, scope, basis in (
        ("inputs (BIDS dataset)", input_per_subject, "per subject", f"mean of {n_in} subject(s) in {bids_dir}"),
        ("outputs", output_per_subject, "per subject", f"mean of {n_out} subject(s) in {results}"),
        ("outputs (group, logs, reports)", output_once, "once", f"files outside sub-* in {results}"),
    ) if gb is not None]
    if stored:
        storage = prices.get("storage_gb_month", "standard")
        for name, gb, scope, basis in stored:
            quantity = gb * months
            lines.append(Line(f"storage: {name}", scope, quantity, "GB-months", storage.price,
                              quantity * storage.price, storage.key, f"{gb:.4g} GB for {months:g} month(s); {basis}"))
        assumptions.append(f"data stay in a Standard-class bucket in {prices.region} for {months:g} month(s)")
    if input_per_subject is None:
        not_priced.append("storage of the inputs: pass --bids-dir to measure them")
    if output_per_subject is None:
        not_priced.append("storage of the outputs" + (" and their download" if download_results else "")
                          + ": pass the RESULTS of a measured run")
    if download_results and output_per_subject is not None:
        egress = prices.get("egress_gb", "internet")
        for name, gb, scope, basis in (row for row in stored if row[0].startswith("outputs")):
            lines.append(Line(f"download: {name}", scope, gb, "GB", egress.price, gb * egress.price, egress.key,
                              f"{basis}, downloaded once to a computer outside Google Cloud"))
        assumptions.append("results are downloaded once, to a computer outside Google Cloud (first egress tier)")
    elif not download_results:
        assumptions.append("results are not downloaded (read in the cloud, e.g. a notebook in the same region, "
                           "or shared by Neuroglancer links): no egress")

    assumptions += [
        "every job is its own Google Batch VM, billed per second with a 1-minute minimum "
        "(https://cloud.google.com/compute/vm-instance-pricing)",
        (f"VM start-up (boot, image pull, staging) adds {startup_minutes:g} min per job" if startup_minutes else
         "VM start-up (boot, image pull, staging) is not measured and counted as 0: add it with --startup-minutes"),
        "VM shapes as the gcp profile chooses them: the smallest N2 shape for the job's threads and memory, "
        "the profile's set-resources for training (n1-standard-8 + 1 T4)",
        ("Spot prices: a preempted job is re-run (up to 3 times by the profile); the re-runs are not priced in"
         if spot else "on-demand prices: no preemption"),
        "study-level jobs (fusion_combine_glm, fusion_train_model, group report) are priced at the measured "
        "size; their run time grows with the number of subjects",
    ]
    per_subject = sum(line.cost for line in lines if line.scope == "per subject")
    once = sum(line.cost for line in lines if line.scope == "once")
    return CostEstimate(
        subjects=subjects, region=prices.region, currency=prices.currency,
        pricing="Spot" if spot else "on-demand", source=source, lines=lines, per_subject=per_subject, once=once,
        total=subjects * per_subject + once,
        prices=[asdict(p) for p in sorted(prices.used.values(), key=lambda p: p.key)],
        assumptions=assumptions, not_priced=not_priced)
