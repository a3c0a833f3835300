"""A Workflow Run RO-Crate of a finished run (https://w3id.org/ro/wfrun/workflow/0.5).

The results folder is the crate: ``<output_dir>/ro-crate-metadata.json`` describes it,
built with the ``rocrate`` library (RO-Crate 1.1, as the Workflow Run Crate 0.5 profile
asks) from the provenance manifest alone:

* the workflow: a copy of the files the manifest hashed (Snakefile, rules, scripts,
  schemas, environments, report captions) under ``neurofuse/run/workflow/``, the main
  one a ``ComputationalWorkflow`` in Snakemake, with the software it required;
* the configuration of the run, ``neurofuse/run/config.yaml`` (the validated config
  without ``bids_dir`` and ``output_dir``, which are the crate's input and root);
* one ``CreateAction``: instrument = the workflow, object = the BIDS dataset (with every
  raw file the jobs read, by SHA-256), the config and the seed, result = every file of
  the manifest with its SHA-256, size and format, start and end time from the manifest,
  the recorded environment variables and container, the agent when given;
* the manifest itself (``about`` the action), the methods text and ``CITATION.md``, and
  the works the methods text cites.

Deterministic: the same manifest and files give the same bytes (no time but the run's
start and end recorded in the manifest, stable identifiers, sorted entities). The crate
is written after the manifest and is not listed in it (see
:data:`~neurofuse.provenance.hashing.CRATE_NAME`); two runs' crates differ by their run
times only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from neurofuse.errors import NeuroFuseError
from neurofuse.io import atomic_path, atomic_write_text
from neurofuse.provenance.description import DESCRIPTION_NAME, read_source_description
from neurofuse.provenance.hashing import CRATE_NAME, RUN_DIR, sha256_file
from neurofuse.provenance.manifest import RAW_PREFIX, manifest_path, read_manifest

#: Profiles the crate conforms to: (name, version) by permalink.
PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": ("Process Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/workflow/0.5": ("Workflow Run Crate", "0.5"),
    "https://w3id.org/workflowhub/workflow-ro-crate/1.0": ("Workflow RO-Crate", "1.0"),
}
#: RO-Crate version of the Workflow Run Crate 0.5 profile.
RO_CRATE_VERSION = "1.1"
#: JSON-LD context of the workflow-run terms (``environment``, ``containerImage``).
WFRUN_CONTEXT = "https://w3id.org/ro/terms/workflow-run/context"

CONFIG_NAME = f"{RUN_DIR}/config.yaml"
WORKFLOW_COPY = f"{RUN_DIR}/workflow"
#: Config keys that are locations, not settings: the crate's input dataset and root.
LOCATION_KEYS = ("bids_dir", "output_dir")
WORKFLOW_LICENSE = "https://spdx.org/licenses/Apache-2.0"

#: encodingFormat by file name ending (IANA media types; formats without one get a
#: contextual entity naming their specification, see :data:`FORMAT_SPECS`).
MEDIA_TYPES = (
    (".nii.gz", "application/gzip"),
    (".nii", "application/octet-stream"),
    (".json", "application/json"),
    (".tsv", "text/tab-separated-values"),
    (".html", "text/html"),
    (".md", "text/markdown"),
    (".svg", "image/svg+xml"),
    (".png", "image/png"),
    (".fif", "application/octet-stream"),
    (".pt", "application/zip"),
    (".mat", "application/octet-stream"),
    (".yaml", "application/yaml"),
    (".yml", "application/yaml"),
    (".py", "text/x-python"),
    (".smk", "text/plain"),
    (".rst", "text/x-rst"),
    (".vhdr", "text/plain"),
    (".vmrk", "text/plain"),
    (".eeg", "application/octet-stream"),
    (".edf", "application/octet-stream"),
    (".set", "application/octet-stream"),
    (".bidsignore", "text/plain"),
    ("Snakefile", "text/plain"),
)
#: Specifications of formats that have no media type of their own.
FORMAT_SPECS = {
    ".nii.gz": ("https://nifti.nimh.nih.gov/nifti-1", "NIfTI-1 (gzip-compressed)"),
    ".nii": ("https://nifti.nimh.nih.gov/nifti-1", "NIfTI-1"),
    ".fif": ("https://mne.tools/stable/generated/mne.io.read_raw_fif.html", "FIF (MNE-Python raw)"),
    ".pt": ("https://pytorch.org/docs/stable/notes/serialization.html", "PyTorch serialization (torch.save)"),
    ".mat": ("https://itk.org/Doxygen/html/classitk_1_1MatlabTransformIO.html", "ITK transform (MATLAB format)"),
    ".vhdr": ("https://www.brainproducts.com/support-resources/brainvision-core-data-format-1-0/",
              "BrainVision Core Data Format 1.0"),
}


def _ending(name: str, table) -> Any:
    for suffix, value in table:
        if name.endswith(suffix):
            return value
    return None


def _media(rel: str) -> str:
    return _ending(Path(rel).name, MEDIA_TYPES) or "application/octet-stream"


def _spec(rel: str) -> tuple[str, str] | None:
    return _ending(Path(rel).name, list(FORMAT_SPECS.items()))


# ------------------------------------------------------------------------ run files
def config_text(config: Mapping[str, Any]) -> str:
    """``neurofuse/run/config.yaml``: the run's settings, without its locations."""
    plain = json.loads(json.dumps({k: v for k, v in config.items() if k not in LOCATION_KEYS}, sort_keys=True))
    return ("# The configuration of this NeuroFuse run (validated, defaults filled in), without bids_dir and\n"
            "# output_dir. Repeat the run with:\n"
            "#   snakemake --configfile neurofuse/run/config.yaml --config bids_dir=DATASET output_dir=RESULTS\n"
            + yaml.safe_dump(plain, sort_keys=True))


