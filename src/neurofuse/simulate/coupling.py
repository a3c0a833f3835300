"""User-defined coupling layouts: which EEG band drives the BOLD of which region, and how.

A layout maps a band to ``{"coupling": c, "spheres": [((x, y, z), r), ...], "description": ...}``
(the form of :data:`neurofuse.simulate.bold.REGIONS`, the default layout). On the command
line each sphere is one ``--coupling BAND:STRENGTH:X,Y,Z:RADIUS``:

* ``BAND``: one of the workflow's EEG bands (``eeg.bands`` in ``config/config.yaml``);
* ``STRENGTH``: signed relative BOLD change per unit of the HRF-convolved z-scored driver,
  0 < |STRENGTH| <= :data:`MAX_STRENGTH` (the default layout uses -0.03 and +0.025);
* ``X,Y,Z``: sphere centre in MNI mm, inside the template brain;
* ``RADIUS``: sphere radius in mm (:data:`RADIUS_RANGE`).

Repeating a band adds spheres to its region (with the same strength). A custom layout
replaces the default one entirely.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from neurofuse.errors import NeuroFuseError

#: Largest accepted |STRENGTH| (a 20 % BOLD change per driver SD is already unphysiological).
MAX_STRENGTH = 0.2
#: Accepted sphere radii (mm).
RADIUS_RANGE = (2.0, 40.0)
#: Bands the EEG always carries a rhythm for, with their drivers drawn first (default layout).
BUILTIN_RHYTHMS: tuple[str, ...] = ("alpha", "beta")

_FORM = "use BAND:STRENGTH:X,Y,Z:RADIUS, e.g. theta:0.03:0,40,20:22"


@lru_cache(maxsize=1)
def workflow_bands() -> dict[str, tuple[float, float]]:
    """The workflow's EEG bands (Hz edges) from the config defaults (``eeg.bands``)."""
    from neurofuse.config import bands_by_frequency, validate_config

    return {k: (float(v[0]), float(v[1])) for k, v in bands_by_frequency(validate_config({})["eeg"]["bands"]).items()}


@dataclass(frozen=True)
class CouplingSpec:
    """One ``--coupling`` value: a sphere coupled to a band with a signed strength."""

    band: str
    strength: float
    centre: tuple[float, float, float]
    radius: float

    def text(self) -> str:
        """The spec in command-line form (round-trips through :func:`parse_coupling`)."""
        return f"{self.band}:{self.strength:g}:{','.join(f'{c:g}' for c in self.centre)}:{self.radius:g}"


def _bad(text: str, problem: str, hint: str = _FORM) -> NeuroFuseError:
    return NeuroFuseError(f"--coupling {text!r}: {problem}", hint=hint)


def _number(text: str, part: str, what: str) -> float:
    try:
        value = float(part)
    except ValueError:
        raise _bad(text, f"{what} {part!r} is not a number") from None
    if not math.isfinite(value):
        raise _bad(text, f"{what} must be finite, got {part!r}")
    return value


def parse_coupling(text: str) -> CouplingSpec:
    """Parse and check one ``BAND:STRENGTH:X,Y,Z:RADIUS`` (raises :class:`NeuroFuseError`)."""
    parts = str(text).strip().split(":")
    if len(parts) != 4:
        raise _bad(text, f"expected 4 fields separated by ':', got {len(parts)}")
    band = parts[0].strip().lower()
    bands = workflow_bands()
    if band not in bands:
        raise _bad(text, f"unknown band {parts[0]!r}", f"use one of the workflow's bands: {', '.join(bands)}")
    strength = _number(text, parts[1], "strength")
    if strength == 0 or abs(strength) > MAX_STRENGTH:
        raise _bad(text, f"strength must be non-zero with |strength| <= {MAX_STRENGTH}, got {strength:g}",
                   "pass a signed relative BOLD change such as -0.03 or 0.025")
    coords = parts[2].split(",")
    if len(coords) != 3:
        raise _bad(text, f"centre needs 3 comma-separated MNI coordinates, got {len(coords)}")
    centre = tuple(_number(text, c, "coordinate") for c in coords)
    radius = _number(text, parts[3], "radius")
    lo, hi = RADIUS_RANGE
    if not lo <= radius <= hi:
        raise _bad(text, f"radius must be between {lo:g} and {hi:g} mm, got {radius:g}", "pass a radius in mm")
    if not _inside_brain(centre):
        raise _bad(text, f"centre {parts[2]} (MNI mm) lies outside the template brain",
                   "pick an MNI centre inside the brain, e.g. 0,-84,8 (occipital) or 0,40,20 (medial frontal)")
    spec = CouplingSpec(band, strength, centre, radius)  # type: ignore[arg-type]
    if not np.any(sphere_grey_matter(centre, radius)):
        raise _bad(text, "the sphere holds no grey-matter voxel (GM probability >= 0.5)",
                   "move the centre onto cortex or enlarge the radius")
    return spec


def _inside_brain(centre: Sequence[float]) -> bool:
    from neurofuse.simulate.anatomy import mni_2mm
    from neurofuse.transforms import apply_affine

    mask = mni_2mm()["mask"]
    ijk = np.rint(apply_affine(np.linalg.inv(mask.affine), np.asarray([centre], float))[0]).astype(int)
    if np.any(ijk < 0) or np.any(ijk >= np.asarray(mask.data.shape)):
        return False
    return bool(mask.data[tuple(ijk)] >= 0.5)


def sphere_grey_matter(centre: Sequence[float], radius: float) -> np.ndarray:
    """Boolean mask (2 mm MNI grid): within ``radius`` mm of ``centre`` and GM probability >= 0.5."""
    from neurofuse.simulate.anatomy import grid_points, mni_2mm

    gm = mni_2mm()["gm"]
    pts = grid_points(gm.data.shape, gm.affine).reshape(gm.data.shape + (3,))
    return (np.sum((pts - np.asarray(centre, float)) ** 2, axis=-1) <= radius**2) & (gm.data >= 0.5)


def build_layout(texts: Sequence[str]) -> dict[str, dict]:
    """The layout of the given ``--coupling`` values, bands in frequency order.

    Raises :class:`NeuroFuseError` on a bad value or when a band is given two strengths.
    """
    specs = [parse_coupling(t) for t in texts]
    if not specs:
        raise NeuroFuseError("no --coupling value given", hint=_FORM)
    layout: dict[str, dict] = {}
    for band in workflow_bands():
        mine = [s for s in specs if s.band == band]
        if not mine:
            continue
        strengths = sorted({s.strength for s in mine})
        if len(strengths) > 1:
            raise NeuroFuseError(
                f"--coupling gives band {band!r} several strengths ({', '.join(f'{s:g}' for s in strengths)})",
                hint="one region per band: repeat the band with the same strength to add spheres")
        sign = "lowers" if strengths[0] < 0 else "raises"
        layout[band] = {
            "coupling": strengths[0],
            "spheres": [(s.centre, s.radius) for s in mine],
            "description": f"user-defined layout (--coupling): {band} power {sign} BOLD",
        }
    return layout


def driver_bands(layout: dict[str, dict]) -> tuple[str, ...]:
    """Bands that get a driver: the built-in alpha and beta rhythms first (same random draws
    as the default layout), then the other coupled bands in frequency order."""
    return BUILTIN_RHYTHMS + tuple(b for b in layout if b not in BUILTIN_RHYTHMS)
