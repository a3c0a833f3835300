"""Provenance of a workflow run and its audit.

* :func:`write_derivative_description` — ``dataset_description.json`` + ``.bidsignore``
  of the derivatives root.
* :func:`build_manifest` / :func:`write_manifest` / :func:`read_manifest` — the
  manifest ``<output_dir>/neurofuse/provenance.json`` (files, jobs, inputs, code,
  config, seed, software).
* :func:`finalize_run` — both of the above and the RO-Crate, called by the Snakefile's ``onsuccess:``.
* :func:`write_crate` — the Workflow Run RO-Crate of a finished run (``ro-crate-metadata.json``).
* :func:`audit_results` — check a results folder against its manifest;
  :func:`rerun_and_compare` — re-execute the recorded run and compare the outputs.
"""

from neurofuse.provenance.crate import build_crate, write_crate
from neurofuse.provenance.description import derivative_description, write_bidsignore, write_derivative_description
from neurofuse.provenance.manifest import (
    build_manifest,
    dumps_manifest,
    finalize_run,
    manifest_path,
    read_manifest,
    write_manifest,
)

__all__ = [
    "build_crate",
    "build_manifest",
    "derivative_description",
    "dumps_manifest",
    "finalize_run",
    "manifest_path",
    "read_manifest",
    "write_bidsignore",
    "write_derivative_description",
    "write_crate",
    "write_manifest",
]
