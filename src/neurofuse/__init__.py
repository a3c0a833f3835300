"""NeuroFuse: a reproducible, BIDS-aware EEG-fMRI workflow.

All logic lives in this library; ``workflow/`` only wires it into Snakemake.
"""

__version__ = "0.1.0"
