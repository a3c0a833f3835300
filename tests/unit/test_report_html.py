"""The HTML reports: numbers with units, only existing figures, determinism, clear errors."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from neurofuse.bids.index import BoldInfo, DatasetIndex, EegInfo, Run
from neurofuse.errors import NeuroFuseError
from neurofuse.report.group import write_group_report
from neurofuse.report.html import nested_table, text_to_html
from neurofuse.report.subject import write_subject_report

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>\n'


def _run(sub: str, *, bold: bool = True, eeg: bool = True) -> Run:
    entities = {"sub": sub, "task": "rest"}
    run_id = f"sub-{sub}_task-rest"
    return Run(
        id=run_id, subdir=f"sub-{sub}", entities=entities,
        bold=BoldInfo(path=f"sub-{sub}/func/{run_id}_bold.nii.gz", metadata={}, repetition_time=2.0, n_volumes=4)
        if bold else None,
        eeg=EegInfo(path=f"sub-{sub}/eeg/{run_id}_eeg.vhdr", format="BrainVision", sampling_frequency=5000.0,
                    metadata={}, n_volume_markers=4, pairing="entities", n_samples=40000) if eeg else None,
    )


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """A tiny results folder: sub-01 with EEG and BOLD, sub-02 with BOLD only."""
    out = tmp_path / "results"
    index = DatasetIndex(bids_dir=str(tmp_path / "data"), name="tiny", runs=[_run("01"), _run("02", eeg=False)])
    index.to_json(out / "neurofuse/dataset_index.json")
    for sub in ("01", "02"):
        stem = f"sub-{sub}_task-rest"
        func = out / f"sub-{sub}/func"
        func.mkdir(parents=True)
        (func / f"{stem}_desc-confounds_timeseries.tsv").write_text(
            "framewise_displacement\tmotion_outlier00\n"
            "n/a\t0\n0.1\t0\n0.8\t1\n0.3\t0\n"
        )
        (func / f"{stem}_desc-confounds_timeseries.json").write_text(json.dumps(
            {"motion_outlier00": {"Description": "Spike regressor: 1 on a volume with framewise_displacement > 0.5 mm"}}
        ))
        figures = out / f"sub-{sub}/figures"
        figures.mkdir(parents=True)
        (figures / f"{stem}_desc-motion_bold.svg").write_text(SVG)
        (figures / f"{stem}_desc-carpet_bold.png").write_bytes(PNG)
    eeg = out / "sub-01/eeg"
    eeg.mkdir()
    (eeg / "sub-01_task-rest_desc-clean_log.json").write_text(json.dumps({
        "notch_hz": [50.0, 100.0], "band_hz": [1.0, 70.0], "reference": "average",
        "bad_channels": {"flat": [], "noisy": ["T7"], "uncorrelated": []}, "interpolated": ["T7"],
        "ica": {"method": "picard", "n_components": 30, "exclude": [3, 8], "iclabel_threshold": 0.9,
                "components": [{"index": 3, "iclabel": "muscle artifact", "probability": 0.95}],
                "eog_scores": [0, 0, 0, 0, 0, 0, 0, 0, -0.9],
                "reasons": {"3": ["iclabel:muscle artifact"], "8": ["eog-correlation"]}},
    }))
    work = out / "work/sub-01/eeg"
    work.mkdir(parents=True)
    (work / "sub-01_task-rest_desc-bcg_log.json").write_text(json.dumps({
        "method": "least-squares BCG kernel", "n_rpeaks": 362, "heart_rate_bpm_median": 70.64,
        "rr_s": {"min": 0.755, "max": 0.949}, "ecg_channel": "ECG",
    }))
    (out / "sub-01/figures/sub-01_task-rest_desc-ica_eeg.png").write_bytes(PNG)
    return out


def _subject_files(results: Path, sub: str) -> list[Path]:
    return sorted(p for p in (results / f"sub-{sub}").rglob("*") if p.is_file() and "_eeg.fif" not in p.name) + sorted(
        (results / f"work/sub-{sub}").rglob("*_log.json")
    )


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.refs += [v for k, v in attrs if (tag, k) in (("img", "src"), ("a", "href")) and not v.startswith("#")]


def refs(html: Path) -> list[str]:
    parser = _Refs()
    parser.feed(html.read_text())
    return parser.refs


def _subject(results: Path, sub: str, **kwargs) -> Path:
    files = kwargs.pop("files", None)
    return write_subject_report(results / "neurofuse/dataset_index.json", results / f"report/sub-{sub}.html",
                                subject=sub, files=_subject_files(results, sub) if files is None else files, **kwargs)


def test_subject_report_shows_numbers_with_units(results):
    text = _subject(results, "01").read_text()
    for expected in ("4 volumes (8 s)", "2 s", "0.400 mm", "0.800 mm (volume 2, t = 4 s)", "1 of 4 volumes (25.0 %)",
                     "framewise_displacement &gt; 0.5 mm", "362 R-peaks in channel ECG", "70.6 bpm",
                     "755 to 949 ms", "1 to 70 Hz", "50, 100 Hz", "T7 (noisy)", "5000 Hz",
                     "30 components (picard), 2 removed",
                     "IC03: ICLabel class “muscle artifact”, p = 0.95 (threshold 0.90)",
                     "IC08: correlates with the EOG channel"):
        assert expected in text, expected
    assert "sub-01_task-rest" in text


def test_only_existing_figures_are_shown_and_every_reference_resolves(results):
    html = _subject(results, "02")
    text = html.read_text()
    assert "EEG" not in re.sub(r"<style>.*?</style>", "", text, flags=re.S).replace("BOLD only", "")
    assert "R-peaks" not in text and "Registration" not in text  # no EEG run, no registration figure given
    srcs = re.findall(r'<img src="([^"]+)"', text)
    assert sorted(Path(s).name for s in srcs) == ["sub-02_task-rest_desc-carpet_bold.png",
                                                   "sub-02_task-rest_desc-motion_bold.svg"]
    assert all(s.startswith("../sub-02/figures/") for s in srcs)  # relative to the report folder
    for ref in refs(html):
        if ref != "group.html":
            assert (html.parent / ref).is_file(), ref


def test_reports_are_deterministic(results):
    first = _subject(results, "01").read_bytes()
    assert _subject(results, "01").read_bytes() == first
    group = results / "report/group.html"
    kwargs = dict(subject_reports=[results / "report/sub-01.html"])
    write_group_report(results / "neurofuse/dataset_index.json", group, **kwargs)
    again = group.read_bytes()
    write_group_report(results / "neurofuse/dataset_index.json", group, **kwargs)
    assert group.read_bytes() == again


def test_group_report_links_subjects_and_renders_fusion_outputs(results, tmp_path):
    reports = [_subject(results, sub) for sub in ("01", "02")]
    figures = results / "group/figures"
    figures.mkdir(parents=True)
    (figures / "task-rest_desc-glm_statmap.png").write_bytes(PNG)
    (figures / "task-rest_desc-training_curves.svg").write_text(SVG)
    card = results / "group/model/task-rest_modelcard.json"
    card.parent.mkdir()
    card.write_text(json.dumps({"data": {"subjects": ["01", "02"]}, "hyperparameters": {"epochs": 3},
                                "metrics": {"test": {"pearson_r": 0.412}}, "seed": 42, "software": {"torch": "2.13"}}))
    methods = results / "report/methods.md"
    methods.write_text("# Methods\n\nPreprocessed with **NeuroFuse**.\n\n- fMRI\n- EEG\n")
    html = write_group_report(results / "neurofuse/dataset_index.json", results / "report/group.html",
                              subject_reports=reports, files=[figures / "task-rest_desc-glm_statmap.png",
                                                              figures / "task-rest_desc-training_curves.svg", card],
                              methods=methods)
    text = html.read_text()
    assert '<a href="sub-01.html">sub-01</a>' in text and '<a href="sub-02.html">sub-02</a>' in text
    assert "EEG-BOLD pairs" in text and "Fusion: task rest" in text
    assert "pearson_r" in text and "0.412" in text and "hyperparameters" in text
    assert "<strong>NeuroFuse</strong>" in text and "<li>fMRI</li>" in text
    assert "Fusion model heatmaps" not in text  # not given, not shown
    for ref in refs(html):
        assert (html.parent / ref).is_file(), ref


def test_missing_figure_is_an_error_not_a_broken_image(results):
    missing = results / "sub-01/figures/sub-01_task-rest_desc-registration_bold.svg"
    with pytest.raises(NeuroFuseError, match="registration_bold.svg: the figure for the report is missing"):
        _subject(results, "01", files=[*_subject_files(results, "01"), missing])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("sub-01/eeg/sub-01_task-rest_desc-clean_log.json", "{not json", "not valid JSON"),
        ("sub-01/eeg/sub-01_task-rest_desc-clean_log.json", '{"ica": {"exclude": [1]}}', "lacks a field"),
        ("sub-01/func/sub-01_task-rest_desc-confounds_timeseries.tsv", "trans_x\n0.1\n", "framewise_displacement"),
    ],
)
def test_bad_input_names_the_file(results, name, content, message):
    (results / name).write_text(content)
    with pytest.raises(NeuroFuseError, match=message) as err:
        _subject(results, "01")
    assert str(err.value).startswith(str(results / name)) and "\n" not in str(err.value)


def test_foreign_and_misplaced_files_are_refused(results, tmp_path):
    stray = tmp_path / "notes.txt"
    stray.write_text("x")
    with pytest.raises(NeuroFuseError, match="notes.txt"):
        _subject(results, "01", files=[stray])
    other = results / "sub-02/figures/sub-02_task-rest_desc-carpet_bold.png"
    with pytest.raises(NeuroFuseError, match="belongs to no run of sub-01"):
        _subject(results, "01", files=[other])
    with pytest.raises(NeuroFuseError, match="subject 07 is not in the dataset index"):
        _subject(results, "07", files=[])


def test_text_to_html_renders_a_small_markdown_subset_safely():
    html = text_to_html("## Title\n\nA `x<y` and **b** and *i* [l](u.html)\nsame paragraph.\n\n- one\n- two")
    assert html.startswith("<h4>Title</h4>")
    assert "<code>x&lt;y</code>" in html and "<strong>b</strong>" in html and "<em>i</em>" in html
    assert '<a href="u.html">l</a> same paragraph.' in html and "<li>two</li>" in html


def test_every_caption_exists_and_renders():
    from neurofuse.config import REPO_ROOT
    from neurofuse.report.figures import CAPTIONS_DIR, GROUP_FIGURES, RUN_FIGURES

    names = {fig.caption for figs in RUN_FIGURES.values() for fig in figs} | {fig.caption for fig in GROUP_FIGURES}
    rules = "".join(p.read_text() for p in (REPO_ROOT / "workflow/rules").glob("*.smk"))
    names |= set(re.findall(r'caption="\.\./report/(\w+)\.rst"', rules))
    for name in sorted(names):
        html = text_to_html((CAPTIONS_DIR / f"{name}.rst").read_text())
        assert html.startswith("<p>") and len(html) > 200, name


def test_eeg_only_run_shows_eeg_only(results):
    index = DatasetIndex.from_json(results / "neurofuse/dataset_index.json")
    index.runs.append(_run("03", bold=False))
    index.to_json(results / "neurofuse/dataset_index.json")
    log = json.loads((results / "sub-01/eeg/sub-01_task-rest_desc-clean_log.json").read_text())
    log.update(band_hz=[1.0, None], ica=None)
    clean = results / "sub-03/eeg/sub-03_task-rest_desc-clean_log.json"
    clean.parent.mkdir(parents=True)
    clean.write_text(json.dumps(log))
    text = _subject(results, "03", files=[clean]).read_text()
    assert "EEG only" in text and "high-pass at 1 Hz" in text and "BOLD volumes" not in text
    assert "<img" not in text and "<h4>BOLD</h4>" not in text


def test_model_card_nesting_stays_flat_enough_to_read():
    card = {"hyperparameters": {"lr": 0.001, "bands": ["alpha", "beta"]},
            "validation": {"folds": [{"fold": 0, "held_out": ["sub-01"], "r": {"sub-01": 0.25}},
                                     {"fold": 1, "held_out": ["sub-02"], "best": None}]}}
    html = nested_table(card)
    # Plain objects below the top become key = value pairs, not another table...
    assert '<span class="pair">lr = 0.001</span>' in html and "bands = alpha, beta" in html
    # ...and a list of records is one table, a row per record, columns in first-seen order.
    assert html.count("<table") == 3  # the card, the validation object, the folds
    header = re.search(r"<thead><tr>(.*?)</tr></thead>", html)[1]
    assert re.findall(r">(\w+)</th>", header) == ["fold", "held_out", "r", "best"]
    assert "<td>sub-01 = 0.25</td>" in html and "<td>n/a</td>" in html
