"""gs:// paths: URLs, where a run's files go, and the index read from a bucket (GCS emulator)."""

import json
import os
import shutil

import pytest

from neurofuse.bids.index import build_index
from neurofuse.cloud import GsUrl, index_bucket, parse_gs_url, run_locations
from neurofuse.errors import NeuroFuseError
from neurofuse.upload import plan_upload, run_upload

CONFIG = {"bids_dir": "data/demo", "output_dir": "results"}


def test_gs_urls_parse_and_bad_ones_say_why():
    assert parse_gs_url("gs://my-lab/study1/bids/") == GsUrl("my-lab", "study1/bids")
    assert parse_gs_url("gcs://my-lab") == GsUrl("my-lab", "")
    assert str(parse_gs_url("gs://my-lab//a/./b")) == "gs://my-lab/a/b"
    for bad, words in [("gs://", "no bucket name"), ("gs:///x", "no bucket name"), ("gs://Big_Lab/x", "not a valid"),
                       ("gs://ab/x", "not a valid"), ("/data/x", "not a gs:// URL"), ("gs://lab/../x", "leaves")]:
        with pytest.raises(NeuroFuseError, match=words):
            parse_gs_url(bad)


def test_run_locations_follow_the_default_storage_prefix():
    local = run_locations(CONFIG, None, None)
    assert (local.out_path, local.on_storage, local.bids_url) == ("results", False, None)
    cloud = run_locations({"bids_dir": "gs://raw-lab/s1/bids", "output_dir": "derivatives/nf"}, "gcs", "gs://lab/s1")
    assert cloud.out_path == "derivatives/nf" and str(cloud.out_url) == "gs://lab/s1/derivatives/nf"
    assert cloud.bids_object("sub-01/func/x.nii.gz") == "gs://raw-lab/s1/bids/sub-01/func/x.nii.gz"
    same = run_locations({"bids_dir": "bids", "output_dir": "gs://lab/s1"}, "gcs", "gs://lab/s1")
    assert same.out_path == "." and str(same.bids_url) == "gs://lab/s1/bids"


@pytest.mark.parametrize("config,provider,prefix,words", [
    ({"bids_dir": "gs://lab/bids", "output_dir": "results"}, None, None, "no default storage provider"),
    ({"bids_dir": "bids", "output_dir": "results"}, "gcs", None, "default-storage-prefix gs://BUCKET/PATH"),
    ({"bids_dir": "bids", "output_dir": "results"}, "s3", "s3://x/y", "Google Cloud Storage only"),
    ({"bids_dir": "bids", "output_dir": "gs://other/out"}, "gcs", "gs://lab/s1", "inside the default storage prefix"),
    ({"bids_dir": "/data/study", "output_dir": "results"}, "gcs", "gs://lab/s1", "neurofuse upload /data/study"),
    ({"bids_dir": "gs:///bids", "output_dir": "results"}, "gcs", "gs://lab/s1", "no bucket name"),
])
def test_run_locations_refuse_what_cannot_work(config, provider, prefix, words):
    with pytest.raises(NeuroFuseError, match=words):
        run_locations(config, provider, prefix)


def _upload(gcs, dataset, prefix="study/bids"):
    plan = plan_upload(dataset, gcs.url(prefix), client=gcs.client, check_dataset=False)
    run_upload(plan, client=gcs.client, progress=False)
    return gcs.url(prefix)


def test_bucket_index_equals_the_local_index_without_downloading_images(gcs, small_dataset, tmp_path):
    url = parse_gs_url(_upload(gcs, small_dataset))
    mirror = tmp_path / "mirror"
    remote = index_bucket(url, {"check_images": True}, client=gcs.client, mirror_root=mirror)
    local = build_index(small_dataset, check_images=True)
    assert remote.bids_dir == str(url)
    mine, theirs = remote.to_dict(), local.to_dict()
    for doc in (mine, theirs):
        doc.pop("bids_dir")
    assert json.dumps(mine, sort_keys=True) == json.dumps(theirs, sort_keys=True)
    # The signal was never fetched: a sparse placeholder of the right size; of the images,
    # the header and the gzip size trailer only.
    root = mirror / url.bucket / url.prefix
    for rel in ("sub-01/eeg/sub-01_task-rest_eeg.eeg", "sub-01/anat/sub-01_T1w.nii.gz",
                "sub-01/func/sub-01_task-rest_bold.nii.gz"):
        placeholder = root / rel
        assert placeholder.stat().st_size == (small_dataset / rel).stat().st_size
        assert placeholder.stat().st_blocks * 512 <= (0 if rel.endswith(".eeg") else 80 * 1024), rel
    # A second index fetches nothing new.
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    index_bucket(url, {"check_images": True}, client=gcs.client, mirror_root=mirror)
    assert stamps == {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_bucket_index_errors_name_the_gs_url(gcs, small_dataset, tmp_path):
    dataset = tmp_path / "bids"
    shutil.copytree(small_dataset, dataset, ignore=shutil.ignore_patterns("derivatives"))
    bold = dataset / "sub-02/func/sub-02_task-rest_bold.nii.gz"
    data = bold.read_bytes()
    bold.write_bytes(data[: len(data) // 2])  # an interrupted copy
    url = parse_gs_url(_upload(gcs, dataset))
    with pytest.raises(NeuroFuseError) as err:
        index_bucket(url, {"check_images": True}, client=gcs.client, mirror_root=tmp_path / "mirror")
    message = str(err.value)
    assert f"{url}/sub-02/func/sub-02_task-rest_bold.nii.gz" in message and "truncated" in message
    assert str(tmp_path / "mirror") not in message


def test_missing_bucket_is_named_with_the_credential(gcs, tmp_path):
    with pytest.raises(NeuroFuseError, match=r"bucket 'no-such-bucket-nf' does not exist.*anonymous, emulator"):
        index_bucket(parse_gs_url("gs://no-such-bucket-nf/bids"), {}, client=gcs.client, mirror_root=tmp_path)


def test_bucket_without_a_dataset_is_not_indexed(gcs, tmp_path):
    with pytest.raises(NeuroFuseError, match="dataset_description.json is missing"):
        index_bucket(parse_gs_url(gcs.url("empty")), {}, client=gcs.client, mirror_root=tmp_path)


def test_no_credentials_is_a_clear_error(monkeypatch, tmp_path):
    from neurofuse.cloud import gcs_client

    for name in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no gcloud application-default credentials
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")  # nothing answers: not on a Google VM
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:9")
    with pytest.raises(NeuroFuseError, match="no Google Cloud credentials.*gcloud auth application-default login"):
        gcs_client()
    assert not os.environ.get("STORAGE_EMULATOR_HOST")
