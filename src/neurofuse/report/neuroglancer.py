"""Neuroglancer links to the group maps: share a map by sending a URL, not a download.

Neuroglancer (https://github.com/google/neuroglancer) is a viewer that runs in the
browser and reads the data itself over HTTP; its whole view (layers, their sources and
shaders) is a JSON state carried in the link after ``#!``. For every group map (the GLM
z-maps, the fusion model's heatmaps) :func:`map_state` builds such a state with one
``image`` layer whose source is ``nifti://`` + the map's URL, and a shader that shows
positive values red to yellow and negative values blue to cyan above a threshold (a
slider in the viewer; default |z| 3.1 for z-maps, 0 for heatmaps; the colours saturate
at the map's 99.9th percentile of |value|).

Where the map is read from:

* outputs in a bucket (``gs://BUCKET/PATH``): ``https://storage.googleapis.com/BUCKET/PATH/...``.
  The browser fetches it directly, so the object must be readable by the browser (a
  public or capability-URL bucket, or a Neuroglancer ``ngauth`` server for IAM-protected
  data) and the bucket needs a CORS rule for the viewer's origin (README: *Sharing*).
* local outputs: ``http://127.0.0.1:PORT/...``, served with CORS headers by
  ``neurofuse serve RESULTS --port PORT`` (:func:`serve`), on the computer that opens
  the link.

We write the JSON ourselves (a few keys) rather than depend on the ``neuroglancer``
Python package, which would pull in its web server and numpy pins for this alone.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from neurofuse.errors import NeuroFuseError

__all__ = ["VIEWER", "DEFAULT_PORT", "map_url", "map_state", "state_link", "decode_link", "MapLink", "map_links",
           "serve"]

VIEWER = "https://neuroglancer-demo.appspot.com/"
DEFAULT_PORT = 9000
Z_THRESHOLD = 3.1  # |z| above which a z-map voxel is coloured by default (p < 0.001, one-sided)

_SHADER = """#uicontrol float threshold slider(min=0, max={top:.6g}, default={threshold:.6g})
#uicontrol float saturation slider(min=0, max={top:.6g}, default={saturation:.6g})
void main() {{
  float v = toRaw(getDataValue());
  float a = abs(v);
  if (a < threshold || a == 0.0) {{
    emitRGBA(vec4(0.0, 0.0, 0.0, 0.0));
    return;
  }}
  float t = clamp((a - threshold) / max(saturation - threshold, 1e-6), 0.0, 1.0);
  emitRGB(v > 0.0 ? vec3(1.0, t, 0.0) : vec3(0.0, t, 1.0));
}}
"""


def map_url(rel_path: str, out_url: Any | None = None, port: int = DEFAULT_PORT) -> str:
    """HTTP URL of an output (``rel_path`` relative to the output folder).

    ``out_url``: the output folder in a bucket (a :class:`neurofuse.cloud.GsUrl` or a
    ``gs://`` string), or None for local outputs served on ``127.0.0.1:port``.
    """
    rel = Path(rel_path).as_posix().lstrip("/")
    if rel.startswith("..") or not rel:
        raise NeuroFuseError("a map outside the output folder", rel_path, "pass paths relative to output_dir")
    quoted = urllib.parse.quote(rel)
    if out_url is None:
        return f"http://127.0.0.1:{int(port)}/{quoted}"
    from neurofuse.cloud import GsUrl, parse_gs_url

    url = out_url if isinstance(out_url, GsUrl) else parse_gs_url(str(out_url), "output folder")
    key = url.key(rel)
    return f"https://storage.googleapis.com/{url.bucket}/{urllib.parse.quote(key)}"


def map_state(name: str, url: str, *, threshold: float, saturation: float) -> dict[str, Any]:
    """Neuroglancer state: one image layer ``nifti://url`` with the diverging threshold shader."""
    saturation = max(float(saturation), float(threshold) + 1e-3)
    top = max(2.0 * saturation, float(threshold) + 1.0)
    shader = _SHADER.format(threshold=float(threshold), saturation=saturation, top=top)
    return {
        "layers": [{"type": "image", "source": f"nifti://{url}", "name": name, "shader": shader,
                    "opacity": 1.0, "blend": "default"}],
        "selectedLayer": {"layer": name, "visible": True},
        "layout": "4panel",
    }


def state_link(state: dict[str, Any], viewer: str = VIEWER) -> str:
    """``viewer#!<url-encoded JSON>``: the link that opens the viewer in ``state``."""
    text = json.dumps(state, separators=(",", ":"), sort_keys=True)
    return f"{viewer}#!{urllib.parse.quote(text, safe='')}"


def decode_link(link: str) -> dict[str, Any]:
    """The JSON state of a link made by :func:`state_link`."""
    _, sep, fragment = link.partition("#!")
    if not sep:
        raise NeuroFuseError("not a Neuroglancer state link (no '#!')", link)
    return json.loads(urllib.parse.unquote(fragment))


@dataclass(frozen=True)
class MapLink:
    name: str
    path: str  # relative to the output folder
    url: str
    threshold: float
    saturation: float
    link: str

    def state(self) -> dict[str, Any]:
        return decode_link(self.link)


def _saturation(path: str | os.PathLike) -> float:
    """99.9th percentile of |value| over the non-zero finite voxels (1.0 for an empty map)."""
    import nibabel as nib
    import numpy as np

    try:
        data = np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32))
    except Exception as exc:  # noqa: BLE001 - nibabel raises many kinds for a bad file
        raise NeuroFuseError(f"cannot read the map ({type(exc).__name__}: {exc})", path,
                             "re-run the step that writes it") from None
    values = np.abs(data[np.isfinite(data) & (data != 0)])
    return float(np.percentile(values, 99.9)) if values.size else 1.0


