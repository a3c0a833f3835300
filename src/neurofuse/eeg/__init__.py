"""EEG preprocessing for simultaneous EEG-fMRI: one module per workflow step.

==========================  ===============================================  ==========================
step (workflow rule)        library function (paths in, FIF/TSV out)        in-memory function
==========================  ===============================================  ==========================
eeg_remove_gradient_...     :func:`gradient.remove_gradient_artifact_file`   :func:`remove_gradient_artifact`
eeg_remove_bcg_artifact     :func:`bcg.remove_bcg_artifact_file`             :func:`remove_bcg`
eeg_clean                   :func:`clean.clean_eeg_file`                     :func:`clean_eeg`
eeg_compute_band_power      :func:`bandpower.band_power_file`                :func:`band_power_table`
==========================  ===============================================  ==========================

Accuracy figures against the simulator's truth are printed by ``benchmarks/bench_eeg.py``.
"""

from neurofuse.eeg.bandpower import DEFAULT_BANDS, band_power_file, band_power_table
from neurofuse.eeg.bcg import detect_rpeaks, remove_bcg, remove_bcg_artifact_file, rpeaks_from_raw
from neurofuse.eeg.clean import clean_eeg, clean_eeg_file, detect_bad_channels
from neurofuse.eeg.gradient import remove_gradient_artifact, remove_gradient_artifact_file

__all__ = [
    "DEFAULT_BANDS",
    "band_power_file",
    "band_power_table",
    "clean_eeg",
    "clean_eeg_file",
    "detect_bad_channels",
    "detect_rpeaks",
    "remove_bcg",
    "remove_bcg_artifact_file",
    "remove_gradient_artifact",
    "remove_gradient_artifact_file",
    "rpeaks_from_raw",
]
