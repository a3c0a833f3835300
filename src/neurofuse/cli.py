"""The ``neurofuse`` command.

    neurofuse simulate OUT [--small] [--coupling ...] ... write a ground-truth EEG-fMRI BIDS dataset
    neurofuse index BIDS_DIR [--json FILE] ...           index a dataset and print what was found
    neurofuse audit RESULTS [--json] [--rerun] ...        check outputs against the provenance manifest
    neurofuse methods [--config FILE] [--index FILE] ...  the methods text (and CITATION.md) of a config
    neurofuse crate RESULTS [--zip OUT] ...               (re)build the Workflow Run RO-Crate of a run
    neurofuse privacy-check BIDS_DIR / deidentify ...    identifying data (neurofuse.privacy.cli)
    neurofuse upload BIDS_DIR gs://BUCKET/PATH [--dry-run] [--force]   upload a dataset, checksums verified
    neurofuse profiles install [NAME ...] [--force]       put the cluster/cloud profiles where Snakemake finds them
    neurofuse benchmarks RESULTS [--json]                 time and memory per rule and per subject
    neurofuse serve RESULTS [--port 9000]                 serve local outputs to the report's Neuroglancer links
    neurofuse cost [RESULTS] --subjects N [--spot|--on-demand] ...   Google Cloud cost per subject and in total
    neurofuse prices --region R --out FILE   VM/GPU prices of a region from the Cloud Billing Catalog API

Bad input ends with one line on stderr (file, problem, what to do) and exit code 2.
``audit`` exits 0 when every output matches its manifest (and, with ``--rerun``, the
re-run reproduces them), 1 when not.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from neurofuse import __version__
from neurofuse.config import validate_config
from neurofuse.errors import NeuroFuseError


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _cmd_simulate(args: argparse.Namespace) -> int:
    from neurofuse.simulate import simulate_dataset

    summary = simulate_dataset(
        args.out,
        preset="small" if args.small else args.preset,
        n_subjects=args.subjects,
        n_sessions=args.sessions,
        n_runs=args.runs,
        n_volumes=args.volumes,
        tr=args.tr,
        eeg_sfreq=args.eeg_sfreq,
        seed=args.seed,
        progress=not args.quiet,
        coupling=args.coupling,
    )
    print(summary)
    return 0


def _cmd_index(args: argparse.Namespace) -> int:
    from neurofuse.bids.index import build_index

    index = build_index(
        args.bids_dir,
        participant_label=tuple(args.participant_label),
        exclude_participant_label=tuple(args.exclude_participant_label),
        task=tuple(args.task),
        session=tuple(args.session),
        volume_marker=args.volume_marker,
        unpaired_eeg=args.unpaired_eeg,
        check_images=not args.no_check_images,
    )
    if args.json:
        index.to_json(args.json)
    n_bold = len(index.bold_runs())
    n_eeg = len(index.eeg_runs())
    n_pairs = len(index.paired_runs())
    print(
        f"{index.bids_dir}: {len(index.subjects)} subjects, {n_bold} BOLD runs, "
        f"{n_eeg} EEG runs, {n_pairs} EEG-BOLD pairs"
    )
    for message in index.warnings:
        print(f"warning: {message}", file=sys.stderr)
    return 0


def _cmd_audit(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from neurofuse.provenance.audit import audit_results

    report = audit_results(args.results, manifest_file=args.manifest)
    document = {"audit": report.to_dict()}
    passed = report.ok
    if args.json is None:
        table = report.table(problems_only=args.problems_only)
        if table:
            print(table)
        if report.dataset_problem:
            print(f"dataset: {report.dataset_problem}")
        print(report.summary())
    if args.rerun:
        from neurofuse.provenance.rerun import rerun_and_compare

        scratch = args.scratch or tempfile.mkdtemp(prefix="neurofuse-rerun-")
        print(f"re-running the recorded workflow into {scratch} (Snakemake log: {scratch}/rerun.log) ...",
              file=sys.stderr)
        rerun = rerun_and_compare(args.results, scratch, manifest_file=args.manifest, snakefile=args.snakefile,
                                  cores=args.cores, rtol=args.rtol, atol=args.atol)
        document["rerun"] = rerun.to_dict(strict=args.strict)
        passed = passed and rerun.passed(strict=args.strict)
        if args.json is None:
            table = rerun.table(problems_only=args.problems_only)
            if table:
                print(table)
            for note in rerun.context:
                print(f"note: {note}")
            print(rerun.summary(strict=args.strict))
    if args.json is not None:
        document["passed"] = passed
        text = json.dumps(document, indent=2, sort_keys=True)
        if args.json == "-":
            print(text)
        else:
            from neurofuse.io import atomic_write_text

            atomic_write_text(args.json, text + "\n")
            print(report.summary())
    return 0 if passed else 1


def _cmd_methods(args: argparse.Namespace) -> int:
    from pathlib import Path

    from neurofuse.config import load_config
    from neurofuse.io import atomic_write_text
    from neurofuse.report.methods import DatasetFacts, build_methods
    from neurofuse.workflow import index_file

    config = load_config(args.config)
    index = args.index or index_file(config["output_dir"])
    if args.index or Path(index).is_file():
        facts = DatasetFacts.from_index_file(index)
    else:
        facts = None
        print(f"no dataset index at {index}: describing every stage the config can run "
              "(run `snakemake -n` or give --index for the text of one dataset)", file=sys.stderr)
    methods = build_methods(config, facts)
    if args.output:
        atomic_write_text(args.output, methods.markdown())
    else:
        print(methods.markdown(), end="")
    if args.citation:
        atomic_write_text(args.citation, methods.citation_markdown())
    return 0


def _cmd_crate(args: argparse.Namespace) -> int:
    from neurofuse.provenance.crate import write_crate

    agent = {"name": args.agent_name, "id": args.agent_id} if args.agent_name else None
    path = write_crate(args.results, manifest_file=args.manifest, zip_path=args.zip, agent=agent)
    print(f"RO-Crate metadata: {path}" + (f"; crate packed into {args.zip}" if args.zip else ""))
    return 0


def _cmd_upload(args: argparse.Namespace) -> int:
    from neurofuse.upload import plan_upload, run_upload, upload_report

    plan = plan_upload(args.bids_dir, args.target)
    print(plan.summary())
    if args.dry_run:
        for label, items in (("upload", plan.new), ("differs", plan.conflicts)):
            for item in items:
                print(f"  {label:8} {item.rel} ({item.size} bytes)")
        print("dry run: nothing was uploaded")
        return 0
    result = run_upload(plan, force=args.force, jobs=args.jobs, progress=not args.quiet)
    print(upload_report(plan, result))
    return 130 if result.interrupted else 0


def _cmd_profiles(args: argparse.Namespace) -> int:
    from neurofuse.profiles import install_profiles

    for line in install_profiles(args.names, dest=args.dest, force=args.force):
        print(line)
    return 0


def _cmd_benchmarks(args: argparse.Namespace) -> int:
    from neurofuse.resources import format_benchmarks, read_benchmarks, summarize_benchmarks

    summary = summarize_benchmarks(read_benchmarks(args.results))
    if args.json:
        import json

        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print(format_benchmarks(summary))
    return 0


def _cmd_cost(args: argparse.Namespace) -> int:
    from neurofuse.cost import estimate_cost, load_prices

    estimate = estimate_cost(
        subjects=args.subjects, results=args.results, bids_dir=args.bids_dir, preset=args.preset,
        runs_per_subject=args.runs_per_subject, spot=args.spot, download_results=args.download_results,
        months=args.months, startup_minutes=args.startup_minutes, prices=load_prices(args.prices, args.region))
    text = {"text": estimate.text, "markdown": estimate.markdown, "json": estimate.to_json}[args.format]()
    if args.out:
        from neurofuse.io import atomic_write_text

        atomic_write_text(args.out, text)
        print(f"wrote {args.out}: total {estimate.total:.2f} {estimate.currency} for {estimate.subjects} subject(s)")
    else:
        print(text, end="")
    return 0


def _cmd_prices(args: argparse.Namespace) -> int:
    import os

    import yaml

    from neurofuse.cost import DEFAULT_PRICES
    from neurofuse.prices import CATALOG_URL, fetch_skus, price_table_from_skus, write_price_table

    key = args.api_key or os.environ.get("NEUROFUSE_BILLING_API_KEY")
    if not key:
        raise NeuroFuseError("the Cloud Billing Catalog needs an API key",
                             hint="create one (Cloud Console -> APIs & Services -> Credentials, Cloud Billing API "
                                  "enabled) and pass --api-key or set NEUROFUSE_BILLING_API_KEY")
    base_path = args.base or DEFAULT_PRICES
    try:
        with open(base_path, encoding="utf-8") as fh:
            base = yaml.safe_load(fh) or {}
    except (OSError, yaml.YAMLError) as err:
        raise NeuroFuseError(f"cannot read the base price table ({type(err).__name__})", base_path,
                             "pass --base with a table like config/gcp_prices.yaml") from None
    url = os.environ.get("NEUROFUSE_BILLING_CATALOG_URL", CATALOG_URL)
    table = price_table_from_skus(fetch_skus(key, base_url=url), args.region, base)
    write_price_table(args.out, table, args.region)
    prices = table["regions"][args.region]
    print(f"wrote {args.out}: {len(prices['machine_hour']['on_demand'])} VM shapes and 1 GPU, on demand and Spot, "
          f"for {args.region} (e.g. n2-highmem-2 {prices['machine_hour']['spot']['n2-highmem-2']['price']:.4f} USD/h "
          f"Spot); use it with: neurofuse cost --prices {args.out}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from neurofuse.report.neuroglancer import serve

    serve(args.results, args.port)
    return 0


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neurofuse", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"neurofuse {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="write a simulated EEG-fMRI BIDS dataset with ground truth")
    sim.add_argument("out", help="output folder (created; must be empty or a previous simulation)")
    sim.add_argument("--preset", choices=("demo", "small"), default="demo", help="size preset (default: demo)")
    sim.add_argument("--small", action="store_true", help="shorthand for --preset small (seconds, for tests)")
    sim.add_argument("--subjects", type=_positive_int, help="number of subjects")
    sim.add_argument("--sessions", type=_positive_int, help="sessions per subject")
    sim.add_argument("--runs", type=_positive_int, help="runs per session")
    sim.add_argument("--volumes", type=_positive_int, help="BOLD volumes per run")
    sim.add_argument("--tr", type=_positive_float, help="repetition time in seconds")
    sim.add_argument("--eeg-sfreq", type=_positive_float, help="EEG sampling rate in Hz")
    sim.add_argument("--seed", type=int, default=42, help="random seed (same seed, same bytes)")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.add_argument("--coupling", action="append", metavar="BAND:STRENGTH:X,Y,Z:RADIUS",
                     help="coupled region sphere (repeatable; replaces the default alpha/beta layout), "
                          "e.g. theta:0.03:0,40,20:22")
    sim.set_defaults(func=_cmd_simulate)

    defaults = validate_config({})
    idx = sub.add_parser("index", help="index a BIDS dataset and check it")
    idx.add_argument("bids_dir")
    idx.add_argument("--json", help="write the index to this JSON file")
    idx.add_argument("--participant-label", nargs="*", default=[])
    idx.add_argument("--exclude-participant-label", nargs="*", default=[])
    idx.add_argument("--task", nargs="*", default=[])
    idx.add_argument("--session", nargs="*", default=[])
    idx.add_argument("--volume-marker", default=defaults["eeg"]["volume_marker"])
    idx.add_argument("--unpaired-eeg", choices=("warn", "error"), default=defaults["pairing"]["unpaired_eeg"])
    idx.add_argument("--no-check-images", action="store_true", help="do not read NIfTI headers")
    idx.set_defaults(func=_cmd_index)

    from neurofuse.provenance.compare import DEFAULT_ATOL, DEFAULT_RTOL

    aud = sub.add_parser("audit", help="check a results folder against its provenance manifest")
    aud.add_argument("results", help="the workflow's output folder (config output_dir)")
    aud.add_argument("--manifest", help="manifest file (default: RESULTS/neurofuse/provenance.json)")
    aud.add_argument("--json", nargs="?", const="-", metavar="FILE",
                     help="write the report as JSON to FILE (or to stdout without FILE)")
    aud.add_argument("--problems-only", action="store_true", help="leave matching (and, with --rerun, bit-identical) files out of the tables")
    aud.add_argument("--rerun", action="store_true",
                     help="re-execute the recorded run into a scratch folder and compare every output")
    aud.add_argument("--scratch", help="empty folder for --rerun (default: a new temporary folder, kept)")
    aud.add_argument("--snakefile", help="Snakefile for --rerun (default: the recorded workflow's)")
    aud.add_argument("--cores", type=_positive_int, default=1, help="cores for --rerun (default: 1)")
    aud.add_argument("--rtol", type=float, default=DEFAULT_RTOL, help=f"relative tolerance (default {DEFAULT_RTOL:g})")
    aud.add_argument("--atol", type=float, default=DEFAULT_ATOL, help=f"absolute tolerance (default {DEFAULT_ATOL:g})")
    aud.add_argument("--strict", action="store_true", help="with --rerun: pass only if every output is bit-identical")
    aud.set_defaults(func=_cmd_audit)

    met = sub.add_parser("methods", help="print the methods text of a config (and write CITATION.md)")
    met.add_argument("--config", help="config YAML (default: config/config.yaml), validated and completed")
    met.add_argument("--index", help="dataset index JSON (default: OUTPUT_DIR/neurofuse/dataset_index.json if there)")
    met.add_argument("--output", help="write the Markdown to this file instead of printing it")
    met.add_argument("--citation", help="also write CITATION.md (software versions, references, BibTeX) here")
    met.set_defaults(func=_cmd_methods)

    cra = sub.add_parser("crate", help="(re)build the Workflow Run RO-Crate of a finished results folder")
    cra.add_argument("results", help="the workflow's output folder (config output_dir)")
    cra.add_argument("--manifest", help="manifest file (default: RESULTS/neurofuse/provenance.json)")
    cra.add_argument("--zip", help="also pack the crate (metadata, workflow copy, every output) into this zip file")
    cra.add_argument("--agent-name", help="the person who ran the workflow (the crate's agent)")
    cra.add_argument("--agent-id", help="their ORCID URL, e.g. https://orcid.org/0000-0002-1825-0097")
    cra.set_defaults(func=_cmd_crate)

    from neurofuse.privacy.cli import register as register_privacy

    register_privacy(sub)

    upl = sub.add_parser("upload", help="upload a BIDS dataset to a gs:// bucket, checksums verified, resumable")
    upl.add_argument("bids_dir")
    upl.add_argument("target", help="gs://BUCKET/PATH (the dataset root in the bucket)")
    upl.add_argument("--dry-run", action="store_true", help="print what would be uploaded; upload nothing")
    upl.add_argument("--force", action="store_true", help="overwrite objects that differ from the local files")
    upl.add_argument("--jobs", type=_positive_int, default=8, help="parallel uploads (default 8)")
    upl.add_argument("--quiet", action="store_true", help="no progress bar")
    upl.set_defaults(func=_cmd_upload)

    prof = sub.add_parser("profiles", help="install the Snakemake profiles (slurm, kubernetes, gcp)")
    prof_sub = prof.add_subparsers(dest="action", required=True)
    inst = prof_sub.add_parser("install", help="copy profiles to Snakemake's user profile folder")
    inst.add_argument("names", nargs="*", help="profiles to install (default: all of profiles/)")
    inst.add_argument("--dest", help="folder to install into (default: Snakemake's user config folder)")
    inst.add_argument("--force", action="store_true", help="replace an installed profile that differs")
    inst.set_defaults(func=_cmd_profiles)

    ben = sub.add_parser("benchmarks", help="time and memory per rule and per subject from a run's benchmark files")
    ben.add_argument("results", help="the workflow's output folder (config output_dir)")
    ben.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ben.set_defaults(func=_cmd_benchmarks)

    srv = sub.add_parser("serve", help="serve a local output folder (with CORS) to the group report's Neuroglancer links")
    srv.add_argument("results", help="the workflow's output folder (config output_dir)")
    srv.add_argument("--port", type=int, default=9000, help="port on 127.0.0.1 (default 9000, as in the report's links)")
    srv.set_defaults(func=_cmd_serve)

    cost = sub.add_parser("cost", help="Google Cloud cost of a study, per subject and in total, from measured job "
                                       "times and a price table with sources")
    cost.add_argument("results", nargs="?", help="output folder of a measured run (its benchmarks/ and output sizes); "
                                                 "without it: the per-rule measurements of workflow/resources.yaml")
    cost.add_argument("--subjects", type=_positive_int, required=True, help="number of subjects to budget for")
    cost.add_argument("--bids-dir", help="the dataset: its size per subject prices the input storage")
    cost.add_argument("--preset", choices=("small", "demo"), default="demo",
                      help="resources.yaml preset for rules without measured times (default demo)")
    cost.add_argument("--runs-per-subject", type=_positive_float, default=1.0,
                      help="EEG-fMRI runs per subject, for rules priced from resources.yaml (default 1)")
    pricing = cost.add_mutually_exclusive_group()
    pricing.add_argument("--spot", dest="spot", action="store_true", default=True,
                         help="Spot prices, as the gcp profile runs every rule (default)")
    pricing.add_argument("--on-demand", dest="spot", action="store_false", help="on-demand prices")
    cost.add_argument("--download-results", action="store_true", help="price downloading the outputs once (egress)")
    cost.add_argument("--months", type=_non_negative_float, default=1.0, help="months the data stay in the bucket (default 1)")
    cost.add_argument("--startup-minutes", type=_non_negative_float, default=0.0,
                      help="VM start-up time billed per job, minutes (default 0: not measured)")
    cost.add_argument("--prices", help="price table (default config/gcp_prices.yaml)")
    cost.add_argument("--region", help="region of the price table to use (default: the table's default_region)")
    cost.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    cost.add_argument("--out", help="write to this file (e.g. for a budget request)")
    cost.set_defaults(func=_cmd_cost)

    prc = sub.add_parser("prices", help="write a price table for 'neurofuse cost' with the VM and GPU prices of a "
                                        "region read from Google's Cloud Billing Catalog API")
    prc.add_argument("--region", default="us-central1", help="Compute Engine region (default us-central1)")
    prc.add_argument("--api-key", help="API key for the Cloud Billing API (or NEUROFUSE_BILLING_API_KEY); never "
                                       "written anywhere")
    prc.add_argument("--base", help="table to copy storage and egress prices from (default config/gcp_prices.yaml)")
    prc.add_argument("--out", required=True, help="price table to write (YAML)")
    prc.set_defaults(func=_cmd_prices)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NeuroFuseError as err:
        print(f"neurofuse: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurofuse: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
