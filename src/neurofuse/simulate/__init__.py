"""``neurofuse simulate``: a simultaneous EEG-fMRI BIDS dataset with known ground truth.

>>> from neurofuse.simulate import simulate_dataset
>>> summary = simulate_dataset("data/demo", preset="small", seed=1)   # doctest: +SKIP
>>> print(summary)                                                     # doctest: +SKIP

See :func:`simulate_dataset` for what is written and ``derivatives/simulation/truth.json``
in the output for the truth files and their conventions.
"""

from neurofuse.simulate.dataset import TRUTH_DIR, TRUTH_INDEX, SimulationSummary, simulate_dataset
from neurofuse.simulate.presets import PRESETS

__all__ = ["PRESETS", "TRUTH_DIR", "TRUTH_INDEX", "SimulationSummary", "simulate_dataset"]
