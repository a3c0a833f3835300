"""The face heuristic: a head phantom with a face is flagged; defaced and brain-only images are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from neurofuse.privacy import scan_dataset
from neurofuse.privacy.face import MIN_FACE_OCCUPANCY, check_face
from privacy_phantom import MNI152_T1, deface, head_phantom, save, to_lps


@pytest.fixture(scope="module")
def heads(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("heads")
    head = head_phantom()
    return {
        "face": save(head, root / "sub-01" / "anat" / "sub-01_T1w.nii.gz"),
        "face_lps": save(to_lps(head), root / "sub-02" / "anat" / "sub-02_T1w.nii"),
        "defaced": save(deface(head), root / "sub-03" / "anat" / "sub-03_T1w.nii.gz"),
        "defaced_lps": save(to_lps(deface(head)), root / "sub-04" / "anat" / "sub-04_T2w.nii.gz"),
    }


@pytest.mark.parametrize("name", ["face", "face_lps"])
def test_face_is_found(heads, name):
    result = check_face(heads[name])
    assert result.face and result.occupancy > 1.5 * MIN_FACE_OCCUPANCY


@pytest.mark.parametrize("name", ["defaced", "defaced_lps"])
def test_defaced_head_has_no_face(heads, name):
    result = check_face(heads[name])
    assert not result.face and result.head_litres > 2.5 and result.occupancy < 0.5 * MIN_FACE_OCCUPANCY


def test_brain_only_images_have_no_face(small_dataset):
    template = check_face(MNI152_T1)
    simulated = check_face(small_dataset / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    for result in (template, simulated):
        assert not result.face and result.head_litres < 2.5


def test_bias_field_is_not_a_head(small_dataset):
    bias = small_dataset / "derivatives/simulation/sub-01/anat/sub-01_desc-biasfield_T1w.nii.gz"
    result = check_face(bias)
    assert not result.face and "not a head image" in result.reason


def test_scan_reports_faces_by_file(heads):
    root = heads["face"].parents[2]
    faces = {(f.file, f.severity) for f in scan_dataset(root).findings if f.field == "(face)"}
    assert faces == {("sub-01/anat/sub-01_T1w.nii.gz", "high"), ("sub-02/anat/sub-02_T1w.nii", "high")}
    sampled = scan_dataset(root, max_face_images=1)
    assert any("face check on 1 of 4" in note for note in sampled.notes)
