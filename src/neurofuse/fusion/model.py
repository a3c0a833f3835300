"""The deep fusion model (PyTorch): two sequence encoders, a contrastive objective and a BOLD head.

* EEG encoder: a window of ``W`` volumes of band power (bands x channels per volume,
  log, z-scored) -> an embedding ``z_e``.
* fMRI encoder: the same window of region (parcel) BOLD -> an embedding ``z_f``.
* InfoNCE (van den Oord 2018, symmetric as in CLIP): ``z_e`` and ``z_f`` of the same
  time point are pulled together, other time points in the batch pushed apart.
* Head: ``z_e`` -> the parcel BOLD at the last volume of the window (EEG -> BOLD).

Both encoders are the same module with ``arch="transformer"`` (token per volume,
learned position embedding, self-attention) or ``arch="cnn"`` (two 1-D convolutions over
time). Both end by flattening the window, so the read-out keeps each volume's position:
the lag between EEG and BOLD (the haemodynamic delay) is what has to be learnt.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ARCHITECTURES", "SequenceEncoder", "FusionModel", "info_nce"]

ARCHITECTURES = ("transformer", "cnn")


class SequenceEncoder(nn.Module):
    """(batch, window, features) -> (batch, embedding)."""

    def __init__(self, n_features: int, window: int, *, arch: str = "transformer", width: int = 32,
                 embedding: int = 16, layers: int = 2, heads: int = 4, dropout: float = 0.2):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {arch!r}; use one of {ARCHITECTURES}")
        self.arch = arch
        self.inp = nn.Sequential(nn.Dropout(dropout), nn.Linear(n_features, width))
        if arch == "transformer":
            self.pos = nn.Parameter(torch.zeros(1, window, width))
            nn.init.normal_(self.pos, std=0.02)
            layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=dropout,
                                               batch_first=True, norm_first=True)
            self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        else:
            self.body = nn.Sequential(
                nn.Conv1d(width, width, 5, padding=2), nn.GELU(), nn.Dropout(dropout),
                nn.Conv1d(width, width, 5, padding=2), nn.GELU(),
            )
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(window * width, embedding))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        if self.arch == "transformer":
            h = self.body(h + self.pos)
        else:
            h = self.body(h.transpose(1, 2)).transpose(1, 2)
        return self.out(h.flatten(1))


class FusionModel(nn.Module):
    """EEG and fMRI encoders with a shared embedding space and an EEG -> BOLD head."""

    def __init__(self, n_eeg: int, n_regions: int, window: int, **encoder):
        super().__init__()
        self.eeg = SequenceEncoder(n_eeg, window, **encoder)
        self.fmri = SequenceEncoder(n_regions, window, **encoder)
        self.head = nn.Linear(self.eeg.out[-1].out_features, n_regions)

    def forward(self, eeg: torch.Tensor, fmri: torch.Tensor | None = None):
        z_e = self.eeg(eeg)
        z_f = self.fmri(fmri) if fmri is not None else None
        return z_e, z_f, self.head(z_e)


def info_nce(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Symmetric InfoNCE: row ``i`` of ``z_a`` matches row ``i`` of ``z_b`` only."""
    a = F.normalize(z_a, dim=1)
    b = F.normalize(z_b, dim=1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
