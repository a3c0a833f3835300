"""The privacy subcommands of ``neurofuse`` (registered by :func:`register`).

    neurofuse privacy-check BIDS_DIR [--json [FILE]] [--fail-on low|medium|high] ...
    neurofuse deidentify BIDS_DIR OUT [--seed N] [--shifts FILE] [--hardlink]
    neurofuse assess BIDS_DIR --skills S --support S [--budget USD] [--cost-estimate FILE] [--format text|markdown|json]

``privacy-check`` exits 1 when it finds anything at or above ``--fail-on`` (default
``low``: anything), 0 when not; bad input exits 2 (``neurofuse.cli.main``).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator

from neurofuse.privacy.text import SEVERITIES


def _limit(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


@contextlib.contextmanager
def _progress(desc: str, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback drawing a tqdm bar (rate, ETA) on a terminal's stderr."""
    from tqdm import tqdm

    with tqdm(unit="file", desc=desc, file=sys.stderr, disable=quiet or not sys.stderr.isatty(), leave=False) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield progress


def _emit_json(target: str, text: str) -> None:
    if target == "-":
        sys.stdout.write(text)
    else:
        from neurofuse.io import atomic_write_text

        atomic_write_text(target, text)


def cmd_privacy_check(args: argparse.Namespace) -> int:
    from neurofuse.privacy.scan import scan_dataset

    with _progress("privacy-check", args.quiet) as progress:
        report = scan_dataset(args.bids_dir, faces=not args.no_faces, max_files=args.max_files,
                              max_face_images=args.max_face_images, seed=args.seed, progress=progress)
    failing = report.at_least(args.fail_on)
    if args.json is not None:
        _emit_json(args.json, report.to_json())
    if args.json != "-":
        table = report.table()
        if table:
            print(table)
        for note in report.notes:
            print(f"note: {note}")
        print(report.summary())
        if report.findings and not failing:
            print(f"nothing at or above --fail-on {args.fail_on}")
    return 1 if failing else 0


def cmd_deidentify(args: argparse.Namespace) -> int:
    from neurofuse.privacy.deidentify import deidentify_dataset

    with _progress("deidentify", args.quiet) as progress:
        result = deidentify_dataset(args.bids_dir, args.out, seed=args.seed, shifts_file=args.shifts,
                                    hardlink=args.hardlink, progress=progress)
    if args.json is not None:
        import json

        _emit_json(args.json, json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n")
    if args.json != "-":
        for rel, why in sorted(result.left_out.items()):
            print(f"left out: {rel}: {why}")
        if result.remaining is not None and result.remaining.findings:
            print(result.remaining.table())
        print(result.summary())
    return 0 if result.clean else 1


def cmd_assess(args: argparse.Namespace) -> int:
    from neurofuse.privacy.assess import assess

    result = assess(args.bids_dir, skills=args.skills, support=args.support, budget=args.budget,
                    scan_report=args.scan_report, cost_estimate=args.cost_estimate)
    if args.format == "json":
        import json

        text = json.dumps(result.to_dict(), indent=2, sort_keys=True) + "\n"
    else:
        text = result.markdown() if args.format == "markdown" else result.text() + "\n"
    if args.out:
        _emit_json(args.out, text)
        print(f"wrote {args.out}: {result.recommendation} ({result.profile})")
    else:
        sys.stdout.write(text)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``privacy-check`` (and ``deidentify``) to the ``neurofuse`` command."""
    chk = sub.add_parser("privacy-check", help="list identifying data in a BIDS dataset (exit 1 if any)")
    chk.add_argument("bids_dir")
    chk.add_argument("--json", nargs="?", const="-", metavar="FILE",
                     help="write the report as JSON to FILE (or to stdout without FILE)")
    chk.add_argument("--fail-on", choices=SEVERITIES, default="low",
                     help="exit 1 when a finding is at least this severe (default: low, i.e. anything)")
    chk.add_argument("--no-faces", action="store_true", help="skip the face check of anatomical images")
    chk.add_argument("--max-files", type=_limit, help="check a random sample of this many files (large datasets)")
    chk.add_argument("--max-face-images", type=_limit, help="face-check a random sample of this many images")
    chk.add_argument("--seed", type=int, default=0, help="seed of the samples (default 0)")
    chk.add_argument("--quiet", action="store_true", help="no progress bar")
    chk.set_defaults(func=cmd_privacy_check)

    dei = sub.add_parser("deidentify", help="write a de-identified copy of a BIDS dataset (exit 1 if the copy "
                                            "still has findings, e.g. faces)")
    dei.add_argument("bids_dir")
    dei.add_argument("out", help="new folder for the copy (must not exist or be empty)")
    dei.add_argument("--seed", type=int, help="seed of the per-subject date shifts (default: random, not reproducible)")
    dei.add_argument("--shifts", metavar="FILE", help="write each subject's date shift (days) here; keep it private")
    dei.add_argument("--hardlink", action="store_true",
                     help="hard-link unchanged files instead of copying (saves space; edits in place reach the input)")
    dei.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write what changed as JSON")
    dei.add_argument("--quiet", action="store_true", help="no progress bar")
    dei.set_defaults(func=cmd_deidentify)

    from neurofuse.privacy.assess import SKILLS, SUPPORT

    ass = sub.add_parser("assess", help="evaluation matrix (size, privacy, skills, support, budget): local, HPC "
                                        "or cloud, and an IRB checklist")
    ass.add_argument("bids_dir")
    ass.add_argument("--skills", choices=SKILLS, required=True, help="the team's computing skills")
    ass.add_argument("--support", choices=SUPPORT, required=True,
                     help="what the institution supports: none, an HPC cluster, a cloud agreement")
    ass.add_argument("--budget", type=float, help="money available for computing (USD); omit or 0 for none")
    ass.add_argument("--scan-report", help="use this privacy-check JSON instead of scanning again")
    ass.add_argument("--cost-estimate", metavar="FILE",
                     help="compare --budget with this estimate (neurofuse cost ... --format json --out FILE)")
    ass.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    ass.add_argument("--out", help="write to this file (e.g. for the ethics application)")
    ass.set_defaults(func=cmd_assess)
