"""The privacy gate: no data leaves this machine while the scan finds identifying data.

The Snakefile calls :func:`run_gate` in the main process right after the dataset index
(``workflow/rules/privacy.smk``), i.e. before the DAG runs a single job, and again
from ``onstart`` once the executor is known. A rule could not do this job: Snakemake
may schedule other jobs beside it, and under a cloud executor the rule itself would
run on a cloud VM, after the data had been shipped there.

When does data leave the machine (``privacy.gate: auto``)? When ``bids_dir`` or
``output_dir`` is a URL (``gs://``, ``s3://`` ...), when Snakemake has a default
storage provider (``--default-storage-provider gcs``, as the cloud profiles set), or
when the executor runs jobs on someone else's machines (:data:`CLOUD_EXECUTORS`).
``always`` gates every run, ``never`` none (the decision still records that).

When the gate applies, the dataset is scanned (:func:`~neurofuse.privacy.scan.scan_dataset`).
A dataset already in a bucket cannot be scanned from here: then ``privacy.scan_report``
must name the JSON that ``neurofuse privacy-check --json`` wrote where the data was.
Findings at or above ``privacy.fail_on`` stop the run, unless the config records an
explicit decision: ``privacy.allow_identifiable: true`` *and* a ``privacy.reason``.

The decision — mode, why the gate applied, the scan's counts and findings (masked),
whether identifiable data were allowed and why — is written to
``<output_dir>/neurofuse/privacy_gate.json`` (:func:`gate_file`) and copied into the
provenance manifest (``privacy`` key) at the end of the run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from neurofuse.errors import ConfigError, NeuroFuseError
from neurofuse.io import atomic_write_text
from neurofuse.privacy.report import ScanReport
from neurofuse.privacy.scan import scan_dataset
from neurofuse.provenance.hashing import sha256_file

GATE_NAME = "neurofuse/privacy_gate.json"
GATE_FORMAT = "neurofuse-privacy-gate/1"
#: Snakemake executors whose jobs run on machines outside the lab.
CLOUD_EXECUTORS = frozenset({"googlebatch", "kubernetes", "aws-batch", "azure-batch", "tes"})


def gate_file(output_dir: str) -> str:
    """Where the gate's decision is written (beside the dataset index)."""
    return str(Path(output_dir) / GATE_NAME)


def _is_url(path: str) -> bool:
    return "://" in str(path)


def leaving_reasons(config: Mapping[str, Any], *, storage_provider: str | None = None,
                    executor: str | None = None) -> list[str]:
    """Why data of this run would leave the machine ([] = it stays)."""
    reasons = [f"{key} is {config[key]}" for key in ("bids_dir", "output_dir") if _is_url(config[key])]
    if storage_provider and storage_provider not in ("fs", "local"):
        reasons.append(f"Snakemake's default storage provider is {storage_provider}")
    if executor and executor in CLOUD_EXECUTORS:
        reasons.append(f"the {executor} executor runs jobs on remote machines")
    return reasons


@dataclass
class GateDecision:
    mode: str
    applies: bool
    reasons: list[str]
    passed: bool
    fail_on: str
    allow_identifiable: bool
    reason: str
    scan_source: str | None = None  # "scanned <bids_dir>" or "report <path> (sha256 ...)"
    counts: dict[str, int] = field(default_factory=dict)
    blocking: int = 0
    findings: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"format": GATE_FORMAT, **asdict(self)}

    def summary(self) -> str:
        if not self.applies:
            why = "turned off (privacy.gate: never)" if self.mode == "never" else "no data leave this machine"
            return f"privacy gate: not applied ({why})"
        found = ", ".join(f"{n} {s}" for s, n in self.counts.items() if n) or "nothing"
        text = f"privacy gate ({'; '.join(self.reasons) or 'privacy.gate: always'}): scan found {found}"
        if self.blocking and self.allow_identifiable:
            return text + f"; identifiable data ALLOWED by the config: {self.reason}"
        return text + ("; passed" if self.passed else f"; {self.blocking} findings at or above {self.fail_on}: STOPPED")


def _check_config(privacy: Mapping[str, Any]) -> None:
    if privacy["allow_identifiable"] and not str(privacy["reason"]).strip():
        raise ConfigError("privacy.allow_identifiable is true but privacy.reason is empty",
                          hint="record why identifiable data may leave the machine (e.g. the IRB approval "
                               "and the data agreement), or set allow_identifiable to false")


