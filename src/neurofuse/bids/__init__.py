"""BIDS input: the one dataset index (:mod:`.index`), EEG markers (:mod:`.markers`), dry skeletons (:mod:`.skeleton`)."""

from .index import BoldInfo, DatasetIndex, EegInfo, Run, build_index

__all__ = ["build_index", "DatasetIndex", "Run", "BoldInfo", "EegInfo"]