def write_run_files(results_dir: str | os.PathLike, manifest: Mapping[str, Any]) -> list[str]:
    """Copy the workflow files the manifest hashed into ``neurofuse/run/workflow/`` and write the config.

    A copy already there with the recorded SHA-256 is kept; otherwise the file is taken
    from the recorded workflow folder, which must still hold it with that hash. Copies of
    files the manifest no longer lists are removed. Returns the files' paths (relative to
    the results folder).
    """
    root = Path(results_dir)
    workflow = manifest.get("workflow") or {}
    source_dir = Path(workflow.get("dir") or "")
    recorded: Mapping[str, str] = workflow.get("workflow_files") or {}
    written = []
    for rel, sha in sorted(recorded.items()):
        dest = root / WORKFLOW_COPY / rel
        written.append(f"{WORKFLOW_COPY}/{rel}")
        if dest.is_file() and sha256_file(dest) == sha:
            continue
        src = source_dir / rel
        if not src.is_file() or sha256_file(src) != sha:
            raise NeuroFuseError(
                f"the workflow file {rel} is not in the recorded workflow folder as it was when the run ended", src,
                "check out the recorded git commit (see the manifest) or rebuild the crate where the run was made")
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
    copy_dir = root / WORKFLOW_COPY
    if copy_dir.is_dir():
        for path in sorted(copy_dir.rglob("*")):
            if path.is_file() and path.relative_to(copy_dir).as_posix() not in recorded:
                path.unlink()
    atomic_write_text(root / CONFIG_NAME, config_text(manifest.get("config") or {}), only_if_changed=True)
    return written + [CONFIG_NAME]


# --------------------------------------------------------------------------- crate
def _doi_link(doi: str | None) -> str | None:
    if not doi:
        return None
    text = doi.strip()
    for prefix in ("https://doi.org/", "http://doi.org/", "doi:"):
        if text.lower().startswith(prefix):
            text = text[len(prefix):]
    return f"https://doi.org/{text}"


