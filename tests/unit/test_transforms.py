"""neurofuse.transforms: the motion-parameter convention."""

import numpy as np
import pytest

from neurofuse.transforms import PARAM_NAMES, apply_affine, framewise_displacement, rigid_matrix, rigid_params


def test_param_names_are_fmriprep_columns():
    assert PARAM_NAMES == ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")


def test_zero_params_give_identity():
    assert np.array_equal(rigid_matrix(np.zeros(6)), np.eye(4))


def test_round_trip_many_random_params():
    rng = np.random.default_rng(0)
    params = np.c_[rng.uniform(-20, 20, (500, 3)), rng.uniform(-1.5, 1.5, (500, 3))]
    back = rigid_params(rigid_matrix(params))  # stacked form
    np.testing.assert_allclose(back, params, atol=1e-12)
    for p in params[:20]:  # single form
        np.testing.assert_allclose(rigid_params(rigid_matrix(p)), p, atol=1e-12)
        m = rigid_matrix(p)
        np.testing.assert_allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-12)
        assert np.isclose(np.linalg.det(m[:3, :3]), 1.0)


def test_rotation_directions_follow_right_hand_rule_about_origin():
    # +90 degrees about z turns +x into +y, about x turns +y into +z, about y turns +z into +x
    assert np.allclose(apply_affine(rigid_matrix([0, 0, 0, 0, 0, np.pi / 2]), [1, 0, 0]), [0, 1, 0])
    assert np.allclose(apply_affine(rigid_matrix([0, 0, 0, np.pi / 2, 0, 0]), [0, 1, 0]), [0, 0, 1])
    assert np.allclose(apply_affine(rigid_matrix([0, 0, 0, 0, np.pi / 2, 0]), [0, 0, 1]), [1, 0, 0])
    # the origin stays put under rotations; translation is added after rotating
    assert np.allclose(apply_affine(rigid_matrix([1, 2, 3, 0.3, -0.2, 0.1]), [0, 0, 0]), [1, 2, 3])


def test_composition_order_is_t_rx_ry_rz():
    rx, ry, rz = 0.3, -0.2, 0.5
    only = [rigid_matrix([0, 0, 0, rx, 0, 0]), rigid_matrix([0, 0, 0, 0, ry, 0]), rigid_matrix([0, 0, 0, 0, 0, rz])]
    t = rigid_matrix([4, 5, 6, 0, 0, 0])
    np.testing.assert_allclose(rigid_matrix([4, 5, 6, rx, ry, rz]), t @ only[0] @ only[1] @ only[2], atol=1e-14)
    # another order gives another matrix: the test would notice a change of convention
    assert not np.allclose(rigid_matrix([4, 5, 6, rx, ry, rz]), t @ only[2] @ only[1] @ only[0])


def test_framewise_displacement_hand_computed():
    params = np.array([
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.1, -0.2, 0.3, 0.001, 0.0, -0.002],
        [0.1, -0.2, 0.3, 0.001, 0.0, -0.002],
        [-0.4, 0.0, 0.3, 0.0, 0.01, -0.002],
    ])
    # volume 1: 0.1 + 0.2 + 0.3 + 50 * (0.001 + 0.002) = 0.75
    # volume 2: no change -> 0
    # volume 3: 0.5 + 0.2 + 0 + 50 * (0.001 + 0.01 + 0) = 1.25
    np.testing.assert_allclose(framewise_displacement(params), [0.0, 0.75, 0.0, 1.25], atol=1e-12)
    np.testing.assert_allclose(framewise_displacement(params, radius=80.0)[1], 0.6 + 80 * 0.003)


@pytest.mark.parametrize("bad", [np.zeros(6), np.zeros((3, 5))])
def test_framewise_displacement_rejects_wrong_shape(bad):
    with pytest.raises(ValueError):
        framewise_displacement(bad)


def test_rigid_matrix_rejects_wrong_length():
    with pytest.raises(ValueError):
        rigid_matrix([1, 2, 3])
