"""`snakemake --report`: every figure a rule writes is in the report, each with a caption."""

import shutil
from pathlib import Path

import pytest
import yaml

from neurofuse.bids.skeleton import write_skeleton
from neurofuse.config import REPO_ROOT
from neurofuse.report.figures import CAPTIONS_DIR, GROUP_FIGURES, RUN_FIGURES

FIGURE_SUFFIXES = (".png", ".svg")


@pytest.fixture(scope="module")
def rules(tmp_path_factory):
    """The parsed rules of the real Snakefile, over a dataset with every kind of run."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings, StorageSettings

    tmp = tmp_path_factory.mktemp("captions")
    spec = yaml.safe_load((REPO_ROOT / "tests/unit/bids_skeletons/sessions_runs.yaml").read_text())
    write_skeleton(tmp / "bids", spec)
    shutil.copytree(REPO_ROOT / "config", tmp / "project/config")
    config = {"bids_dir": str(tmp / "bids"), "index": {"check_images": False}}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp)
        with SnakemakeApi(OutputSettings(quiet={"all"})) as api:
            workflow = api.workflow(snakefile=REPO_ROOT / "workflow/Snakefile", workdir=tmp / "project",
                                    config_settings=ConfigSettings(config=config),
                                    resource_settings=ResourceSettings(), storage_settings=StorageSettings())
            workflow.dag(DAGSettings())
            return list(workflow._workflow.rules)


def test_every_figure_is_in_the_report_with_a_caption(rules):
    figures, captions = [], set()
    for rule in rules:
        for output in rule.output:
            flagged = output.flags.get("report")
            if str(output).endswith(FIGURE_SUFFIXES):
                assert flagged, f"{rule.name}: {output} is a figure but not in `snakemake --report`"
                figures.append(output)
            if flagged:
                assert flagged.caption is not None, f"{rule.name}: {output} has no caption"
                caption = Path(flagged.caption.get_path_or_uri(secret_free=True))
                assert caption.is_file() and len(caption.read_text().split()) >= 25, caption
                assert flagged.category, f"{rule.name}: {output} has no category"
                captions.add(caption.resolve())
    assert len(figures) >= 12
    # The HTML reports show the same figures with the same caption files.
    html = {(CAPTIONS_DIR / f"{fig.caption}.rst").resolve()
            for fig in [*GROUP_FIGURES, *(f for figs in RUN_FIGURES.values() for f in figs)]}
    assert html <= captions
    unused = {p.resolve() for p in CAPTIONS_DIR.glob("*.rst")} - captions - {(CAPTIONS_DIR / "workflow.rst").resolve()}
    assert not unused, f"caption files no rule uses: {sorted(p.name for p in unused)}"


def test_methods_text_is_in_the_report(rules):
    by_name = {rule.name: rule for rule in rules}
    methods = by_name["report_write_methods"].output
    assert methods[0].flags.get("report") and str(methods[0]).endswith("report/methods.md")
    assert str(methods[1]).endswith("CITATION.md")
    group_inputs = [str(f) for f in by_name["report_build_group"].input]
    assert str(methods[0]) in group_inputs
