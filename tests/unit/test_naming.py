import pytest

from neurofuse.naming import (
    ENTITY_ORDER,
    derivative_path,
    entity_string,
    group_path,
    parse_name,
    run_prefix,
    subject_dir,
)


def test_entity_order_matches_official_bids_schema():
    bst = pytest.importorskip("bidsschematools.schema")
    schema = bst.load_schema()
    official = [schema.objects.entities[name]["name"] for name in schema.rules.entities]
    ours = [e for e in ENTITY_ORDER]
    # Every entity we know is official, and in the official relative order.
    assert all(e in official for e in ours)
    assert sorted(ours, key=official.index) == ours


def test_entity_string_orders_and_drops_empty():
    assert entity_string({"run": "1", "task": "rest", "sub": "01", "ses": None}) == "sub-01_task-rest_run-1"


def test_entity_string_rejects_bad_labels():
    with pytest.raises(ValueError, match="alphanumeric"):
        entity_string({"sub": "01_x"})
    with pytest.raises(ValueError, match="unknown"):
        entity_string({"subject": "01"})


def test_parse_round_trip():
    ents, suffix, ext = parse_name("sub-01/ses-2/func/sub-01_ses-2_task-rest_run-3_bold.nii.gz")
    assert ents == {"sub": "01", "ses": "2", "task": "rest", "run": "3"}
    assert (suffix, ext) == ("bold", ".nii.gz")
    assert run_prefix(ents) == "sub-01_ses-2_task-rest_run-3"
    assert subject_dir(ents) == "sub-01/ses-2"
    assert subject_dir({"sub": "01"}) == "sub-01"


def test_parse_rejects_non_bids():
    with pytest.raises(ValueError):
        parse_name("my bold.nii.gz")


def test_derivative_path_concrete_and_wildcards():
    assert (
        derivative_path("results", "sub-01", "func", "sub-01_task-rest_run-1", space="MNI152NLin2009cAsym",
                        desc="preproc", suffix="bold", extension=".nii.gz")
        == "results/sub-01/func/sub-01_task-rest_run-1_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    )
    assert derivative_path("results", "{sdir}", "eeg", "{run}", desc="clean", suffix="eeg", extension=".fif") == (
        "results/{sdir}/eeg/{run}_desc-clean_eeg.fif"
    )


def test_derivative_path_refuses_misordered_entities():
    with pytest.raises(ValueError, match="before the run prefix"):
        derivative_path("r", "sub-01", "func", "sub-01_desc-x", task="rest", suffix="bold", extension=".nii.gz")


def test_group_path():
    assert group_path("results", desc="alpha", suffix="statmap", extension=".nii.gz") == (
        "results/group/desc-alpha_statmap.nii.gz"
    )
