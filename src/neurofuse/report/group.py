"""The group report (``report/group.html``): the dataset, links to every subject report,
the group-level fusion results per task (with a Neuroglancer link per map,
:mod:`neurofuse.report.neuroglancer`) and the methods text.

Fusion results are shown when the rule passes them: the group GLM z-maps, the fusion
model's heatmaps and training curves, and its model card rendered as a table. The
methods text (``methods.md``) is rendered with the small Markdown subset of
:func:`neurofuse.report.html.text_to_html`.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path

from neurofuse.bids.index import DatasetIndex
from neurofuse.errors import NeuroFuseError
from neurofuse.io import atomic_write_text
from neurofuse.report.figures import CAPTIONS_DIR, GROUP_FIGURES, render_figures
from neurofuse.report.html import (
    Section,
    bullet_list,
    name_key,
    nested_table,
    page,
    read_json,
    relative_src,
    require_file,
    text_to_html,
)
from neurofuse.report.neuroglancer import DEFAULT_PORT, MapLink, links_json, map_links
from neurofuse.report.summary import dataset_section, summary_table

MODEL_CARD = (None, "modelcard", ".json")
_SUBJECT_REPORT = re.compile(r"^sub-([A-Za-z0-9]+)\.html$")


def _subject_links(index: DatasetIndex, reports: Iterable[str | os.PathLike], page_path: Path) -> Section:
    by_label = {}
    for path in reports:
        match = _SUBJECT_REPORT.match(Path(path).name)
        if not match:
            raise NeuroFuseError("not a subject report name (expected sub-<label>.html)", path)
        by_label[match[1]] = relative_src(require_file(path, "subject report"), page_path)
    items = []
    for label in index.subjects:
        runs = [run for run in index.runs if run.subject == label]
        kinds = ", ".join(f"{run.id} ({'EEG + BOLD' if run.bold and run.eeg else 'EEG' if run.eeg else 'BOLD'})"
                          for run in runs)
        name = f'<a href="{by_label[label]}">sub-{escape(label)}</a>' if label in by_label else f"sub-{escape(label)}"
        items.append(f"{name}: {len(runs)} run{'s' if len(runs) > 1 else ''}, {escape(kinds)}")
    return Section("subjects", "Subject reports", bullet_list(items))


def _fusion_files(files: Iterable[str | os.PathLike]) -> dict[str, dict[tuple, Path]]:
    known = {MODEL_CARD} | {key for fig in GROUP_FIGURES for key in fig.file_keys}
    by_task: dict[str, dict[tuple, Path]] = defaultdict(dict)
    for path in files:
        entities, suffix, ext = name_key(path)
        key = (entities.get("desc"), suffix, ext)
        if key not in known or "task" not in entities:
            raise NeuroFuseError("the group report does not know this kind of file", path,
                                 "pass group GLM/fusion figures, training curves and model cards only")
        by_task[entities["task"]][key] = Path(path)
    return by_task


def _viewer_section(task: str, links: Sequence[MapLink], local: bool, port: int) -> Section:
    items = [f'<a href="{escape(link.link)}">{escape(link.name)}</a> ({"|z| &ge; " + format(link.threshold, "g") if link.threshold else "every non-zero voxel"}'
             f", colours saturate at {link.saturation:.3g})" for link in links]
    if local:
        note = (f"<p>The maps are read from this computer: first run <code>neurofuse serve OUTPUT_DIR --port {port}</code> "
                "(OUTPUT_DIR: the folder that holds <code>report/</code>), then open a link; the viewer fetches the "
                "file from <code>127.0.0.1</code>, nothing is uploaded.</p>")
    else:
        note = ("<p>The viewer reads the maps from the bucket in your browser: the objects must be readable there "
                "and the bucket needs a CORS rule for the viewer (README, <em>Sharing results</em>).</p>")
    body = ("<p>Each link opens the map in Neuroglancer (positive values red to yellow, negative blue to cyan, "
            "threshold and saturation adjustable in the layer's controls).</p>" + note + bullet_list(items))
    return Section(f"task-{task}-neuroglancer", "Open in Neuroglancer", body)


def _task_section(task: str, files: dict[tuple, Path], page_path: Path, captions_dir: Path,
                  viewer: Section | None = None) -> Section:
    children = [viewer] if viewer is not None else []
    if MODEL_CARD in files:
        card = files[MODEL_CARD]
        body = (f'<p>The fusion model\'s card (<a href="{relative_src(card, page_path)}">{escape(card.name)}</a>): '
                "the data it saw, its hyperparameters, its held-out metrics, the seed and the software.</p>")
        table = nested_table(read_json(card, "model card"))
        children.append(Section(f"task-{task}-modelcard", "Model card", body + table))
    figures = render_figures(GROUP_FIGURES, files, page_path, captions_dir)
    return Section(f"task-{task}", f"Fusion: task {task}", figures, children)


def group_page(index: DatasetIndex, page_path: Path, *, subject_reports: Sequence[str | os.PathLike],
               files: Iterable[str | os.PathLike], methods: str | os.PathLike | None, captions_dir: Path,
               links: Sequence[MapLink] = (), local: bool = True, port: int = DEFAULT_PORT) -> str:
    sections = [dataset_section(index, summary_table(index)), _subject_links(index, subject_reports, page_path)]
    by_task = sorted(_fusion_files(files).items())
    link_task: dict[str, list[MapLink]] = defaultdict(list)
    for link in links:
        link_task[name_key(link.path)[0].get("task", "")].append(link)
    sections += [_task_section(task, found, page_path, captions_dir,
                               _viewer_section(task, link_task[task], local, port) if link_task.get(task) else None)
                 for task, found in by_task]
    if methods is not None:
        text = require_file(methods, "methods text").read_text(encoding="utf-8")
        text = re.sub(r"\A\s*#\s[^\n]*\n", "", text)  # the section has its own title
        sections.append(Section("methods", "Methods", text_to_html(text)))
    lead = (f"Dataset “{escape(index.name or index.bids_dir)}”: {len(index.subjects)} subjects, "
            f"{len(index.runs)} runs. Quality control of each run is in its subject's report.")
    return page("NeuroFuse group report", lead, sections)


def write_group_report(
    index_json: str | os.PathLike,
    html: str | os.PathLike,
    *,
    subject_reports: Sequence[str | os.PathLike] = (),
    files: Iterable[str | os.PathLike] = (),
    methods: str | os.PathLike | None = None,
    captions_dir: str | os.PathLike = CAPTIONS_DIR,
    maps: Sequence[tuple[str, str | os.PathLike]] = (),
    maps_url: str | None = None,
    port: int = DEFAULT_PORT,
    neuroglancer_json: str | os.PathLike | None = None,
) -> Path:
    """Write the group HTML report.

    ``subject_reports``: the ``sub-<label>.html`` pages to link; ``files``: group fusion
    outputs (``task-<t>_desc-{glm,fusion}_statmap.png``, ``task-<t>_desc-training_curves.svg``,
    ``task-<t>_modelcard.json``), recognised by name; ``methods``: a Markdown file or None;
    ``maps``: ``(path relative to the output folder, local file)`` of each group NIfTI map,
    linked to Neuroglancer from ``maps_url`` (the output folder in a bucket) or, for
    local outputs, from ``127.0.0.1:port``; the links and states also go to ``neuroglancer_json``.
    """
    index = DatasetIndex.from_json(index_json)
    html = Path(html)
    links = map_links(maps, out_url=maps_url, port=port)
    text = group_page(index, html, subject_reports=subject_reports, files=files, methods=methods,
                      captions_dir=Path(captions_dir), links=links, local=maps_url is None, port=port)
    if neuroglancer_json is not None:
        atomic_write_text(neuroglancer_json, links_json(links, out_url=maps_url, port=port))
    atomic_write_text(html, text)
    return html