def _file_properties(rel: str, sha: str | None, size: int | None, description: str | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"name": Path(rel).name, "encodingFormat": _media(rel)}
    if sha:
        props["sha256"] = sha
    if size is not None:
        props["contentSize"] = str(size)
    if description:
        props["description"] = description
    return props


class _Builder:
    """Adds entities to a ``rocrate.ROCrate`` in a fixed order."""

    def __init__(self, results: Path, manifest: Mapping[str, Any]):
        from rocrate.rocrate import ROCrate

        self.results, self.manifest = results, manifest
        self.crate = ROCrate(version=RO_CRATE_VERSION)
        self.crate.metadata.extra_contexts.append(WFRUN_CONTEXT)

    def context(self, identifier: str, properties: Mapping[str, Any]):
        from rocrate.model.contextentity import ContextEntity

        existing = self.crate.get(identifier)
        return existing if existing is not None else self.crate.add(
            ContextEntity(self.crate, identifier, properties=dict(properties)))

    def local_file(self, rel: str, props: dict[str, Any]):
        """A file of the results folder (its source, for ``--zip``), with a format entity when it has a spec."""
        spec = _spec(rel)
        if spec:
            fmt = self.context(spec[0], {"@type": "WebPage", "name": spec[1]})
            props["encodingFormat"] = [props["encodingFormat"], fmt]
        return self.crate.add_file(source=self.results / rel, dest_path=rel, properties=props)

    def json_text(self) -> str:
        """The metadata file as the library serialises it (also inside ``--zip``)."""
        return b"".join(chunk for _name, chunk in self.crate.metadata.stream()).decode("utf-8")


def _made_by(entry: Mapping[str, Any], jobs: Mapping[str, Any]) -> str | None:
    if entry.get("job") and entry["job"] in jobs:
        return f"Made by the Snakemake rule {jobs[entry['job']]['rule']}."
    if entry.get("made_by"):
        return f"Made by {entry['made_by']}."
    return None


def _software(manifest: Mapping[str, Any], results: Path) -> list[tuple[str, str, str]]:
    """(name, distribution, version) of the software the run used (the methods text's list)."""
    from neurofuse.report.methods import DatasetFacts, build_methods

    env = manifest.get("environment") or {}
    versions = dict(env.get("packages") or {})
    versions["python"] = (env.get("python") or {}).get("version") or "unknown"
    index = results / "neurofuse" / "dataset_index.json"
    try:
        facts = DatasetFacts.from_index_file(index)
    except NeuroFuseError:
        facts = None
    try:
        return build_methods(manifest["config"], facts, versions).software
    except (KeyError, TypeError):
        return []  # a config without the stages' settings (not a NeuroFuse workflow): no list


def _container(b: _Builder, env: Mapping[str, str]):
    image = env.get("NEUROFUSE_CONTAINER", "").strip()
    if not image:
        return None
    from neurofuse.provenance.description import container_info

    info = container_info(env) or {}
    ref = info.get("Tag", image)
    registry, _, path = ref.partition("/")
    if not path or ("." not in registry and ":" not in registry and registry != "localhost"):
        registry, path = "docker.io", ref
    name, _, tag = path.rpartition(":") if ":" in path.rsplit("/", 1)[-1] else (path, "", "")
    kind = "SIFImage" if info.get("Type") == "apptainer" else "DockerImage"
    props = {"@type": "ContainerImage", "additionalType": {"@id": f"https://w3id.org/ro/terms/workflow-run#{kind}"},
             "registry": registry, "name": name}
    if tag:
        props["tag"] = tag
    digest = env.get("NEUROFUSE_CONTAINER_DIGEST", "").strip()
    if digest.startswith("sha256:"):
        props["sha256"] = digest[len("sha256:"):]
    return b.context("#container-image", props)


