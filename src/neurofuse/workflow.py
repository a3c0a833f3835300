"""What the Snakefile needs from the library: the dataset index and the targets.

The index is built once, by the main Snakemake process (including ``snakemake -n``),
and written to ``<output_dir>/neurofuse/dataset_index.json``. Jobs running elsewhere
(cluster, cloud: Snakemake's remote mode) re-parse the Snakefile but only *read* that
file, so a job never walks the dataset again (snakebids #256 is the failure this avoids).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neurofuse.bids.index import DatasetIndex, build_index
from neurofuse.errors import NeuroFuseError

INDEX_NAME = "neurofuse/dataset_index.json"


def index_file(output_dir: str) -> str:
    """Where the dataset index of a run lives."""
    return str(Path(output_dir) / INDEX_NAME)


def index_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``build_index`` keyword arguments that a validated config asks for."""
    return {
        "participant_label": tuple(config["participant_label"]),
        "exclude_participant_label": tuple(config["exclude_participant_label"]),
        "task": tuple(config["task"]),
        "session": tuple(config["session"]),
        "volume_marker": config["eeg"]["volume_marker"],
        "unpaired_eeg": config["pairing"]["unpaired_eeg"],
        "check_images": config["index"]["check_images"],
        # (a config validated against an older schema may lack these keys: the defaults)
        "eeg_recorded_in": config["eeg"]["recorded_in"] if "recorded_in" in config["eeg"] else "auto",
        "dummy_scans": int(config["eeg"]["dummy_scans"] if "dummy_scans" in config["eeg"] else 0),
        "volume_mismatch_tolerance": (config["eeg"]["volume_mismatch_tolerance"]
                                      if "volume_mismatch_tolerance" in config["eeg"] else None),
    }


def load_index(config: Mapping[str, Any], *, rebuild: bool, locations=None) -> DatasetIndex:
    """Build (main process) or read (a job) the index for a validated config.

    ``locations`` (:class:`neurofuse.cloud.RunLocations`): when the outputs are in a
    bucket, the index is built from the bucket and stored there (:mod:`neurofuse.cloud`).
    """
    if locations is not None and locations.on_storage:
        from neurofuse.cloud import load_bucket_index

        return load_bucket_index(config, locations, rebuild=rebuild, options=index_options(config))
    path = index_file(config["output_dir"])
    if not rebuild:
        try:
            return DatasetIndex.from_json(path)
        except FileNotFoundError:
            raise NeuroFuseError(
                "the dataset index is missing",
                path,
                "run Snakemake from the main process first (it writes the index), or check output_dir",
            ) from None
    bids_dir = config["bids_dir"]
    if not Path(bids_dir).exists():
        hint = "run `make demo` (or `neurofuse simulate data/demo`) to create the demo dataset"
        if str(bids_dir) != "data/demo":
            hint = "set bids_dir to a BIDS dataset: snakemake --config bids_dir=/path/to/dataset"
        raise NeuroFuseError("bids_dir does not exist", bids_dir, hint)
    index = build_index(bids_dir, **index_options(config))
    index.to_json(path)
    return index


def run_logged(log_path: str, func, *args, **kwargs):
    """Run one library step for a Snakemake job with logging sent to the rule's log.

    A :class:`NeuroFuseError` ends the job with its one-line message (in the log and on
    stderr) and exit code 1, instead of a traceback.
    """
    import logging
    import sys

    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        return func(*args, **kwargs)
    except NeuroFuseError as err:
        logging.getLogger("neurofuse").error(str(err))
        print(f"NeuroFuse: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        root.removeHandler(handler)
        handler.close()
