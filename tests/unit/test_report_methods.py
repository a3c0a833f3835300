"""The methods text and CITATION.md: written from the config, the dataset and the software actually used."""

import re

import pytest
import yaml

from neurofuse.cli import main
from neurofuse.config import validate_config
from neurofuse.errors import NeuroFuseError
from neurofuse.report.html import text_to_html
from neurofuse.report.methods import DatasetFacts, build_methods, write_methods
from neurofuse.report.references import REFERENCES, references_in

#: What the simulator's demo looks like: 2 subjects, one in-scanner EEG-BOLD run each.
DEMO = DatasetFacts(name="demo", subjects=2, bold_runs=2, eeg_runs=2, in_scanner_eeg=2, paired_runs=2,
                    bold_with_t1w=2, bold_with_slice_timing=2, eeg_with_slice_timing=2, repetition_times=(2.0,),
                    line_frequencies=(50.0,), fusion_tasks=(("rest", 2, 2),))
VERSIONS = {"snakemake": "9.27.1", "numpy": "2.4.6", "scipy": "1.17.1", "nibabel": "5.4.2", "pandas": "3.1.1",
            "matplotlib": "3.11.2", "nilearn": "0.13.1", "antspyx": "0.5.3", "mne": "1.13.2", "nipype": "1.11.0",
            "python-picard": "0.8.2", "mne-icalabel": "0.10.0", "onnxruntime": "1.31.1", "torch": "2.13.0",
            "scikit-learn": "1.9.1", "python": "3.11.7"}

#: The references of the default config on the demo dataset, one by one.
DEFAULT_REFS = {
    "gorgolewski2016", "pernet2019", "koster2012", "molder2021", "harris2020", "virtanen2020",  # data, engine
    "baker2004", "tustison2021", "avants2008", "fonov2009", "fonov2011", "abraham2014",  # motion, registration
    "friston1996", "power2012", "afyouni2018",  # confounds
    "gramfort2013", "allen2000", "bigdelyshamlo2015", "perrin1989", "ablin2018", "lee1999",  # EEG
    "piontonachini2019", "li2022", "friston1998",  # ICLabel, HRF
    "goldman2002", "laufs2003", "worsley2002", "benjamini1995",  # GLM
    "paszke2019", "pedregosa2011", "vaswani2017", "vandenoord2018", "radford2021", "loshchilov2019",  # model
}


def methods(overrides=None, facts=DEMO, versions=VERSIONS):
    return build_methods(validate_config(overrides or {}), facts, versions)


def keys(m):
    return {ref.key for ref in m.references}


def body(m):
    text = m.markdown()
    return text[: text.index("## References")]


def test_default_config_cites_exactly_the_methods_it_used():
    m = methods()
    assert keys(m) == DEFAULT_REFS
    text = body(m)
    for ref in m.references:  # every listed work is cited in the text ...
        assert ref.label in text, ref.key
    for ref in REFERENCES.values():  # ... and no work is cited that is not listed
        assert (ref.label in text) == (ref.key in keys(m)), ref.key
    for expected in ("seed 42", "median of the first 10 volumes", "50 mm sphere", "FD above 0.5 mm",
                     "30 neighbouring epochs", "No optimal-basis-set (PCA) step", "decimated to 250 Hz",
                     "Picard", "probability of at least 0.9", "alpha (8-13 Hz)", "AR(1) noise",
                     "2 subjects of task rest were combined with fixed effects", "false discovery rate of 0.05",
                     "2-layer transformer", "window of 8 consecutive volumes", "2 folds of held-out subjects",
                     "MNE-Python 1.13.2", "ANTsPy 0.5.3", "PyTorch 2.13.0", "Snakemake 9.27.1"):
        assert expected in text, expected


