"""Bad input through the real Snakefile: what the user of `snakemake` sees.

The dataset-level corpus is tests/unit/test_bad_input_corpus.py (``neurofuse index`` builds
the same index as the Snakefile); here: that the Snakefile turns a broken dataset and a
read-only output folder into one line, that a symlinked dataset under paths with spaces and
non-ASCII letters runs, and that a job over its memory is stopped with the rule, the subject
and the limit.
"""

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from bad_input import BOLD_JSON, RUN, SUB, copy_subject, read_only_dir  # noqa: E402

pytestmark = pytest.mark.xdist_group("snakemake_dry")


@pytest.fixture
def one_subject(small_dataset, tmp_path) -> Path:
    return copy_subject(small_dataset, tmp_path / "données brutes" / "étude 1")


def _job_counts(stdout: str) -> dict[str, int]:
    import re

    table = stdout.split("Job stats:", 1)[1]
    return {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


def test_symlinked_dataset_with_spaces_and_unicode(one_subject, workdir, tmp_path):
    link = tmp_path / "lien vers l'étude"
    link.symlink_to(one_subject, target_is_directory=True)
    result = workdir.snakemake("-n", bids_dir=link, config=(f"output_dir={tmp_path / 'résultats du run'}",))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = _job_counts(result.stdout)
    assert jobs["fmri_estimate_head_motion"] == 1 and jobs["eeg_remove_gradient_artifact"] == 1
    index = json.loads((tmp_path / "résultats du run" / "neurofuse" / "dataset_index.json").read_text())
    assert index["bids_dir"] == str(one_subject) and [r["id"] for r in index["runs"]] == [RUN]


def test_broken_dataset_is_one_line(one_subject, workdir):
    data = json.loads((one_subject / BOLD_JSON).read_text())
    (one_subject / BOLD_JSON).write_text(json.dumps({**data, "RepetitionTime": "1.5"}))
    result = workdir.snakemake("-n", bids_dir=one_subject)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    [line] = [l for l in result.stderr.splitlines() if l.startswith("NeuroFuse: ")]
    assert line == (f"NeuroFuse: {one_subject / BOLD_JSON}: RepetitionTime must be a positive number of seconds, got "
                    "'1.5' (a string) (applies to sub-01_task-rest_bold.nii.gz) -> write it as a JSON number without "
                    'quotes, e.g. "RepetitionTime": 2.0')


def test_read_only_output_folder(one_subject, workdir, tmp_path):
    with read_only_dir(tmp_path / "sortie") as locked:
        result = workdir.snakemake("-n", bids_dir=one_subject, config=(f"output_dir={locked}",))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = [l for l in result.stderr.splitlines() if l.startswith("NeuroFuse: ")]
    assert line.startswith(f"NeuroFuse: {locked}/neurofuse/dataset_index.json: cannot write in the output folder "
                           f"{locked} (")
    assert f"make {locked} writable" in line


def test_job_over_its_memory_names_rule_subject_and_limit(one_subject, workdir):
    """A real job of a real run, given 40 MB (a Python process with numpy needs ~100 MB)."""
    result = workdir.snakemake("--cores", "1", "--until", "fmri_estimate_head_motion", "--set-resources",
                               "fmri_estimate_head_motion:mem_mb=40", bids_dir=one_subject)
    assert result.returncode != 0
    text = result.stderr + result.stdout
    assert "Traceback" not in text, text[-3000:]
    [line] = [l for l in text.splitlines() if l.startswith("NeuroFuse: rule ")]
    assert line.startswith(f"NeuroFuse: rule fmri_estimate_head_motion for subject 01 (run={RUN}) exceeded its "
                           "memory limit: "), line
    assert "the rule was given mem_mb=40 MB; the job was stopped" in line
    assert "--set-resources fmri_estimate_head_motion:mem_mb=" in line
    motion = workdir.path / "results" / "work" / SUB / "func" / f"{RUN}_desc-hmc_motion.tsv"
    assert not motion.exists()
    shutil.rmtree(workdir.path / "results", ignore_errors=True)
