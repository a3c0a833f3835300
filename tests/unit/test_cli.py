"""The `neurofuse` command: useful output, one-line errors, exit codes."""

import json

import pytest

from neurofuse.cli import main
from neurofuse.config import validate_config
from neurofuse.workflow import index_file, load_index

pytestmark = pytest.mark.xdist_group("simulate_small")


def test_index_prints_counts_and_writes_json(small_dataset, tmp_path, capsys):
    out = tmp_path / "index.json"
    assert main(["index", str(small_dataset), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 subjects, 2 BOLD runs, 2 EEG runs, 2 EEG-BOLD pairs" in printed
    assert len(json.loads(out.read_text())["runs"]) == 2


def test_index_error_is_one_line(tmp_path, capsys):
    assert main(["index", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("neurofuse: error:") and "missing" in err and "\n" not in err


def test_simulate_refuses_a_folder_with_other_data(tmp_path, capsys):
    (tmp_path / "thesis.txt").write_text("do not delete")
    assert main(["simulate", str(tmp_path), "--small", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert str(tmp_path) in err and "\n" not in err
    assert (tmp_path / "thesis.txt").read_text() == "do not delete"


def test_simulate_rejects_bad_numbers(capsys):
    with pytest.raises(SystemExit) as info:
        main(["simulate", "x", "--volumes", "0"])
    assert info.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_jobs_read_the_stored_index_without_the_dataset(small_dataset, tmp_path):
    """A job (rebuild=False) never walks the dataset: it works even when the dataset is gone."""
    config = validate_config({"bids_dir": str(small_dataset), "output_dir": str(tmp_path / "results")})
    built = load_index(config, rebuild=True)
    moved = dict(config, bids_dir=str(tmp_path / "gone"))
    read = load_index(moved, rebuild=False)
    assert read.to_bytes() == built.to_bytes()
    assert (tmp_path / "results" / "neurofuse" / "dataset_index.json").samefile(index_file(config["output_dir"]))