@pytest.mark.parametrize("overrides,added,removed,phrase", [
    ({"eeg": {"bcg_method": "obs"}}, {"niazy2005"}, set(), "apply_pca_obs"),
    ({"eeg": {"bcg_method": "aas"}}, {"allen1998"}, set(), "window of 21 heartbeats"),
    ({"eeg": {"ica_method": "fastica"}}, {"hyvarinen1999"}, {"ablin2018", "lee1999"}, "FastICA"),
    ({"eeg": {"ica_method": "infomax"}}, {"bell1995"}, {"ablin2018"}, "extended Infomax"),
    ({"fmri": {"backend": "fsl"}}, {"jenkinson2002", "gorgolewski2011"}, {"baker2004"}, "MCFLIRT"),
    ({"fmri": {"backend": "afni"}}, {"cox1996", "gorgolewski2011"}, {"baker2004"}, "3dTshift"),
    ({"fusion": {"model": {"arch": "cnn"}}}, set(), {"vaswani2017"}, "two 1-D convolutions"),
    ({"fusion": {"glm": {"height_control": "bonferroni"}}}, set(), {"benjamini1995"}, "Bonferroni"),
    ({"fusion": {"glm": {"noise_model": "ols"}}}, set(), {"worsley2002"}, "ordinary least squares"),
    ({"fusion": {"glm": {"noise_model": "ar2", "ar_smoothing_fwhm": 0}}}, set(), set(), "AR(2) noise"),
    ({"fusion": {"glm": {"height_control": "fpr", "alpha": 0.001}}}, set(), {"benjamini1995"}, "p < 0.001, uncorrected"),
])
def test_a_different_config_gives_different_text_and_references(overrides, added, removed, phrase):
    default = methods()
    changed = methods(overrides)
    assert keys(changed) == (DEFAULT_REFS | added) - removed
    assert phrase in body(changed) and phrase not in body(default)


@pytest.mark.parametrize("overrides,phrase", [
    ({"fmri": {"fd_threshold": 0.3, "dvars_threshold": 2.0}}, "FD above 0.3 mm or standardised DVARS above 2"),
    ({"fmri": {"slice_time_ref": 0.25}}, "0.25 s after the volume onset"),
    ({"fmri": {"motion_reference": 3}}, "volume 3 (counted from 0)"),
    ({"fmri": {"bold_to_t1w": "Affine"}}, "affine (12 degrees of freedom)"),
    ({"fmri": {"output_resolution": 3.0}}, "onto a 3 mm grid"),
    ({"eeg": {"l_freq": 0.5, "h_freq": 40.0}}, "from 0.5 to 40 Hz"),
    ({"eeg": {"bands": {"alpha": [8, 12], "beta": [15, 25]}}}, "alpha (8-12 Hz) and beta (15-25 Hz)"),
    ({"fusion": {"bands": ["alpha"], "confounds": ["trans_x", "framewise_displacement"]}},
     "one regressor per EEG band (alpha)"),
    ({"fusion": {"glm": {"smoothing_fwhm": 0}}}, "was not smoothed"),
    ({"fusion": {"glm": {"cluster_threshold": 20}}}, "clusters smaller than 20 voxels"),
    ({"fusion": {"model": {"window": 12, "n_regions": 50, "folds": 3}}}, "50 regions"),
    ({"seed": 7}, "used the seed 7"),
])
def test_settings_reach_the_sentences(overrides, phrase):
    assert phrase in body(methods(overrides)) and phrase not in body(methods())


def test_the_dataset_decides_which_stages_are_described():
    eeg_only = DatasetFacts(subjects=2, eeg_runs=4, line_frequencies=(60.0,))
    m = methods(facts=eeg_only)
    assert [title for title, _ in m.sections] == ["Data and software", "EEG preprocessing"]
    assert not keys(m) & {"allen2000", "goldman2002", "tustison2021", "paszke2019", "power2012"}
    assert "notch filters at 60 Hz" in body(m) and "outside the scanner" in body(m)
    assert "torch" not in {dist for _, dist, _ in m.software} and "mne" in {dist for _, dist, _ in m.software}

    bold_only = DatasetFacts(subjects=1, bold_runs=2, repetition_times=(1.5,))
    m = methods(facts=bold_only)
    assert [title for title, _ in m.sections] == ["Data and software", "Functional MRI preprocessing"]
    assert "No run had SliceTiming" in body(m) and "Without T1w images" in body(m)
    assert not keys(m) & {"pernet2019", "gramfort2013", "avants2008"} and "tustison2021" in keys(m)

    seven = DatasetFacts(**{**DEMO.__dict__, "subjects": 7, "paired_runs": 7, "fusion_tasks": (("rest", 7, 7),)})
    assert "combined with random effects" in body(methods(facts=seven))
    one = DatasetFacts(**{**DEMO.__dict__, "subjects": 1, "paired_runs": 1, "fusion_tasks": (("rest", 1, 1),)})
    assert "single subject, whose map is the group map" in body(methods(facts=one))
    assert "two halves of the single run" in body(methods(facts=one))