def map_links(maps: Iterable[tuple[str, str | os.PathLike]], *, out_url: Any | None = None, port: int = DEFAULT_PORT,
              viewer: str = VIEWER) -> list[MapLink]:
    """One :class:`MapLink` per ``(path relative to the output folder, local file)``.

    Z-maps (``stat-z`` in the name) are thresholded at |z| 3.1 by default; other maps
    (the fusion model's heatmaps, arbitrary units) show every non-zero voxel.
    """
    links = []
    for rel, local in maps:
        rel = Path(rel).as_posix()
        name = Path(rel).name.removesuffix(".gz").removesuffix(".nii")
        threshold = Z_THRESHOLD if "_stat-z_" in Path(rel).name else 0.0
        saturation = _saturation(local)
        if threshold:
            saturation = max(saturation, threshold + 1.0)
        url = map_url(rel, out_url, port)
        state = map_state(name, url, threshold=threshold, saturation=saturation)
        links.append(MapLink(name, rel, url, threshold, saturation, state_link(state, viewer)))
    return links


def links_json(links: Sequence[MapLink], *, out_url: Any | None, port: int) -> str:
    """The links and states as JSON (``report/neuroglancer.json``)."""
    doc = {
        "viewer": VIEWER,
        "served_from": (str(out_url) if out_url is not None else
                        f"http://127.0.0.1:{port}/ (run: neurofuse serve OUTPUT_DIR --port {port})"),
        "maps": [asdict(link) | {"state": link.state()} for link in links],
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


class _CorsHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with ``Access-Control-Allow-Origin: *`` (Neuroglancer runs on another origin)."""

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "Range")
        super().end_headers()

    def do_OPTIONS(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        pass


def make_server(folder: str | os.PathLike, port: int = DEFAULT_PORT, host: str = "127.0.0.1"):
    """An HTTP server for ``folder`` on ``host:port`` (port 0: any free port); call serve_forever()."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NeuroFuseError("not a folder", folder, "pass the workflow's output folder (output_dir)")
    handler = functools.partial(_CorsHandler, directory=str(folder))
    try:
        return http.server.ThreadingHTTPServer((host, int(port)), handler)
    except OSError as exc:
        raise NeuroFuseError(f"cannot listen on {host}:{port} ({exc.strerror})", folder,
                             "choose another --port (and open the links made for it)") from None


def serve(folder: str | os.PathLike, port: int = DEFAULT_PORT) -> None:  # pragma: no cover - runs until Ctrl-C
    server = make_server(folder, port)
    print(f"serving {folder} at http://127.0.0.1:{server.server_address[1]}/ for Neuroglancer (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
