"""Privacy: find identifying data in a BIDS dataset, write a de-identified copy, gate uploads.

* :func:`scan_dataset` (``neurofuse privacy-check``) — every identifying item in
  headers, sidecars, tables and EEG files, and anatomical images that show a face.
* :func:`deidentify_dataset` (``neurofuse deidentify``) — a cleaned copy, never touching
  the input.
* :func:`privacy_gate` — the workflow's check before any data leaves the machine.
"""

from neurofuse.privacy.report import Finding, ScanReport
from neurofuse.privacy.scan import scan_dataset

__all__ = ["Finding", "ScanReport", "scan_dataset"]