def test_installed_software_decides_ica_and_iclabel():
    no_extras = {k: v for k, v in VERSIONS.items() if k not in ("python-picard", "mne-icalabel")}
    m = methods(versions=no_extras)
    assert "extended Infomax (Picard is not installed here)" in body(m)
    assert keys(m) == (DEFAULT_REFS | {"bell1995"}) - {"ablin2018", "piontonachini2019", "li2022"}
    assert "mne-icalabel" not in {dist for _, dist, _ in m.software}


def test_every_reference_is_reachable_well_formed_and_unambiguous():
    variants = [{}, {"eeg": {"bcg_method": "obs"}}, {"eeg": {"bcg_method": "aas", "ica_method": "fastica"}},
                {"eeg": {"ica_method": "infomax"}}, {"fmri": {"backend": "fsl"}}, {"fmri": {"backend": "afni"}}]
    reachable = set().union(*(keys(methods(v)) for v in variants))
    assert reachable == set(REFERENCES)  # nothing in the registry that no run could cite
    labels = [ref.label for ref in REFERENCES.values()]
    assert len(labels) == len(set(labels))
    for ref in REFERENCES.values():
        assert ref.doi is None or re.fullmatch(r"10\.\d{4,9}/\S+", ref.doi), ref.key
        assert ref.link.startswith("https://") and ref.title and ref.venue and 1985 <= ref.year < 2030, ref.key
        assert ref.bibtex().startswith(f"@{ref.kind}{{{ref.key},") and ref.bibtex().count("{") == ref.bibtex().count("}")
    m = methods()
    assert references_in(m.markdown()) == sorted(m.references, key=lambda r: r.key)


def test_citation_lists_software_references_and_bibtex():
    m = methods()
    text = m.citation_markdown()
    assert f"## References ({len(m.references)})" in text
    assert "- MNE-Python 1.13.2" in text and "- PyTorch 2.13.0" in text and "- Python 3.11.7" in text
    assert text.count("\n@") == len(m.references) and "doi = {10.1006/nimg.2000.0599}" in text
    html = text_to_html(m.markdown())
    assert "<h4>EEG preprocessing</h4>" in html and 'href="https://doi.org/10.1006/nimg.2000.0599"' in html


def test_write_methods_from_the_index(tmp_path):
    from neurofuse.bids.skeleton import write_skeleton
    from neurofuse.bids.index import build_index
    from neurofuse.config import REPO_ROOT

    spec = yaml.safe_load((REPO_ROOT / "tests/unit/bids_skeletons/acq_time_pairing.yaml").read_text())
    write_skeleton(tmp_path / "bids", spec)
    build_index(tmp_path / "bids", check_images=False).to_json(tmp_path / "index.json")
    facts = DatasetFacts.from_index_file(tmp_path / "index.json")
    assert (facts.subjects, facts.bold_runs, facts.eeg_runs, facts.paired_runs) == (1, 3, 4, 3)
    assert facts.fusion_tasks == (("motor", 1, 2), ("rest", 1, 1))
    config = validate_config({})
    out_md, out_cite = tmp_path / "report/methods.md", tmp_path / "CITATION.md"
    write_methods(config, tmp_path / "index.json", out_md, out_cite)
    first = out_md.read_bytes(), out_cite.read_bytes()
    write_methods(config, tmp_path / "index.json", out_md, out_cite)
    assert (out_md.read_bytes(), out_cite.read_bytes()) == first  # same inputs, same bytes
    assert "3 EEG-BOLD pairs recorded simultaneously" in first[0].decode()
    with pytest.raises(NeuroFuseError, match="dataset index is missing"):
        write_methods(config, tmp_path / "nowhere.json", out_md, out_cite)
    with pytest.raises(NeuroFuseError, match="lack fusion"):
        write_methods({"seed": 1, "fmri": {}, "eeg": {}}, tmp_path / "index.json", out_md, out_cite)


def test_cli_prints_the_methods_of_a_config(tmp_path, capsys):
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump({"output_dir": str(tmp_path / "none"), "eeg": {"bcg_method": "obs"}}))
    assert main(["methods", "--config", str(config), "--citation", str(tmp_path / "CITATION.md")]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("# Methods") and "apply_pca_obs" in captured.out
    assert "no dataset index" in captured.err  # described for any dataset
    assert "Niazy" in (tmp_path / "CITATION.md").read_text()
    assert main(["methods", "--config", str(config), "--index", str(tmp_path / "missing.json")]) == 2
    assert "dataset index is missing" in capsys.readouterr().err
