"""The Snakefile end to end: lint, dry run, DAG, a real run, and bad datasets."""

import json
import re
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

pytestmark = pytest.mark.xdist_group("snakemake")


def test_lint_is_clean(workdir, small_dataset):
    result = workdir.snakemake("--lint", bids_dir=small_dataset)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dry_run_lists_jobs_and_writes_the_index(workdir, small_dataset):
    result = workdir.snakemake("-n", bids_dir=small_dataset)
    assert result.returncode == 0, result.stderr
    assert "report_summarize_dataset" in result.stdout
    index = json.loads((workdir.path / "results/neurofuse/dataset_index.json").read_text())
    assert len(index["runs"]) == 2


def test_dag_renders(workdir, small_dataset):
    result = workdir.snakemake("--dag", bids_dir=small_dataset)
    assert result.returncode == 0, result.stderr
    assert result.stdout.lstrip().startswith("digraph")
    assert "report_summarize_dataset" in result.stdout
    dot = shutil.which("dot")
    if dot:
        import subprocess

        svg = subprocess.run([dot, "-Tsvg"], input=result.stdout, capture_output=True, text=True, check=True)
        assert "<svg" in svg.stdout


def test_real_run_writes_the_summary(small_run, small_dataset):
    workdir, result, _ = small_run  # the session's one uninterrupted run (also the kill test's reference)
    assert "dataset summary at" in result.stderr
    table = pd.read_csv(workdir.path / "results/report/dataset_summary.tsv", sep="\t", dtype=str)
    sidecar = json.loads((small_dataset / "task-rest_bold.json").read_text())
    assert list(table["subject"].astype(str)) == ["01", "02"]
    assert (table["pairing"] == "entities").all()
    tr = float(table["tr_s"].iloc[0])
    assert tr == sidecar["RepetitionTime"]
    assert (table["n_slices"].astype(int) == len(sidecar["SliceTiming"])).all()
    for sub, n_volumes in zip(table["subject"], table["n_volumes"].astype(int)):
        motion = small_dataset / f"derivatives/simulation/sub-{sub}/func/sub-{sub}_task-rest_desc-truemotion_timeseries.tsv"
        assert n_volumes == len(pd.read_csv(motion, sep="\t"))
    sfreq = float(table["eeg_sfreq_hz"].iloc[0])
    assert (table["eeg_tr_s"].astype(float) - tr).abs().max() <= 1.0 / sfreq
    assert (table["n_volumes"].astype(int) == table["eeg_volume_markers"].astype(int)).all()
    # fMRI: confounds and the normalised series, scored against the simulator's truth.
    for sub in ("01", "02"):
        func = workdir.path / f"results/sub-{sub}/func"
        confounds = pd.read_csv(func / f"sub-{sub}_task-rest_desc-confounds_timeseries.tsv", sep="\t",
                                na_values="n/a")
        truth = pd.read_csv(small_dataset / f"derivatives/simulation/sub-{sub}/func/"
                            f"sub-{sub}_task-rest_desc-truemotion_timeseries.tsv", sep="\t")
        fd = confounds["framewise_displacement"].to_numpy()[1:]
        fd_true = truth["framewise_displacement"].to_numpy()[1:]
        assert np.corrcoef(fd, fd_true)[0, 1] > 0.99
        assert np.abs(fd - fd_true).mean() < 0.05
        preproc = nib.load(func / f"sub-{sub}_task-rest_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz")
        assert preproc.shape[3] == len(truth)
        assert np.allclose(preproc.header.get_zooms()[:3], 2.0)
        assert (workdir.path / f"results/sub-{sub}/figures/sub-{sub}_task-rest_desc-carpet_bold.png").stat().st_size > 1000
    # EEG: band power on the fMRI grid follows the true alpha envelope.
    for sub in ("01", "02"):
        bands = pd.read_csv(workdir.path / f"results/sub-{sub}/eeg/sub-{sub}_task-rest_desc-eegbands_timeseries.tsv",
                            sep="\t")
        drivers = pd.read_csv(small_dataset / f"derivatives/simulation/sub-{sub}/func/"
                              f"sub-{sub}_task-rest_desc-drivers_timeseries.tsv", sep="\t")
        assert len(bands) == len(drivers)
        assert np.corrcoef(bands["alpha_mean_hrf"], drivers["alpha_hrf"])[0, 1] > 0.75
        clean = workdir.path / f"results/sub-{sub}/eeg/sub-{sub}_task-rest_desc-clean_eeg.fif"
        assert clean.stat().st_size > 100_000
    # Fusion: the group GLM finds the true alpha region, with BOLD going down as alpha goes up.
    # (The small preset's 2 short runs carry too little for the weaker beta coupling and the
    # deep model: those are scored on the demo preset by benchmarks/bench_fusion.py.)
    truth_file = small_dataset / "derivatives/simulation/space-MNI152NLin2009cAsym_label-alpha_mask.nii.gz"
    alpha = np.asarray(nib.load(truth_file).dataobj) > 0
    z = np.asarray(nib.load(workdir.path / "results/group/task-rest_space-MNI152NLin2009cAsym_desc-alpha_stat-z_statmap.nii.gz").dataobj)
    inside = z != 0
    assert roc_auc_score(alpha[inside], -z[inside]) >= 0.9  # measured 0.98
    assert z[alpha & inside].mean() < -1.0
    thresholded = json.loads((workdir.path / "results/group/task-rest_space-MNI152NLin2009cAsym_desc-alphathresholded_stat-z_statmap.json").read_text())
    assert thresholded["voxels_surviving"] > 100
    stack = nib.load(workdir.path / "results/group/task-rest_space-MNI152NLin2009cAsym_desc-alphafusionsubjects_statmap.nii.gz")
    assert stack.shape[3] == 2
    html = (workdir.path / "results/report/dataset_summary.html").read_text()
    assert "sub-01_task-rest" in html and "EEG-BOLD pairs" in html
    # A second run has nothing to do.
    again = workdir.snakemake("--cores", "2", bids_dir=small_dataset, timeout=900)
    assert again.returncode == 0 and "Nothing to be done" in again.stderr
    # HTML reports: one per subject and the group report, every image and link resolves.
    report_dir = workdir.path / "results/report"
    assert "report at results/report/group.html" in result.stderr
    pages = [report_dir / "group.html"] + [report_dir / f"sub-{sub}.html" for sub in table["subject"]]
    for page, run_ids in zip(pages, [list(table["run"])] + [[run] for run in table["run"]]):
        text = page.read_text()
        assert all(run in text for run in run_ids), page
        refs = [ref for ref in re.findall(r'(?:src|href)="([^"#][^"]*)"', text) if "://" not in ref]  # not DOI links
        assert refs and all((report_dir / ref).is_file() for ref in refs), page
    assert "Framewise displacement, mean" in pages[1].read_text() and "R-peaks found" in pages[1].read_text()
    # Neuroglancer: one link per group map, each state's nifti:// source is that map on the local server.
    viewer = json.loads((report_dir / "neuroglancer.json").read_text())
    maps = sorted(p.relative_to(workdir.path / "results").as_posix()
                  for p in (workdir.path / "results/group").glob("*_statmap.nii.gz")
                  if "thresholded_" not in p.name and "subjects_" not in p.name)  # z-maps and heatmaps
    assert sorted(m["path"] for m in viewer["maps"]) == maps and maps
    for entry in viewer["maps"]:
        assert entry["state"]["layers"][0]["source"] == f"nifti://http://127.0.0.1:9000/{entry['path']}"
        assert entry["link"] in pages[0].read_text().replace("&amp;", "&")
    # The methods text (in the group report), CITATION.md and the RO-Crate of the run.
    assert "(Allen et al., 2000)" in pages[0].read_text() and "https://doi.org/10.1006/nimg.2000.0599" in pages[0].read_text()
    assert "Allen PJ, Josephs O, Turner R (2000)" in (workdir.path / "results/CITATION.md").read_text()
    crate = json.loads((workdir.path / "results/ro-crate-metadata.json").read_text())
    assert any(entity.get("@type") == "CreateAction" for entity in crate["@graph"])
    # Snakemake's own report over the same run.
    zipped = workdir.path / "report.zip"
    snakemake_report = workdir.snakemake("--report", str(zipped), bids_dir=small_dataset, timeout=600)
    assert snakemake_report.returncode == 0, snakemake_report.stderr[-3000:]
    assert zipped.stat().st_size > 10_000


def test_missing_bids_dir_is_one_clear_line(workdir, tmp_path):
    result = workdir.snakemake("-n", bids_dir=tmp_path / "nowhere")
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("NeuroFuse:") and "nowhere" in lines[-1] and "bids_dir" in lines[-1]
    assert "Traceback" not in result.stderr


def test_bad_dataset_fails_in_the_dry_run(workdir, small_dataset, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(small_dataset, broken)
    sidecar = broken / "task-rest_bold.json"
    meta = json.loads(sidecar.read_text())
    del meta["RepetitionTime"]
    sidecar.write_text(json.dumps(meta))
    result = workdir.snakemake("-n", bids_dir=broken)
    assert result.returncode != 0
    assert "RepetitionTime" in result.stderr and "Traceback" not in result.stderr


def test_unknown_participant_label_names_the_ones_present(workdir, small_dataset):
    result = workdir.snakemake("-n", bids_dir=small_dataset, config=("participant_label=[\"07\"]",))
    assert result.returncode != 0
    assert "07" in result.stderr and "01" in result.stderr
