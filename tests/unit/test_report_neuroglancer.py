"""Neuroglancer links of the group maps: the state decodes, points at the map's object in the
bucket (or on the local server), and its shader settings come from the map; the local server
sends the CORS header the viewer needs. No network: the server test uses 127.0.0.1 only."""

import json
import threading
import urllib.request
from html import unescape

import nibabel as nib
import numpy as np
import pytest

from neurofuse.bids.index import DatasetIndex
from neurofuse.errors import NeuroFuseError
from neurofuse.report.group import write_group_report
from neurofuse.report.neuroglancer import decode_link, make_server, map_links, map_url

Z = "group/task-rest_space-MNI152NLin2009cAsym_desc-alpha_stat-z_statmap.nii.gz"
HEAT = "group/task-rest_space-MNI152NLin2009cAsym_desc-fusion_statmap.nii.gz"


def nifti(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(values, dtype=np.float32), np.eye(4)), path)
    return path


@pytest.fixture
def maps(tmp_path):
    z = np.zeros((10, 10, 10), np.float32)
    z[2, 2, 2], z[3, 3, 3], z[4, 4, 4] = 6.0, -4.0, 2.0
    heat = np.zeros((10, 10, 10), np.float32)
    heat[1:3, 1:3, 1:3] = 0.25
    out = tmp_path / "results"
    return out, [(Z, nifti(out / Z, z)), (HEAT, nifti(out / HEAT, heat))]


def test_urls_for_bucket_and_local_outputs():
    assert map_url(Z, "gs://my-lab/study1/derivatives/neurofuse") == \
        f"https://storage.googleapis.com/my-lab/study1/derivatives/neurofuse/{Z}"
    assert map_url("group/a b.nii.gz", "gs://lab") == "https://storage.googleapis.com/lab/group/a%20b.nii.gz"
    assert map_url(Z, None, port=9123) == f"http://127.0.0.1:9123/{Z}"
    with pytest.raises(NeuroFuseError, match="outside the output folder"):
        map_url("../secret.nii.gz", "gs://lab/x")


def test_state_decodes_and_points_at_the_object(maps):
    out, files = maps
    links = map_links(files, out_url="gs://my-lab/study1/derivatives/neurofuse")
    assert [link.path for link in links] == [Z, HEAT]
    state = decode_link(links[0].link)
    assert links[0].link.startswith("https://neuroglancer-demo.appspot.com/#!%7B")
    (layer,) = state["layers"]
    assert layer["type"] == "image"
    assert layer["source"] == f"nifti://https://storage.googleapis.com/my-lab/study1/derivatives/neurofuse/{Z}"
    assert state["selectedLayer"]["layer"] == layer["name"] == Z.split("/")[1].removesuffix(".nii.gz")
    # z-map: coloured from |z| 3.1; saturation = 99.9th percentile of |z| over the 3 non-zero voxels
    expected = float(np.percentile([6.0, 4.0, 2.0], 99.9))
    assert links[0].threshold == 3.1 and links[0].saturation == pytest.approx(expected)
    assert "default=3.1)" in layer["shader"] and f"default={expected:.6g})" in layer["shader"]
    assert "toRaw(getDataValue())" in layer["shader"] and "void main()" in layer["shader"]
    # heatmap: every non-zero voxel, saturating at its value
    assert links[1].threshold == 0.0 and links[1].saturation == pytest.approx(0.25)
    local = map_links(files[:1], port=9001)[0]
    assert decode_link(local.link)["layers"][0]["source"] == f"nifti://http://127.0.0.1:9001/{Z}"


def test_group_report_carries_the_links(maps, tmp_path):
    out, files = maps
    index = DatasetIndex(bids_dir=str(tmp_path / "data"), name="tiny", runs=[])
    index.to_json(out / "neurofuse/dataset_index.json")
    png = out / "group/figures/task-rest_desc-glm_statmap.png"
    png.parent.mkdir(parents=True)
    png.write_bytes(bytes.fromhex("89504e470d0a1a0a"))
    for url, needle in (("gs://my-lab/s1/out", "CORS rule"), (None, "neurofuse serve OUTPUT_DIR --port 9000")):
        html = write_group_report(out / "neurofuse/dataset_index.json", out / "report/group.html", files=[png],
                                  maps=files, maps_url=url, neuroglancer_json=out / "report/neuroglancer.json")
        text = html.read_text()
        assert "Open in Neuroglancer" in text and needle in text
        doc = json.loads((out / "report/neuroglancer.json").read_text())
        hrefs = [unescape(h) for h in __import__("re").findall(r'href="(https://neuroglancer[^"]+)"', text)]
        assert hrefs == [m["link"] for m in doc["maps"]]
        assert [decode_link(h)["layers"][0]["source"] for h in hrefs] == [m["state"]["layers"][0]["source"]
                                                                         for m in doc["maps"]]
        assert doc["maps"][0]["url"] == map_url(Z, url)


def test_unreadable_map_is_a_clear_error(tmp_path):
    bad = tmp_path / "results" / Z
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a nifti")
    with pytest.raises(NeuroFuseError, match="cannot read the map"):
        map_links([(Z, bad)])


def test_local_server_sends_cors_header(maps):
    out, _ = maps
    server = make_server(out, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/{Z}", timeout=10) as response:
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            assert response.read() == (out / Z).read_bytes()
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(NeuroFuseError, match="not a folder"):
        make_server(out / "missing")
