"""`snakemake -n` over the YAML-described BIDS skeletons: the DAG has one job per step
and run, for sessions, EEG-only, BOLD-only and acq_time-paired layouts alike."""

import re
from pathlib import Path

import pytest
import yaml

from neurofuse.bids.skeleton import write_skeleton

pytestmark = pytest.mark.xdist_group("snakemake_dry")

SPECS = sorted((Path(__file__).parents[1] / "unit" / "bids_skeletons").glob("*.yaml"))


def _job_counts(stdout: str) -> dict[str, int]:
    table = stdout.split("Job stats:", 1)[1]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: p.stem)
def test_dry_run_over_skeleton(spec_path, workdir, tmp_path):
    spec = yaml.safe_load(spec_path.read_text())
    write_skeleton(tmp_path / "bids", spec)
    # Skeleton images are empty placeholders: index without reading NIfTI headers.
    config_file = workdir.path / "config" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["index"]["check_images"] = False
    config_file.write_text(yaml.safe_dump(config))
    result = workdir.snakemake("-n", bids_dir=tmp_path / "bids")
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = _job_counts(result.stdout)
    expect = spec["expect"]
    assert jobs.get("report_summarize_dataset") == 1
    assert jobs.get("report_build_group") == 1 and jobs.get("report_build_subject", 0) >= 1
    assert jobs.get("fmri_estimate_head_motion", 0) == expect["bold"]
    assert jobs.get("fmri_resample_bold_to_template", 0) == expect["bold"]
    assert jobs.get("eeg_clean_signal", 0) == expect["eeg"]
    assert jobs.get("eeg_compute_band_power", 0) == expect["eeg"]
    assert jobs.get("eeg_remove_gradient_artifact", 0) <= expect["eeg"]
