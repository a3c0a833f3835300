"""``neurofuse assess``: where should this dataset be processed — laptop, HPC or cloud?

The evaluation matrix follows the dimensions Barch, Posey Norris & Martone (2021,
NAM Perspectives) ask researchers to weigh before moving to the cloud: researcher
skills, data size, privacy, institutional support — plus the budget. What can be
measured is measured on the dataset itself: files and bytes (a walk of the folder),
subjects, sessions and modalities (BIDS names), and the privacy scan's findings. What
cannot be measured is asked (command-line flags). Each dimension gets a rating and the
setting it favours; the recommendation follows fixed rules (:func:`recommend`) and
lists its reasons. The IRB checklist is filled in from the same facts, so that the
ethics application states what the tool checked, not what it promises.

The checklist is ours: the items cover what the issue asks the tool to make concrete
(encryption by default, no local downloads, access through IAM, de-identification,
bringing the workflow to the IRB early); we did not have the text of the paper's Box 1
to quote.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from neurofuse.errors import NeuroFuseError
from neurofuse.privacy.report import ScanReport
from neurofuse.privacy.scan import list_files, scan_dataset, subject_of

SKILLS = ("novice", "scripting", "hpc", "cloud")
SUPPORT = ("none", "hpc", "cloud")
#: Data-size thresholds (GB): below SMALL a laptop copes; above LARGE downloads are impractical.
SMALL_GB, LARGE_GB = 50.0, 2000.0
REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Dimension:
    name: str
    value: str
    rating: str
    favours: str  # local | hpc | cloud | any
    basis: str  # measured | answered


@dataclass
class Assessment:
    dataset: str
    facts: dict[str, Any]
    dimensions: list[Dimension]
    recommendation: str
    profile: str
    reasons: list[str]
    checklist: list[tuple[bool, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checklist"] = [{"done": done, "item": item} for done, item in self.checklist]
        return data

    def markdown(self) -> str:
        lines = [f"# Where to process `{self.dataset}`", "", "## Evaluation matrix", "",
                 "| dimension | value | rating | favours | basis |", "|---|---|---|---|---|"]
        lines += [f"| {d.name} | {d.value} | {d.rating} | {d.favours} | {d.basis} |" for d in self.dimensions]
        lines += ["", f"## Recommendation: {self.recommendation} (`{self.profile}`)", ""]
        lines += [f"- {reason}" for reason in self.reasons]
        lines += ["", "## Checklist for the ethics application (IRB)", ""]
        lines += [f"- [{'x' if done else ' '}] {item}" for done, item in self.checklist]
        return "\n".join(lines) + "\n"

    def text(self) -> str:
        rows = [("dimension", "value", "rating", "favours", "basis")]
        rows += [(d.name, d.value, d.rating, d.favours, d.basis) for d in self.dimensions]
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        table = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        table.insert(1, "  ".join("-" * w for w in widths))
        out = table + ["", f"recommendation: {self.recommendation} ({self.profile})"]
        out += [f"  - {reason}" for reason in self.reasons]
        out += ["", "IRB checklist:"] + [f"  [{'x' if done else ' '}] {item}" for done, item in self.checklist]
        return "\n".join(out)


def measure(root: Path) -> dict[str, Any]:
    """Files, bytes, subjects, sessions, datatypes and runs per datatype of a BIDS folder."""
    files = list_files(root)
    size = 0
    for rel in files:
        try:
            size += os.stat(root / rel).st_size
        except OSError:
            continue
    raw = [rel for rel in files if not rel.startswith(("derivatives/", "sourcedata/", "code/"))]
    subjects = {subject_of(rel) for rel in raw} - {None}
    sessions = {(subject_of(rel), part) for rel in raw for part in rel.split("/") if part.startswith("ses-")}
    datatypes = Counter(rel.split("/")[-2] for rel in raw if subject_of(rel) and rel.count("/") >= 2
                        and rel.endswith((".nii.gz", ".nii", ".vhdr", ".edf", ".bdf", ".set", ".fif")))
    return {"files": len(files), "gigabytes": round(size / 1e9, 3), "subjects": len(subjects),
            "sessions": len(sessions), "datatypes": dict(sorted(datatypes.items()))}


def _privacy_dimension(report: ScanReport) -> Dimension:
    counts = report.counts()
    value = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings"
    if counts["high"]:
        return Dimension("privacy", value, "identifiable", "local", "measured")
    if counts["medium"] or counts["low"]:
        return Dimension("privacy", value, "quasi-identifiers (de-identify first)", "any", "measured")
    return Dimension("privacy", value, "de-identified", "any", "measured")


def recommend(facts: dict[str, Any], privacy: Dimension, skills: str, support: str,
              budget: float | None) -> tuple[str, str, list[str]]:
    """(setting, profile, reasons) from the matrix; the rules are spelled out in the reasons."""
    reasons = []
    gb = facts["gigabytes"]
    cloud_ok = support == "cloud" and skills in ("scripting", "cloud") and (budget or 0) > 0
    if privacy.rating == "identifiable" and support != "cloud":
        reasons.append("identifying data were found and no cloud agreement covers them: keep the data on "
                       "institutional machines (the privacy gate would stop a cloud run)")
        cloud_ok = False
    elif privacy.rating == "identifiable":
        reasons.append("identifying data were found: the cloud agreement must cover them, or run neurofuse "
                       "deidentify first (until then the privacy gate stops a cloud run)")
    if gb > LARGE_GB:
        reasons.append(f"{gb:.0f} GB is more than a download should move ({LARGE_GB:.0f} GB): process "
                       "where the data are stored")
    if cloud_ok and (gb > LARGE_GB or facts["subjects"] > 100):
        reasons.append("the institution supports the cloud, the team can script, and there is a budget")
        return "cloud", "profiles/gcp", reasons
    if support == "hpc" or (support == "cloud" and not cloud_ok and skills == "hpc"):
        reasons.append("an HPC cluster is available: one job per run, no cloud costs")
        return "HPC", "profiles/slurm", reasons
    if cloud_ok:
        reasons.append("the cloud is supported, but the dataset is small enough for one machine: "
                       "use the cloud only if no local machine is free")
    if gb > SMALL_GB:
        reasons.append(f"{gb:.0f} GB on one machine needs a workstation with that much free disk")
    reasons.append("a local run needs no agreement, no account and no budget")
    return "local", "profiles/local", reasons


def read_cost_estimate(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON of ``neurofuse cost --format json`` (total, subjects, currency, pricing)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return {"total": float(data["total"]), "subjects": int(data["subjects"]), "currency": str(data["currency"]),
                "pricing": str(data["pricing"]), "region": str(data["region"])}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise NeuroFuseError(f"cannot read the cost estimate ({err.__class__.__name__})", path,
                             "write it with neurofuse cost [RESULTS] --subjects N --format json --out FILE") from None


def _budget_dimension(budget: float | None, estimate: dict[str, Any] | None) -> Dimension:
    value = "not given" if budget is None else f"{budget:g} USD"
    rating = "none" if not budget else "available"
    if estimate is not None:
        value += (f"; Google Cloud estimate {estimate['total']:.2f} {estimate['currency']} for "
                  f"{estimate['subjects']} subjects ({estimate['pricing']}, {estimate['region']})")
        if budget:
            rating = "covers the estimate" if budget >= estimate["total"] else "below the estimate"
    return Dimension("budget", value, rating, "local" if not budget else "any", "answered")


def assess(bids_dir: str | os.PathLike, *, skills: str, support: str, budget: float | None,
           scan_report: str | None = None, cost_estimate: str | os.PathLike | None = None) -> Assessment:
    root = Path(bids_dir)
    if not root.is_dir():
        raise NeuroFuseError("not a folder", root, "give the BIDS dataset's root folder")
    facts = measure(root)
    if scan_report:
        try:
            report = ScanReport.from_dict(json.loads(Path(scan_report).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise NeuroFuseError(f"cannot read the privacy-check report ({err.__class__.__name__})", scan_report,
                                 "write it with neurofuse privacy-check BIDS_DIR --json FILE") from None
    else:
        report = scan_dataset(root)
    privacy = _privacy_dimension(report)
    gb = facts["gigabytes"]
    size_rating = "small" if gb < SMALL_GB else "large" if gb > LARGE_GB else "medium"
    dims = [
        Dimension("data size", f"{gb:.2f} GB in {facts['files']} files", size_rating,
                  {"small": "local", "medium": "hpc", "large": "cloud"}[size_rating], "measured"),
        Dimension("subjects", f"{facts['subjects']} subjects, {facts['sessions']} sessions, "
                  + ", ".join(f"{k} {v}" for k, v in facts["datatypes"].items()),
                  "many" if facts["subjects"] > 100 else "few", "hpc" if facts["subjects"] > 100 else "local",
                  "measured"),
        privacy,
        Dimension("researcher skills", skills, skills, {"novice": "local", "scripting": "any", "hpc": "hpc",
                                                        "cloud": "cloud"}[skills], "answered"),
        Dimension("institutional support", support, support, {"none": "local", "hpc": "hpc", "cloud": "cloud"}[support],
                  "answered"),
        _budget_dimension(budget, estimate := read_cost_estimate(cost_estimate) if cost_estimate else None),
    ]
    setting, profile, reasons = recommend(facts, privacy, skills, support, budget)
    if estimate is not None and budget and budget < estimate["total"]:
        reasons.append(f"the budget ({budget:g} USD) is below the Google Cloud estimate "
                       f"({estimate['total']:.2f} {estimate['currency']}, neurofuse cost): a cloud run needs more "
                       "money, fewer subjects, or Spot prices")
    if not (REPO_ROOT / profile).is_dir():
        profile += " (not in this checkout yet)"
    return Assessment(str(root), {**facts, "privacy_counts": report.counts(), "scan_sampled": report.sampled},
                      dims, setting, profile, reasons, checklist(report, setting))


def checklist(report: ScanReport, setting: str) -> list[tuple[bool, str]]:
    """Items for the ethics application, ticked where the tool has established them."""
    counts = report.counts()
    clean = not report.findings
    faces = sum(1 for f in report.findings if f.field == "(face)")
    items = [
        (clean, "identifying data: neurofuse privacy-check found none" if clean else
         f"identifying data: {sum(counts.values())} findings ({counts['high']} high) — run neurofuse deidentify "
         "and check again, or state in the application why identifiable data are processed"),
        (faces == 0, "anatomical images are defaced (no face found)" if faces == 0 else
         f"{faces} anatomical images show a face: deface them (pydeface, mri_deface) before any transfer"),
        (not report.sampled, "the privacy check covered every file" if not report.sampled else
         "the privacy check was SAMPLED: run it on every file before submitting"),
        (counts["medium"] == 0, "no unshifted dates, ages of 89+ or serial numbers (neurofuse deidentify shifts "
         "dates per subject by a secret offset, kept apart from the shared copy)" if counts["medium"] == 0 else
         f"{counts['medium']} dates, ages or serial numbers remain: neurofuse deidentify shifts dates per subject"),
        (True, "every output is traceable: results/neurofuse/provenance.json, neurofuse audit"),
        (True, "the privacy gate stops any run that would send identifiable data off this machine, and records "
               "any decision to allow it (results/neurofuse/privacy_gate.json)"),
    ]
    if setting == "cloud":
        items += [
            (False, "data agreement with the cloud provider covers this data (BAA for HIPAA, DPA for GDPR)"),
            (False, "buckets encrypted with a customer-managed key (CMEK) in an approved region"),
            (False, "access through IAM only: collaborators get read access to results, not to raw data"),
            (False, "no local downloads of raw data; results shared by signed links or IAM, not copies"),
            (False, "retention and deletion dates for the buckets, and who deletes them"),
        ]
    items += [
        (False, "the consent form covers the processing location (local, HPC or cloud) and any sharing"),
        (False, "a named person is responsible for the data and for reporting a breach"),
    ]
    return items
