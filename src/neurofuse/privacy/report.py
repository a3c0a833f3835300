"""Findings of a privacy scan and the report that holds them (table, JSON, exit code)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from neurofuse.privacy.text import SEVERITIES, severity_rank

REPORT_FORMAT = "neurofuse-privacy-scan/1"


@dataclass(frozen=True)
class Finding:
    """One identifying item: where it is, how bad, what it is (masked) and what to do."""

    file: str  # path relative to the dataset root, POSIX separators
    field: str  # header field, sidecar key, column, "(face)", "(file)" ...
    severity: str  # low | medium | high
    found: str  # what was found; values are masked, dates reduced to years
    action: str  # what to do about it
    subject: str | None = None  # "01" for files under sub-01/, when known

    def sort_key(self) -> tuple:
        return (-severity_rank(self.severity), self.file, self.field)


@dataclass
class ScanReport:
    """All findings of one scan, plus what was (and was not) looked at."""

    root: str
    findings: list[Finding] = field(default_factory=list)
    files_total: int = 0
    files_checked: int = 0
    kinds: Counter = field(default_factory=Counter)  # files checked per kind (nifti, sidecar ...)
    sampled: bool = False
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def sorted(self) -> list[Finding]:
        return sorted(self.findings, key=Finding.sort_key)

    def at_least(self, severity: str) -> list[Finding]:
        """Findings of ``severity`` or worse."""
        rank = severity_rank(severity)
        return [f for f in self.sorted() if severity_rank(f.severity) >= rank]

    def counts(self) -> dict[str, int]:
        counts = Counter(f.severity for f in self.findings)
        return {severity: counts.get(severity, 0) for severity in reversed(SEVERITIES)}

    def files_with_findings(self) -> list[str]:
        return sorted({f.file for f in self.findings})

    def summary(self) -> str:
        counts = self.counts()
        coverage = f"{self.files_checked} of {self.files_total} files checked"
        if self.sampled:
            coverage += " (SAMPLED: the rest were not checked)"
        if not self.findings:
            return f"privacy scan of {self.root}: nothing identifying found ({coverage}, {self.seconds:.2f} s)"
        by = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        return (f"privacy scan of {self.root}: {len(self.findings)} findings ({by}) in "
                f"{len(self.files_with_findings())} files ({coverage}, {self.seconds:.2f} s)")

    def table(self, findings: Iterable[Finding] | None = None, width: int = 60) -> str:
        """A plain-text table: file, field, severity, found, what to do."""
        rows = [("file", "field", "severity", "found", "what to do")]
        for f in self.sorted() if findings is None else findings:
            rows.append((f.file, f.field, f.severity, f.found, f.action))
        if len(rows) == 1:
            return ""
        cut = lambda text: text if len(text) <= width else text[: width - 3] + "..."
        cells = [[str(row[0])] + [cut(str(c)) for c in row[1:]] for row in rows]  # file names in full
        widths = [max(len(row[i]) for row in cells) for i in range(len(rows[0]) - 1)]
        lines = []
        for row in cells:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
        lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 10)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "root": self.root,
            "counts": self.counts(),
            "files_total": self.files_total,
            "files_checked": self.files_checked,
            "files_by_kind": dict(sorted(self.kinds.items())),
            "sampled": self.sampled,
            "notes": list(self.notes),
            "seconds": round(self.seconds, 3),
            "findings": [asdict(f) for f in self.sorted()],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScanReport:
        report = cls(root=data["root"], files_total=data["files_total"], files_checked=data["files_checked"],
                     kinds=Counter(data.get("files_by_kind", {})), sampled=data.get("sampled", False),
                     notes=list(data.get("notes", [])), seconds=data.get("seconds", 0.0))
        report.findings = [Finding(**f) for f in data["findings"]]
        return report
