"""The Workflow Run RO-Crate of a run, from a small fake results folder and its manifest."""

import json
import zipfile

import pytest
import yaml
from rocrate.rocrate import ROCrate

from neurofuse.cli import main
from neurofuse.config import validate_config
from neurofuse.errors import NeuroFuseError
from neurofuse.provenance.audit import audit_results
from neurofuse.provenance.crate import CONFIG_NAME, PROFILES, write_crate
from neurofuse.provenance.hashing import sha256_file
from neurofuse.provenance.manifest import finalize_run, read_manifest
from neurofuse.report.methods import build_methods

from provenance_project import make_project, sha


@pytest.fixture()
def run(tmp_path):
    """A finished run: outputs, Snakemake records, a methods text, then finalize_run (manifest + crate)."""
    project = make_project(tmp_path)
    config = validate_config({"bids_dir": "../raw", "output_dir": "results", "seed": 7,
                              "eeg": {"bcg_method": "obs"}})
    methods = project["out"] / "report/methods.md"
    methods.parent.mkdir(parents=True)
    methods.write_text(build_methods(config).markdown())
    finalize_run("results", config, project["wf"], workdir=project["proj"],
                 env={"PYTHONHASHSEED": "0", "NEUROFUSE_CONTAINER": "ghcr.io/lab/neurofuse:0.1.0",
                      "NEUROFUSE_CONTAINER_DIGEST": "sha256:" + "ab" * 32})
    return {**project, "config": config, "manifest": read_manifest(project["out"] / "neurofuse/provenance.json")}


def _action(crate):
    actions = [e for e in crate.get_entities() if e.type == "CreateAction"]
    assert len(actions) == 1
    return actions[0]


def test_crate_loads_and_describes_the_run(run):
    out, manifest = run["out"], run["manifest"]
    crate = ROCrate(out)  # the results folder is the crate
    assert {e.id for e in crate.root_dataset["conformsTo"]} == set(PROFILES)
    assert {e["@id"] for e in crate.metadata.properties()["conformsTo"]} == {
        "https://w3id.org/ro/crate/1.1", "https://w3id.org/workflowhub/workflow-ro-crate/1.0"}

    workflow = crate.mainEntity
    assert workflow.id == "neurofuse/run/workflow/Snakefile"
    assert set(workflow.type) == {"File", "SoftwareSourceCode", "ComputationalWorkflow"}
    assert workflow["programmingLanguage"]["name"] == "Snakemake"
    assert (out / workflow.id).read_bytes() == (run["wf"] / "Snakefile").read_bytes()
    assert {e.id for e in workflow["hasPart"]} == {"neurofuse/run/workflow/rules/x.smk",
                                                   "neurofuse/run/workflow/scripts/make_a.py"}
    required = {e["name"]: e["softwareVersion"] for e in workflow["softwareRequirements"]}
    assert required["MNE-Python"] == manifest["environment"]["packages"]["mne"]
    assert required["Python"] == manifest["environment"]["python"]["version"]

    action = _action(crate)
    assert action["instrument"] is workflow
    assert action["startTime"] == manifest["run"]["started"] == "1970-01-01T00:00:01+00:00"
    assert action["endTime"] == manifest["run"]["ended"] == crate.root_dataset["datePublished"]
    objects = {e.id: e for e in action["object"]}
    dataset = objects[run["raw"].resolve().as_uri() + "/"]
    assert dataset.type == "Dataset" and dataset["exampleOfWork"]["name"] == "bids_dir"
    raw_file = dataset["hasPart"][0]
    assert raw_file.id.endswith("/sub-01/func/sub-01_bold.nii.gz") and raw_file["sha256"] == sha(b"raw bold")
    assert objects["#pv-seed"]["value"] == "7"
    config = objects[CONFIG_NAME]
    assert config["sha256"] == sha256_file(out / CONFIG_NAME)
    settings = yaml.safe_load((out / CONFIG_NAME).read_text())
    assert "bids_dir" not in settings and "output_dir" not in settings and settings["eeg"]["bcg_method"] == "obs"

    # Every file of the manifest is a result, with its SHA-256, size and format.
    results = {e.id: e for e in action["result"]}
    assert set(results) == set(manifest["files"])
    for rel, entry in manifest["files"].items():
        assert results[rel]["sha256"] == entry["sha256"] == sha256_file(out / rel)
        assert results[rel]["contentSize"] == str(entry["size"])
    assert results["sub-01/func/sub-01_desc-a_timeseries.tsv"]["encodingFormat"] == "text/tab-separated-values"
    assert results["sub-01/func/sub-01_desc-a_timeseries.tsv"]["description"] == "Made by the Snakemake rule make_a."
    mat_format = results["work/sub-01/x.mat"]["encodingFormat"]
    assert mat_format[0] == "application/octet-stream" and "ITK" in mat_format[1]["name"]

    trace = crate.get("neurofuse/provenance.json")
    assert trace["about"] is action and trace["sha256"] == sha256_file(out / "neurofuse/provenance.json")
    env = {e["name"]: e["value"] for e in action["environment"]}
    assert env["PYTHONHASHSEED"] == "0"
    image = action["containerImage"]
    assert (image["registry"], image["name"], image["tag"], image["sha256"]) == (
        "ghcr.io", "lab/neurofuse", "0.1.0", "ab" * 32)
    # The works the methods text cites, and only those.
    cited = {e.id for e in crate.root_dataset["citation"]}
    assert "https://doi.org/10.1016/j.neuroimage.2005.06.067" in cited  # Niazy 2005: bcg_method obs
    assert "https://doi.org/10.1006/nimg.1998.0361" not in cited  # Allen 1998: AAS, not used
    # The crate is not an output: the audit still passes, with nothing extra.
    report = audit_results(out)
    assert report.ok and report.counts["extra"] == 0


