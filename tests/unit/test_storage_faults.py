"""Storage faults: `neurofuse upload` and the index's bucket reads behind a fault-injecting proxy.

The GCS emulator sits behind tests/fault_proxy.py on 127.0.0.1, which refuses and resets
connections, answers 503, answers slowly, stalls past the client's timeout after the
server did the work, and cuts uploads off half-way. Runs succeed through retries or end
with one clear line; afterwards every object in the bucket is downloaded directly from
the emulator and its bytes checked against its CRC32C and the local file: no corrupt or
partial object. ``NEUROFUSE_FAULT_SEED`` changes the random fault pattern.
"""

import base64
import os
import re

import google_crc32c
import pytest
import yaml
from fault_proxy import FaultPlan, FaultProxy

from neurofuse.cli import main
from neurofuse.cloud import index_bucket, parse_gs_url
from neurofuse.config import REPO_ROOT
from neurofuse.errors import NeuroFuseError
from neurofuse.upload import crc32c_of, dataset_files, plan_upload, run_upload
from neurofuse.workflow import index_options

SEED = int(os.environ.get("NEUROFUSE_FAULT_SEED", "5"))
OPTIONS = index_options(yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text()))


@pytest.fixture
def proxy(gcs, monkeypatch):
    """The proxy in front of this test's emulator; clients made from the environment go through it."""
    proxy = FaultProxy(gcs.emulator.url).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
    monkeypatch.setenv("NEUROFUSE_GCS_TIMEOUT", "2")  # a stalled answer is given up after 2 s
    monkeypatch.setenv("NEUROFUSE_GCS_RETRY_DEADLINE", "40")
    yield proxy
    proxy.stop()


def assert_no_corrupt_object(gcs, root, prefix, expect_all=True):
    """Every object, downloaded straight from the emulator, has the bytes its CRC32C and the local file say."""
    objects = gcs.objects(prefix)
    files = set(dataset_files(root))
    assert set(objects) <= files, set(objects) - files
    if expect_all:
        assert set(objects) == files
    for rel, blob in objects.items():
        data = blob.download_as_bytes(checksum=None)
        stored = base64.b64encode(google_crc32c.Checksum(data).digest()).decode()
        assert stored == blob.crc32c == crc32c_of(root / rel), rel
        assert len(data) == (root / rel).stat().st_size, rel
    return len(objects)


def test_upload_succeeds_through_every_kind_of_fault(gcs, proxy, small_dataset, capsys):
    proxy.plan = FaultPlan(items=[
        ("list", "503", 0), ("list", "reset", 0),  # the bucket listing
        ("upload", "refuse", 1.5), ("upload", "reset", 0), ("upload", "503", 0), ("upload", "drop", 0),
        ("upload", "stall", 3.0),  # the server stores the object, the answer never comes
        ("upload", "slow", 1.0), ("upload", "drop", 0), ("upload", "503", 0),
    ])
    code = main(["upload", str(small_dataset), gcs.url("faults/bids"), "--quiet", "--jobs", "4"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert not proxy.plan.items, proxy.plan.items  # every fault was met
    assert f"uploaded {len(dataset_files(small_dataset))} files" in out and "every CRC32C verified" in out
    assert_no_corrupt_object(gcs, small_dataset, "faults/bids")


def test_upload_succeeds_through_random_faults(gcs, proxy, small_dataset, capsys):
    proxy.plan = FaultPlan.random(SEED, p=0.2)
    code = main(["upload", str(small_dataset), gcs.url("random/bids"), "--quiet", "--jobs", "4"])
    out, err = capsys.readouterr()
    assert code == 0, (proxy.plan.log, err)
    assert len(proxy.plan.log) >= 5, proxy.plan.log
    assert_no_corrupt_object(gcs, small_dataset, "random/bids")
    # Nothing left to do: every object is there with the right CRC32C.
    again = plan_upload(small_dataset, gcs.url("random/bids"), client=gcs.client, check_dataset=False)
    assert not again.new and not again.conflicts


def test_upload_that_keeps_failing_ends_with_one_clear_line(gcs, proxy, small_dataset, monkeypatch, capsys):
    monkeypatch.setenv("NEUROFUSE_GCS_RETRY_DEADLINE", "3")
    proxy.plan = FaultPlan(items=[("upload", "drop", 0)] * 2 + [("upload", "503", 0)] * 500)
    code = main(["upload", str(small_dataset), gcs.url("down/bids"), "--quiet", "--jobs", "2"])
    out, err = capsys.readouterr()
    assert code == 2
    line = err.strip()
    assert "\n" not in line and "Traceback" not in err, err
    assert re.match(rf"neurofuse: error: gs://{gcs.bucket}/down/bids/\S+: uploading failed after retrying for up "
                    r"to 3 s \(503 .*injected: service unavailable\).*run the same command again", line), line
    assert_no_corrupt_object(gcs, small_dataset, "down/bids", expect_all=False)
    # With the storage back, the same command finishes the job.
    proxy.plan = FaultPlan()
    assert main(["upload", str(small_dataset), gcs.url("down/bids"), "--quiet"]) == 0
    assert_no_corrupt_object(gcs, small_dataset, "down/bids")


def test_index_reads_the_bucket_through_faults_or_says_why_not(gcs, proxy, small_dataset, tmp_path, monkeypatch):
    plan = plan_upload(small_dataset, gcs.url("idx/bids"), client=gcs.client, check_dataset=False)
    run_upload(plan, client=gcs.client, progress=False)
    url = parse_gs_url(gcs.url("idx/bids"))
    direct = index_bucket(url, OPTIONS, client=gcs.emulator.client(), mirror_root=tmp_path / "direct")

    from neurofuse.cloud import gcs_client

    proxy.plan = FaultPlan.random(SEED + 1, p=0.15, faults=("reset", "503", "slow", "stall"))
    faulty = index_bucket(url, OPTIONS, client=gcs_client(), mirror_root=tmp_path / "faulty")
    assert len(proxy.plan.log) >= 3, proxy.plan.log
    assert faulty.to_bytes() == direct.to_bytes()

    monkeypatch.setenv("NEUROFUSE_GCS_RETRY_DEADLINE", "2")
    proxy.plan = FaultPlan(items=[("any", "503", 0)] * 500)
    with pytest.raises(NeuroFuseError) as caught:
        index_bucket(url, OPTIONS, client=gcs_client(), mirror_root=tmp_path / "down")
    message = str(caught.value)
    assert "failed after retrying for up to 2 s (503 " in message and str(url) in message, message
