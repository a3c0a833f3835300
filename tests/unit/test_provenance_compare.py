"""Output comparison for `audit --rerun`: bytes, then NIfTI/TSV/JSON numerically."""

import json

import matplotlib
import nibabel as nib
import numpy as np
import pytest

from neurofuse.io import save_figure, save_nifti
from neurofuse.provenance.compare import (
    DIFFERENT,
    IDENTICAL,
    WITHIN_TOLERANCE,
    compare_files,
)
from neurofuse.provenance.rerun import compare_results, rerun_config

matplotlib.use("Agg")


def nifti(path, data, descrip=b""):
    img = nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    img.header["descrip"] = descrip
    save_nifti(img, path)
    return path


@pytest.fixture()
def series():
    return np.random.default_rng(0).normal(size=(4, 5, 3, 6)).astype(np.float32)


def test_nifti_identical_tolerance_and_first_voxel(tmp_path, series):
    a = nifti(tmp_path / "a.nii.gz", series)
    assert compare_files(a, nifti(tmp_path / "same.nii.gz", series)).status == IDENTICAL
    close = compare_files(a, nifti(tmp_path / "close.nii.gz", series * np.float32(1 + 1e-7)))
    assert close.status == WITHIN_TOLERANCE and "max abs difference" in close.detail
    changed = series.copy()
    changed[1, 2, 0, 3] += 0.5
    changed[3, 4, 2, 5] += 0.5
    diff = compare_files(a, nifti(tmp_path / "diff.nii.gz", changed))
    assert diff.status == DIFFERENT
    assert "2 of 360 voxels" in diff.detail and "first at voxel (1, 2, 0, 3)" in diff.detail
    assert f"{float(series[1, 2, 0, 3])!r} vs {float(changed[1, 2, 0, 3])!r}" in diff.detail
    shape = compare_files(a, nifti(tmp_path / "short.nii.gz", series[..., :5]))
    assert shape.status == DIFFERENT and "shape" in shape.detail


def test_nifti_same_voxels_other_header(tmp_path, series):
    a = nifti(tmp_path / "a.nii.gz", series)
    b = nifti(tmp_path / "b.nii.gz", series, descrip=b"other")
    result = compare_files(a, b)
    assert result.status == WITHIN_TOLERANCE and "voxel data identical" in result.detail and "descrip" in result.detail


def test_nifti_writes_are_byte_reproducible(tmp_path, series):
    # nibabel gzips without a file name or time stamp: the temporary name used by
    # save_nifti and the save time leave no trace in the bytes.
    a = nifti(tmp_path / "a.nii.gz", series)
    b = nifti(tmp_path / "b.nii.gz", series)
    assert a.read_bytes() == b.read_bytes()


def test_tsv_first_differing_cell(tmp_path):
    a, b, c = tmp_path / "a.tsv", tmp_path / "b.tsv", tmp_path / "c.tsv"
    a.write_text("trans_x\tframewise_displacement\n0.1\tn/a\n0.2\t0.30000000\n")
    b.write_text("trans_x\tframewise_displacement\n0.1\tn/a\n0.2\t0.3000000001\n")
    c.write_text("trans_x\tframewise_displacement\n0.1\tn/a\n0.2\t0.31\n")
    assert compare_files(a, b).status == WITHIN_TOLERANCE
    result = compare_files(a, c)
    assert result.status == DIFFERENT and result.detail == "row 2, column 'framewise_displacement': '0.30000000' vs '0.31'"


def test_json_first_differing_key(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"RepetitionTime": 2.0, "Sources": ["x"], "Stats": {"fd": [0.1, 0.2]}}))
    b.write_text(json.dumps({"Stats": {"fd": [0.1, 0.25]}, "RepetitionTime": 2.0, "Sources": ["x"]}))
    result = compare_files(a, b)
    assert result.status == DIFFERENT and result.detail == "/Stats/fd[1]: 0.2 vs 0.25"
    b.write_text(json.dumps({"Stats": {"fd": [0.1, 0.2]}, "RepetitionTime": 2.0, "Sources": ["x"]}))
    assert compare_files(a, b).status == WITHIN_TOLERANCE  # same content, other key order


def test_fif_first_differing_sample(tmp_path):
    import mne

    info = mne.create_info(["Fz", "Cz"], 100.0, "eeg")
    data = np.random.default_rng(1).normal(size=(2, 300)) * 1e-5
    mne.io.RawArray(data, info, verbose="error").save(tmp_path / "a_eeg.fif", verbose="error")
    close = data * (1 + 1e-7)
    mne.io.RawArray(close, info, verbose="error").save(tmp_path / "b_eeg.fif", verbose="error")
    assert compare_files(tmp_path / "a_eeg.fif", tmp_path / "b_eeg.fif").status == WITHIN_TOLERANCE
    changed = data.copy()
    changed[1, 150] += 1e-5
    mne.io.RawArray(changed, info, verbose="error").save(tmp_path / "c_eeg.fif", verbose="error")
    result = compare_files(tmp_path / "a_eeg.fif", tmp_path / "c_eeg.fif")
    assert result.status == DIFFERENT and "first at channel 'Cz', sample 150 (1.5000 s)" in result.detail


def test_other_formats_compare_bytes_or_lines(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"\x89PNG-1")
    b.write_bytes(b"\x89PNG-2")
    result = compare_files(a, b)
    assert result.status == DIFFERENT and "offset 5" in result.detail
    a, b = tmp_path / "a.svg", tmp_path / "b.svg"
    a.write_text("<svg>\n<dc:date>2026-01-01T10:00</dc:date>\n</svg>\n")
    b.write_text("<svg>\n<dc:date>2026-01-01T11:00</dc:date>\n</svg>\n")
    result = compare_files(a, b)
    assert result.status == DIFFERENT and result.detail.startswith("text differs from line 2, column 22:")
    assert "T10:00" in result.detail and "T11:00" in result.detail


def test_save_figure_is_byte_reproducible(tmp_path):
    import matplotlib.pyplot as plt

    def draw(path):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1, 4])
        save_figure(fig, path, dpi=40)
        plt.close(fig)
        return path.read_bytes()

    for ext in ("svg", "png", "pdf"):
        assert draw(tmp_path / f"a.{ext}") == draw(tmp_path / f"b.{ext}"), ext


def test_compare_results_lists_missing_and_extra(tmp_path):
    ref, new = tmp_path / "ref", tmp_path / "new"
    for root in (ref, new):
        (root / "sub-01").mkdir(parents=True)
        (root / "sub-01/a.json").write_text("{}")
    (ref / "sub-01/gone.tsv").write_text("x\n")
    (new / "sub-01/new.txt").write_text("x")
    (new / "logs").mkdir()
    (new / "logs/run.log").write_text("not compared")
    entries = {e.path: e.status for e in compare_results(ref, new, ["sub-01/a.json", "sub-01/gone.tsv"])}
    assert entries == {"sub-01/a.json": IDENTICAL, "sub-01/gone.tsv": "missing_in_rerun",
                       "sub-01/new.txt": "extra_in_rerun"}


def test_rerun_config_points_at_the_recorded_dataset():
    manifest = {"config": {"bids_dir": "data/demo", "output_dir": "/elsewhere", "seed": 1, "fmri": {"a": 1}},
                "dataset": {"bids_dir": "/abs/data/demo"}, "seed": 1}
    assert rerun_config(manifest) == {"bids_dir": "/abs/data/demo", "output_dir": "results", "seed": 1,
                                      "fmri": {"a": 1}}