def test_crate_is_deterministic_and_rebuilt_from_the_results(run, tmp_path, capsys):
    out = run["out"]
    path = out / "ro-crate-metadata.json"
    first = path.read_bytes()
    stamp = path.stat().st_mtime_ns
    write_crate(out)
    assert path.read_bytes() == first and path.stat().st_mtime_ns == stamp  # unchanged, not rewritten
    # Only the run's own times (and the manifest's hash) move it.
    manifest_file = out / "neurofuse/provenance.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["run"]["ended"] = "2030-01-01T00:00:00+00:00"
    manifest_file.write_text(json.dumps(manifest))
    write_crate(out)
    changed = path.read_text()
    assert "2030-01-01T00:00:00+00:00" in changed and changed != first.decode()

    # neurofuse crate rebuilds the workflow copy from the recorded folder, and packs a zip.
    for copy in (out / "neurofuse/run").rglob("*"):
        if copy.is_file():
            copy.unlink()
    zipped = tmp_path / "crate.zip"
    assert main(["crate", str(out), "--zip", str(zipped), "--agent-name", "Ada Lovelace",
                 "--agent-id", "https://orcid.org/0000-0002-1825-0097"]) == 0
    assert "crate packed into" in capsys.readouterr().out
    assert (out / "neurofuse/run/workflow/scripts/make_a.py").is_file()
    with zipfile.ZipFile(zipped) as archive:
        names = set(archive.namelist())
    assert {"ro-crate-metadata.json", "neurofuse/run/workflow/Snakefile", "sub-01/func/sub-01_desc-a_timeseries.tsv",
            "neurofuse/provenance.json", CONFIG_NAME} <= names
    packed = ROCrate(zipped)
    assert _action(packed)["agent"]["name"] == "Ada Lovelace"
    assert _action(packed)["agent"].id == "https://orcid.org/0000-0002-1825-0097"


def test_bad_input_gives_one_clear_error(run, tmp_path, capsys):
    out = run["out"]
    with pytest.raises(NeuroFuseError, match="inside the crate"):
        write_crate(out, zip_path=out / "crate.zip")
    # The recorded workflow changed and the results hold no copy: the crate cannot describe the run.
    for copy in (out / "neurofuse/run/workflow").rglob("*"):
        if copy.is_file():
            copy.unlink()
    (run["wf"] / "scripts/make_a.py").write_text("print('edited after the run')\n")
    with pytest.raises(NeuroFuseError, match="scripts/make_a.py is not in the recorded workflow folder as it was"):
        write_crate(out)
    assert main(["crate", str(tmp_path / "nowhere")]) == 2
    assert "results folder does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["crate", str(empty)]) == 2
    assert "no provenance manifest" in capsys.readouterr().err
