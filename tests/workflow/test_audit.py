"""Provenance end to end: two runs of the real workflow, byte for byte, and `neurofuse audit`.

One test, two full runs of the small preset (≈ 3 min each on 2 busy cores): the first is
the session's ``small_run`` (its results copied here, since the test edits a file), the
second by ``neurofuse audit --rerun`` into a scratch folder from what the first run's
manifest recorded.
"""

import hashlib
import json
import shutil

import pytest

from neurofuse.cli import main
from neurofuse.provenance.manifest import read_manifest

pytestmark = [pytest.mark.xdist_group("snakemake"), pytest.mark.slow]

#: Outputs that must be bit-identical between two runs with the same seed.
DATA_SUFFIXES = (".nii.gz", ".nii", ".tsv", ".json", ".mat")
#: Outputs whose bytes are still allowed to differ, and why: matplotlib stamps SVGs with
#: the save time and random element ids. Fixed by saving through neurofuse.io.save_figure
#: (neurofuse.fmri.qc._save_figure does not yet) -- then make this empty.
KNOWN_NONDETERMINISTIC_SUFFIXES = ()


#: Written after the run, from its manifest, and not byte-identical between two runs by
#: design: the manifest records when each run's jobs started and ended (and when it was
#: written), and the RO-Crate's CreateAction carries those times and the manifest's hash.
#: Checked below instead: both crates list the same outputs with the same SHA-256.
RUN_RECORDS = ("neurofuse/provenance.json", "ro-crate-metadata.json")


def _hashes(results):
    skip = ("logs/", "benchmarks/") + RUN_RECORDS
    return {
        path.relative_to(results).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(results.rglob("*"))
        if path.is_file() and not path.relative_to(results).as_posix().startswith(skip)
    }


def test_two_runs_are_identical_and_audit_catches_a_hand_edit(small_run, small_dataset, tmp_path, capsys):
    run, result, _ = small_run
    results = tmp_path / "first" / "results"
    shutil.copytree(run.path / "results", results, symlinks=True)
    manifest_file = results / "neurofuse/provenance.json"
    assert "provenance in" in result.stderr  # written by the Snakefile's onsuccess handler
    manifest = read_manifest(manifest_file)
    assert manifest["seed"] == 42 and manifest["dataset"]["bids_dir"] == str(small_dataset)
    preproc = "sub-01/func/sub-01_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    job = manifest["jobs"][manifest["files"][preproc]["job"]]
    assert job["rule"] == "fmri_resample_bold_to_template"
    assert job["code"]["script"] == "scripts/fmri_resample_bold_to_template.py"
    # slice timing and the BOLD -> T1w registration happen in this job: the raw series and the T1w are its inputs
    assert {"bids:raw:sub-01/func/sub-01_task-rest_bold.nii.gz", "bids:raw:sub-01/anat/sub-01_T1w.nii.gz"} <= set(job["inputs"])
    assert any(ref.startswith("work/sub-01/anat/") for ref in job["inputs"])
    description = json.loads((results / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert (results / ".bidsignore").read_text().split() == ["work/", "logs/", "benchmarks/", "neurofuse/", "report/",
                                                             "CITATION.md", "ro-crate-metadata.json"]

    # Second run, from the manifest, into a scratch folder; compare every output.
    assert main(["audit", str(results)]) == 0
    capsys.readouterr()
    scratch = tmp_path / "rerun"
    report_file = tmp_path / "audit.json"
    code = main(["audit", str(results), "--rerun", "--scratch", str(scratch), "--cores", "2",
                 "--json", str(report_file)])
    capsys.readouterr()
    report = json.loads(report_file.read_text())
    assert report["audit"]["ok"] is True

    # Byte-identity, checked directly (not through the code under test).
    first, second = _hashes(results), _hashes(scratch / "results")
    assert sorted(first) == sorted(second)
    differing = sorted(path for path in first if first[path] != second[path])
    data = [path for path in first if path.endswith(DATA_SUFFIXES)]
    assert len(data) >= 20
    assert not [path for path in differing if path.endswith(DATA_SUFFIXES)], differing
    assert all(path.endswith(KNOWN_NONDETERMINISTIC_SUFFIXES) for path in differing), differing
    crate_files = [{(e["@id"], e.get("sha256")) for e in json.loads((root / "ro-crate-metadata.json").read_text())["@graph"]
                    if e.get("@type") == "File" and e["@id"] != "neurofuse/provenance.json"}
                   for root in (results, scratch / "results")]
    assert crate_files[0] == crate_files[1] and len(crate_files[0]) >= len(data)
    rerun = {entry["path"]: entry for entry in report["rerun"]["files"]}
    assert sorted(p for p, e in rerun.items() if e["status"] != "identical") == differing
    assert code == (0 if not differing else 1)

    # A results folder edited by hand fails the audit, naming the file.
    confounds = results / "sub-01/func/sub-01_task-rest_desc-confounds_timeseries.tsv"
    lines = confounds.read_text().splitlines()
    lines[3] = lines[3].replace("0", "1", 1)
    confounds.write_text("\n".join(lines) + "\n")
    assert main(["audit", str(results), "--problems-only"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out[1:-1]] == [["changed", confounds.relative_to(results).as_posix()]]
    assert "1 changed" in out[-1] and "FAILED" in out[-1]
