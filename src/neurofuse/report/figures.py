"""Which figures the reports show, in which order, with which title and caption.

A figure is recognised by its BIDS name (``desc`` entity and suffix), so the reports
take plain lists of files. Captions live in ``workflow/report/<caption>.rst``: the
same text serves the HTML reports and ``snakemake --report``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from neurofuse.config import REPO_ROOT
from neurofuse.report.html import figure_html, read_caption

#: Caption files, shared with the ``report(caption=...)`` flags of the rules.
CAPTIONS_DIR = REPO_ROOT / "workflow" / "report"
FIGURE_EXTENSIONS = (".png", ".svg")


@dataclass(frozen=True)
class Figure:
    desc: str
    suffix: str
    title: str
    caption: str  # file stem in CAPTIONS_DIR

    @property
    def file_keys(self) -> tuple[tuple[str, str, str], ...]:
        """The (desc, suffix, extension) keys a file of this figure can have."""
        return tuple((self.desc, self.suffix, ext) for ext in FIGURE_EXTENSIONS)

    def find(self, files: Mapping[tuple, Path]) -> Path | None:
        """This figure's file among files keyed by (desc, suffix, extension), if any."""
        return next((files[key] for key in self.file_keys if key in files), None)


#: Per-run figures by report section, in reading order.
RUN_FIGURES: dict[str, tuple[Figure, ...]] = {
    "fMRI": (
        Figure("motion", "bold", "Head motion and framewise displacement", "fmri_motion"),
        Figure("carpet", "bold", "Carpet plot", "fmri_carpet"),
        Figure("registration", "bold", "Registration to MNI152NLin2009cAsym", "fmri_registration"),
    ),
    "EEG": (
        Figure("gradient", "eeg", "EEG spectra before and after gradient artifact removal", "eeg_gradient"),
        Figure("bcg", "eeg", "EEG spectra before and after BCG removal", "eeg_bcg"),
        Figure("rpeaks", "eeg", "R-peaks in the ECG", "eeg_rpeaks"),
        Figure("clean", "eeg", "EEG spectra before and after cleaning", "eeg_clean"),
        Figure("ica", "eeg", "ICA components removed", "eeg_ica"),
    ),
    "Fusion": (
        Figure("glm", "statmap", "EEG-informed GLM: z-maps per EEG band", "fusion_glm"),
    ),
}

#: Group figures per task, in reading order.
GROUP_FIGURES: tuple[Figure, ...] = (
    Figure("glm", "statmap", "Group EEG-informed GLM: z-maps per EEG band", "fusion_glm_group"),
    Figure("fusion", "statmap", "Fusion model heatmaps per EEG band (held-out subjects)", "fusion_heatmap"),
    Figure("training", "curves", "Fusion model training and validation loss", "fusion_training"),
)


def render_figures(figures: Iterable[Figure], files: Mapping[tuple, Path], page_path: Path, captions_dir: Path) -> str:
    """The given figures that are among ``files``, in order, each with its caption."""
    return "\n".join(
        figure_html(path, page_path, fig.title, read_caption(captions_dir, fig.caption))
        for fig in figures
        if (path := fig.find(files)) is not None
    )
