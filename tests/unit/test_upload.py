"""`neurofuse upload` against the GCS emulator: checksums, resume after an interruption, no
silent overwrite, dry run."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from neurofuse.errors import NeuroFuseError
from neurofuse.upload import crc32c_of, dataset_files, plan_upload, run_upload

NEUROFUSE = str(Path(sys.executable).with_name("neurofuse"))


@pytest.fixture
def dataset(small_dataset, tmp_path):
    """A private copy of the small dataset (tests modify it), with hidden files to leave out."""
    root = tmp_path / "bids"
    shutil.copytree(small_dataset, root)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    (root / "sourcedata").mkdir()
    (root / "sourcedata" / "scan.dcm").write_bytes(b"DICM")
    return root


def _assert_bucket_matches(gcs, root, prefix):
    objects = gcs.objects(prefix)
    files = dataset_files(root)
    assert sorted(objects) == sorted(files)
    for rel in files:
        assert objects[rel].crc32c == crc32c_of(root / rel), rel
        assert objects[rel].size == (root / rel).stat().st_size


def test_upload_interrupted_halfway_resumes_and_verifies(gcs, dataset):
    target = gcs.url("study/bids")
    plan = plan_upload(dataset, target, client=gcs.client)
    files = dataset_files(dataset)
    assert len(plan.new) == len(files) and not plan.identical and not plan.conflicts
    assert not any(rel.startswith(("derivatives/", "sourcedata/", ".git/")) for rel in files)
    half = len(files) // 2

    def interrupt_at_half(item, done=[]):  # noqa: B006 - a counter across calls
        done.append(item)
        if len(done) == half:
            raise KeyboardInterrupt  # what Ctrl-C raises in the main thread

    first = run_upload(plan, client=gcs.client, jobs=1, progress=False, on_file_done=interrupt_at_half)
    # The upload running when the interruption came finishes; nothing new starts after it.
    assert first.interrupted and first.uploaded in (half, half + 1)
    in_bucket = gcs.objects("study/bids")
    assert len(in_bucket) == first.uploaded < len(files)  # complete objects only
    for rel, blob in in_bucket.items():
        assert blob.crc32c == crc32c_of(dataset / rel)

    done = first.uploaded
    again = plan_upload(dataset, target, client=gcs.client)
    assert len(again.identical) == done and len(again.new) == len(files) - done and not again.conflicts
    second = run_upload(again, client=gcs.client, progress=False)
    assert not second.interrupted and second.uploaded == len(files) - done and second.skipped == done
    _assert_bucket_matches(gcs, dataset, "study/bids")

    third = plan_upload(dataset, target, client=gcs.client)
    assert not third.new and not third.conflicts and len(third.identical) == len(files)


def test_a_differing_object_is_not_overwritten_without_force(gcs, dataset):
    target = gcs.url("bids")
    run_upload(plan_upload(dataset, target, client=gcs.client), client=gcs.client, progress=False)
    changed = "sub-01/func/sub-01_task-rest_bold.json"
    (dataset / changed).write_text('{"RepetitionTime": 2.0, "TaskName": "rest", "Note": "edited"}\n')
    (dataset / "sub-01" / "extra.tsv").write_text("a\tb\n")
    plan = plan_upload(dataset, target, client=gcs.client, check_dataset=False)
    assert [item.rel for item in plan.conflicts] == [changed]
    assert [item.rel for item in plan.new] == ["sub-01/extra.tsv"]
    before = gcs.objects("bids")[changed].generation
    with pytest.raises(NeuroFuseError, match=r"1 files differ .*nothing was uploaded.*--force"):
        run_upload(plan, client=gcs.client, progress=False)
    after = gcs.objects("bids")
    assert after[changed].generation == before and "sub-01/extra.tsv" not in after
    result = run_upload(plan, client=gcs.client, force=True, progress=False)
    assert result.uploaded == 2
    _assert_bucket_matches(gcs, dataset, "bids")


def test_objects_only_in_the_bucket_are_left_alone(gcs, dataset):
    gcs.client.bucket(gcs.bucket).blob("bids/notes/keep.txt").upload_from_string(b"mine")
    plan = plan_upload(dataset, gcs.url("bids"), client=gcs.client, check_dataset=False)
    assert plan.remote_only == 1 and "left alone" in plan.summary()
    run_upload(plan, client=gcs.client, progress=False)
    assert gcs.objects("bids")["notes/keep.txt"].size == 4


def test_cli_dry_run_uploads_nothing_then_upload_reports_rate(gcs, dataset):
    cmd = [NEUROFUSE, "upload", str(dataset), gcs.url("cli/bids")]
    dry = subprocess.run(cmd + ["--dry-run"], capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing was uploaded" in dry.stdout and "upload   dataset_description.json" in dry.stdout
    assert gcs.objects("cli") == {}
    real = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert real.returncode == 0, real.stderr
    assert "every CRC32C verified" in real.stdout and "MB/s" in real.stdout
    assert "files" in real.stderr and "B/s" in real.stderr  # the progress bar: files, bytes, rate
    _assert_bucket_matches(gcs, dataset, "cli/bids")


def test_cli_refuses_a_dataset_the_workflow_would_refuse(gcs, dataset):
    (dataset / "task-rest_bold.json").write_text('{"TaskName": "rest"}')  # RepetitionTime gone
    for sidecar in dataset.glob("sub-*/func/*_bold.json"):
        sidecar.write_text('{"TaskName": "rest"}')
    result = subprocess.run([NEUROFUSE, "upload", str(dataset), gcs.url("bad")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and "RepetitionTime is missing" in result.stderr
    assert gcs.objects("bad") == {}