def _scan(config: Mapping[str, Any], privacy: Mapping[str, Any]) -> tuple[ScanReport, str]:
    report_path = privacy["scan_report"]
    if report_path:
        try:
            data = json.loads(Path(report_path).read_text(encoding="utf-8"))
            report = ScanReport.from_dict(data)
        except FileNotFoundError:
            raise NeuroFuseError("the privacy scan report does not exist", report_path,
                                 "run neurofuse privacy-check BIDS_DIR --json FILE on the data and set "
                                 "privacy.scan_report to FILE") from None
        except (ValueError, KeyError, TypeError) as err:
            raise NeuroFuseError(f"not a privacy-check JSON report ({err.__class__.__name__})", report_path,
                                 "write it with neurofuse privacy-check BIDS_DIR --json FILE") from None
        return report, f"report {report_path} (sha256 {sha256_file(report_path)[:16]}, of {report.root})"
    if _is_url(config["bids_dir"]):
        raise NeuroFuseError(
            "the privacy gate cannot scan a dataset that is already in a bucket", config["bids_dir"],
            "scan the local copy with neurofuse privacy-check DIR --json scan.json and set "
            "privacy.scan_report: scan.json (or run on a de-identified copy)")
    return scan_dataset(config["bids_dir"], faces=privacy["faces"]), f"scanned {config['bids_dir']}"


def decide(config: Mapping[str, Any], *, storage_provider: str | None = None,
           executor: str | None = None) -> GateDecision:
    """The gate's decision for a validated config (scans when the gate applies)."""
    privacy = config["privacy"]
    _check_config(privacy)
    mode = privacy["gate"]
    reasons = leaving_reasons(config, storage_provider=storage_provider, executor=executor)
    applies = mode == "always" or (mode == "auto" and bool(reasons))
    decision = GateDecision(mode=mode, applies=applies, reasons=reasons, passed=True, fail_on=privacy["fail_on"],
                            allow_identifiable=bool(privacy["allow_identifiable"]), reason=str(privacy["reason"]))
    if not applies:
        return decision
    report, decision.scan_source = _scan(config, privacy)
    blocking = report.at_least(privacy["fail_on"])
    decision.counts = report.counts()
    decision.blocking = len(blocking)
    decision.findings = report.to_dict()["findings"]
    decision.notes = list(report.notes)
    decision.passed = not blocking or decision.allow_identifiable
    return decision


def run_gate(config: Mapping[str, Any], path: str | os.PathLike, *, storage_provider: str | None = None,
             executor: str | None = None) -> GateDecision:
    """Decide, write the decision to ``path``, and raise :class:`NeuroFuseError` when the run must stop."""
    decision = decide(config, storage_provider=storage_provider, executor=executor)
    atomic_write_text(path, json.dumps(decision.to_dict(), indent=2, sort_keys=True) + "\n", only_if_changed=True)
    if not decision.passed:
        worst = decision.findings[0]
        raise NeuroFuseError(
            f"privacy gate: {decision.blocking} findings at or above '{decision.fail_on}' and data would leave "
            f"this machine ({'; '.join(decision.reasons) or 'privacy.gate: always'}); first: {worst['file']} "
            f"{worst['field']}: {worst['found']}",
            path,
            "run neurofuse privacy-check on bids_dir for the full list, then neurofuse deidentify BIDS_DIR OUT and "
            "use OUT, or record a decision in the config: privacy.allow_identifiable: true with privacy.reason",
        )
    return decision


def read_decision(output_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The recorded gate decision of a run (for the provenance manifest), or ``None``."""
    path = Path(output_dir) / GATE_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_findings_table(gate_path: str | os.PathLike, tsv: str | os.PathLike) -> None:
    """The recorded decision as a TSV: one comment line per fact, then one row per finding."""
    try:
        decision = json.loads(Path(gate_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise NeuroFuseError(f"cannot read the privacy gate's decision ({err.__class__.__name__})", gate_path,
                             "run Snakemake again from the main process (it writes the decision)") from None
    lines = [f"# privacy gate: mode {decision['mode']}, applied {decision['applies']}, passed {decision['passed']}"]
    if decision["reasons"]:
        lines.append(f"# data leave this machine: {'; '.join(decision['reasons'])}")
    if decision["allow_identifiable"]:
        lines.append(f"# identifiable data allowed: {decision['reason']}")
    lines += [f"# {note}" for note in decision.get("notes", [])]
    columns = ["file", "field", "severity", "found", "action"]
    lines.append("\t".join(columns))
    for finding in decision["findings"]:
        lines.append("\t".join(str(finding[c]).replace("\t", " ") for c in columns))
    atomic_write_text(tsv, "\n".join(lines) + "\n")