def build_crate(
    results_dir: str | os.PathLike,
    *,
    manifest_file: str | os.PathLike | None = None,
    agent: Mapping[str, str] | None = None,
):
    """The ``rocrate.rocrate.ROCrate`` of the run recorded in ``results_dir``.

    Writes the workflow copy and config first (:func:`write_run_files`). ``agent``:
    ``{"name": ..., "id": ...}`` of the person who ran it (``id`` an ORCID URL), if known.
    """
    from neurofuse import __version__
    from neurofuse.report.references import references_in

    results = Path(results_dir)
    mpath = Path(manifest_file) if manifest_file is not None else manifest_path(results)
    manifest = read_manifest(mpath)
    write_run_files(results, manifest)
    b = _Builder(results, manifest)
    crate = b.crate
    files: Mapping[str, Mapping[str, Any]] = manifest["files"]
    jobs: Mapping[str, Mapping[str, Any]] = manifest.get("jobs") or {}
    dataset = manifest.get("dataset") or {}
    env = manifest.get("environment") or {}
    times = manifest.get("run") or {}
    end_time = times.get("ended") or manifest.get("created")

    # Root data entity.
    root = crate.root_dataset
    description = {}
    if (results / DESCRIPTION_NAME).is_file():
        try:
            description = json.loads((results / DESCRIPTION_NAME).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            description = {}
    root["name"] = description.get("Name") or f"NeuroFuse derivatives of {dataset.get('name') or 'a BIDS dataset'}"
    root["description"] = ("BIDS-Derivatives dataset made by one run of the NeuroFuse workflow (simultaneous EEG-fMRI): "
                           "preprocessed fMRI and EEG, EEG-informed GLM and fusion-model maps, reports, provenance.")
    if end_time:
        root["datePublished"] = end_time
    root["conformsTo"] = [b.context(pid, {"@type": "CreativeWork", "name": name, "version": version})
                          for pid, (name, version) in PROFILES.items()]
    source_license = read_source_description(dataset.get("bids_dir") or "").get("License")
    if isinstance(source_license, str) and source_license.strip():
        root["license"] = b.context("#license", {"@type": "CreativeWork", "name": source_license.strip(),
                                                 "description": "License of the source dataset (its "
                                                                "dataset_description.json); derived data follow it."})

    # The workflow and what it needs.
    workflow_files = sorted((manifest.get("workflow") or {}).get("workflow_files") or {})
    software = _software(manifest, results)
    versions = {dist: version for _name, dist, version in software}
    requirements = []
    for name, dist, version in software:
        if dist in ("neurofuse",):
            continue
        if dist == "python":
            ident = f"#software-python-{version}"
        else:
            ident = f"https://pypi.org/project/{dist}/{version.split('+')[0]}/"
        requirements.append(b.context(ident, {"@type": "SoftwareApplication", "name": name, "softwareVersion": version}))
    ants = (env.get("tools") or {}).get("ANTs")
    if ants:
        requirements.append(b.context(f"#software-ants-{ants['via']}-{ants['version']}", {
            "@type": "SoftwareApplication", "name": f"ANTs (bundled with {ants['via']})",
            "softwareVersion": ants["version"]}))
    license_entity = b.context(WORKFLOW_LICENSE, {"@type": "CreativeWork", "name": "Apache License 2.0",
                                                  "identifier": "Apache-2.0"})
    recorded_workflow = manifest.get("workflow") or {}
    snakefile = recorded_workflow.get("snakefile") or "Snakefile"
    main_rel = f"{WORKFLOW_COPY}/{snakefile}"
    git = recorded_workflow.get("git") or {}
    main_props = {
        "name": "NeuroFuse", "version": manifest.get("neurofuse_version") or __version__,
        "description": "Snakemake workflow for simultaneous EEG-fMRI from BIDS: fMRI preprocessing, EEG gradient and "
                       "BCG artifact removal, EEG-informed GLM and a deep EEG-fMRI fusion model.",
        "encodingFormat": "text/plain", "license": license_entity, "softwareRequirements": requirements,
    }
    if (results / main_rel).is_file():
        main_props["sha256"] = sha256_file(results / main_rel)
        main_source, main_dest = results / main_rel, main_rel
    else:  # the manifest hashed no Snakefile: point at where it was run from
        main_source, main_dest = (Path(recorded_workflow.get("dir") or ".") / snakefile).absolute().as_uri(), None
    if git.get("commit"):
        main_props["identifier"] = f"git:{git['commit']}" + ("-dirty" if git.get("dirty") else "")
    snakemake_version = versions.get("snakemake") or (env.get("packages") or {}).get("snakemake")
    main = crate.add_workflow(source=main_source, dest_path=main_dest, main=True, lang="snakemake",
                              lang_version=snakemake_version, properties=main_props)
    parts = []
    for rel in workflow_files:
        full = f"{WORKFLOW_COPY}/{rel}"
        if full == main_rel:
            continue
        props = _file_properties(full, sha256_file(results / full), (results / full).stat().st_size,
                                 "Part of the NeuroFuse workflow, as it was when the run ended.")
        props["@type"] = ["File", "SoftwareSourceCode"]
        parts.append(b.local_file(full, props))
    main["hasPart"] = parts

    # Formal parameters: the dataset and the seed (the config file is read from a fixed path).
    p_bids = b.context("#param-bids_dir", {
        "@type": "FormalParameter", "name": "bids_dir", "additionalType": "Dataset", "valueRequired": True,
        "description": "The BIDS dataset to process (config key bids_dir).",
        "conformsTo": {"@id": "https://bioschemas.org/profiles/FormalParameter/1.0-RELEASE"}})
    p_seed = b.context("#param-seed", {
        "@type": "FormalParameter", "name": "seed", "additionalType": "Integer", "valueRequired": False,
        "description": "Random seed of every step that draws random numbers (config key seed).",
        "conformsTo": {"@id": "https://bioschemas.org/profiles/FormalParameter/1.0-RELEASE"}})
    main["input"] = [p_bids, p_seed]

    # Inputs: the BIDS dataset and every raw file a job read, by hash.
    base = (dataset.get("url") or "").rstrip("/")
    raw_inputs: dict[str, str | None] = {}
    for job in jobs.values():
        for ref, sha in (job.get("inputs") or {}).items():
            if ref.startswith(RAW_PREFIX):
                raw_inputs[ref[len(RAW_PREFIX):]] = sha
    input_files = []
    for rel, sha in sorted(raw_inputs.items()) if base else ():
        props = _file_properties(rel, sha, None, "A file of the source dataset that a job read.")
        props["name"] = rel
        input_files.append(crate.add_file(source=f"{base}/{quote(rel)}", properties=props))
    ds_props: dict[str, Any] = {"name": dataset.get("name") or Path(dataset.get("bids_dir") or "dataset").name,
                                "description": "The BIDS dataset the run read (config bids_dir).",
                                "url": base, "exampleOfWork": p_bids, "hasPart": input_files}
    if _doi_link(dataset.get("doi")):
        ds_props["identifier"] = _doi_link(dataset.get("doi"))
    source = crate.add_dataset(source=base + "/", properties=ds_props)
    p_bids["workExample"] = source
    input_ids = {entity.id for entity in input_files}
    root["hasPart"] = [entity for entity in root.get("hasPart", []) if entity.id not in input_ids]
    seed_value = b.context("#pv-seed", {"@type": "PropertyValue", "name": "seed", "value": str(manifest.get("seed")),
                                        "exampleOfWork": p_seed})
    p_seed["workExample"] = seed_value
    config_entity = b.local_file(CONFIG_NAME, _file_properties(
        CONFIG_NAME, sha256_file(results / CONFIG_NAME), (results / CONFIG_NAME).stat().st_size,
        "The validated configuration of the run (defaults filled in), without bids_dir and output_dir."))
    config_entity["name"] = "Configuration of the run"

    # Outputs: every file of the manifest.
    results_entities = []
    for rel in sorted(files):
        entry = files[rel]
        results_entities.append(b.local_file(rel, _file_properties(rel, entry.get("sha256"), entry.get("size"),
                                                                  _made_by(entry, jobs))))

    # The run.
    digest = hashlib.sha256(mpath.read_bytes()).hexdigest()
    action_props: dict[str, Any] = {
        "name": f"NeuroFuse run on {dataset.get('name') or 'a BIDS dataset'}",
        "description": (f"snakemake with the NeuroFuse workflow, seed {manifest.get('seed')}, on {base}: "
                        f"{len(results_entities)} output files, {len(jobs)} jobs."),
        "actionStatus": {"@id": "http://schema.org/CompletedActionStatus"},
    }
    if times.get("started"):
        action_props["startTime"] = times["started"]
    if end_time:
        action_props["endTime"] = end_time
    action = crate.add_action(main, identifier=f"#run-{digest[:16]}", object=[source, config_entity, seed_value],
                              result=results_entities, properties=action_props)
    recorded_env = env.get("env") or {}
    if recorded_env:
        action["environment"] = [b.context(f"#env-{name}", {"@type": "PropertyValue", "name": name, "value": value})
                                 for name, value in sorted(recorded_env.items())]
    image = _container(b, recorded_env)
    if image is not None:
        action["containerImage"] = image
    if agent and agent.get("name"):
        person = b.context(agent.get("id") or "#agent", {"@type": "Person", "name": agent["name"]})
        action["agent"] = person
    root["mentions"] = [action]

    # The manifest (a trace of the run) and the works the methods text cites.
    trace = b.local_file(str(mpath.relative_to(results)) if mpath.is_relative_to(results) else mpath.name,
                         _file_properties(mpath.name, sha256_file(mpath), mpath.stat().st_size,
                                          "NeuroFuse provenance manifest: SHA-256 of every output, the job, inputs, "
                                          "params and code behind each, config, seed, git commit, every package."))
    trace["about"] = action
    methods_file = results / "report" / "methods.md"
    if methods_file.is_file():
        cited = references_in(methods_file.read_text(encoding="utf-8"))
        root["citation"] = [b.context(ref.link, {"@type": "ScholarlyArticle", "name": ref.title,
                                                 "author": ", ".join(ref.authors) + (", et al." if ref.more_authors else ""),
                                                 "datePublished": str(ref.year),
                                                 "description": f"{ref.venue} {ref.details}".strip()})
                            for ref in cited]
    return b


def write_crate(
    results_dir: str | os.PathLike,
    *,
    manifest_file: str | os.PathLike | None = None,
    zip_path: str | os.PathLike | None = None,
    agent: Mapping[str, str] | None = None,
) -> Path:
    """Write ``ro-crate-metadata.json`` into ``results_dir`` (and, with ``zip_path``, the whole crate as a zip).

    Returns the metadata file's path. The metadata is written only when it changes.
    """
    results = Path(results_dir)
    if not results.is_dir():
        raise NeuroFuseError("the results folder does not exist", results, "give the workflow's output_dir")
    target = Path(zip_path).absolute() if zip_path is not None else None
    if target is not None and target.is_relative_to(results.absolute()):
        raise NeuroFuseError("the zip file would be inside the crate it packs", target,
                             "write it outside the results folder")
    builder = build_crate(results, manifest_file=manifest_file, agent=agent)
    path = results / CRATE_NAME
    atomic_write_text(path, builder.json_text(), only_if_changed=True)
    if target is not None:
        with atomic_path(target, suffix=".zip") as tmp:
            builder.crate.write_zip(tmp)
    return path
