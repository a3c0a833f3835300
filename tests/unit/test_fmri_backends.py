"""fMRI backends (native | fsl | afni): command lines, readers of real tool output, runs.

FSL and AFNI are not installed here: the command lines are checked as nipype builds them,
the readers on real MCFLIRT output (shipped by pybids, see fmri_backend_data/README.md)
and on a hand-written 3dvolreg file, and the run functions with small stand-in scripts
on PATH that answer as the tools would (they write files the test computed from a known
motion).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from neurofuse.errors import ConfigError, NeuroFuseError
from neurofuse.fmri import backends as B
from neurofuse.fmri.confounds import write_confounds
from neurofuse.fmri.motion import read_motion_tsv
from neurofuse.transforms import (
    PARAM_NAMES,
    framewise_displacement,
    rigid_matrix,
    rigid_params,
)

DATA = Path(__file__).parent / "fmri_backend_data"
PAR_LOW = DATA / "sub-01_task-mixedgamblestask_run-01_bold_mcf.nii.gz.par"
PAR_HIGH = DATA / "sub-05_task-mixedgamblestask_run-01_bold_mcf.nii.gz.par"
AFNI_1D = DATA / "afni_handmade_3dvolreg.1D"
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


@pytest.fixture()
def bold(tmp_path):
    """A tiny 4D BOLD (RAS affine, positive determinant) with 5 volumes."""
    rng = np.random.default_rng(0)
    data = (rng.random((8, 9, 6, 5)) * 100 + 500).astype(np.float32)
    affine = np.diag([3.0, 3.0, 3.5, 1.0])
    affine[:3, 3] = [-12.0, -15.0, -8.0]
    path = tmp_path / "sub-01_task-rest_bold.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


@pytest.fixture()
def no_tools(monkeypatch, tmp_path):
    """PATH with none of the tools."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


# ------------------------------------------------------------------ backends
def test_backend_names():
    assert B.BACKENDS == ("native", "fsl", "afni")
    assert B.check_backend("afni") == "afni"
    with pytest.raises(ConfigError, match="native, fsl, afni"):
        B.check_backend("spm")


# -------------------------------------------------------------- command lines
def test_mcflirt_command_lines(bold, tmp_path):
    out = tmp_path / "w" / "mcf.nii.gz"
    ref = tmp_path / "ref.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 9, 6), np.float32), np.eye(4)), ref)
    assert B.mcflirt_interface(bold, out, ref_vol=2).cmdline == (
        f"mcflirt -in {bold} -cost normcorr -out {out} -refvol 2 -mats -plots"
    )
    assert B.mcflirt_interface(bold, out, ref_file=ref, save_mats=False).cmdline == (
        f"mcflirt -in {bold} -cost normcorr -out {out} -reffile {ref} -plots"
    )
    assert B.mcflirt_interface(bold, out, mean_vol=True, cost="mutualinfo", save_rms=True).cmdline == (
        f"mcflirt -in {bold} -cost mutualinfo -meanvol -out {out} -mats -plots -rmsabs -rmsrel"
    )
    with pytest.raises(ValueError, match="at most one"):
        B.mcflirt_interface(bold, out, ref_vol=0, mean_vol=True)


def test_slicetimer_command_line(bold, tmp_path):
    timings = tmp_path / "tcustom.txt"
    timings.write_text("0.1\n0.6\n")
    cmd = B.slicetimer_interface(bold, tmp_path / "st.nii.gz", tr=2.0, custom_timings=timings).cmdline
    assert cmd == (
        f"slicetimer --in={bold} --tcustom={timings} --out={tmp_path / 'st.nii.gz'} "
        "--direction=3 --repeat=2.000000"
    )


def test_volreg_command_lines(bold, tmp_path):
    w = tmp_path / "w"
    kw = {"oned_file": w / "m.1D", "matrix_file": w / "m.aff12.1D", "maxdisp_file": w / "md.1D"}
    ref = tmp_path / "ref.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 9, 6), np.float32), np.eye(4)), ref)
    cmd = B.volreg_interface(bold, w / "vr.nii.gz", base=ref, **kw).cmdline
    assert cmd == (
        f"3dvolreg -1Dfile {w}/m.1D -1Dmatrix_save {w}/m.aff12.1D -prefix {w}/vr.nii.gz "
        f"-base {ref} -zpad 1 -maxdisp1D {w}/md.1D {bold}"
    )
    cmd = B.volreg_interface(bold, w / "vr.nii.gz", base=3, zpad=4, interp="Fourier", **kw).cmdline
    assert cmd == (
        f"3dvolreg -base 3 -Fourier -1Dfile {w}/m.1D -1Dmatrix_save {w}/m.aff12.1D "
        f"-prefix {w}/vr.nii.gz -zpad 4 -maxdisp1D {w}/md.1D {bold}"
    )
    with pytest.raises(ValueError):
        B.volreg_interface(bold, w / "vr.nii.gz", base=-1, **kw)


def test_tshift_command_lines_and_timing_file(bold, tmp_path):
    times = [0.0, 1.0, 0.25, 1.25, 0.5, 1.5]  # interleaved, seconds, index order
    timing = B.write_slice_timing_file(times, tmp_path / "slice_timing.1D")
    assert timing.read_text() == "0\t1\t0.25\t1.25\t0.5\t1.5\n"
    assert np.loadtxt(timing).tolist() == times  # AFNI 1D: one row of numbers
    out = tmp_path / "st.nii.gz"
    assert B.tshift_interface(bold, out, tr=2.0, timing_file=timing, ref_time=0.75).cmdline == (
        f"3dTshift -prefix {out} -tpattern @{timing} -TR 2s -tzero 0.75 {bold}"
    )
    assert B.tshift_interface(bold, out, tr=1.5, timing_file=timing, ref_slice=2, ignore=3).cmdline == (
        f"3dTshift -ignore 3 -prefix {out} -tpattern @{timing} -TR 1.5s -slice 2 {bold}"
    )
    with pytest.raises(ValueError):
        B.tshift_interface(bold, out, tr=2.0, timing_file=timing, ref_time=0.5, ref_slice=1)


def test_building_commands_writes_nothing(bold, tmp_path, monkeypatch):
    """nipype would drop slice_timing.1D / *_md.1D into the working directory for some
    inputs; the builders name every file, so .cmdline leaves the cwd alone."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    timing = B.write_slice_timing_file([0, 1], tmp_path / "t.1D")
    commands = [B.tshift_interface(bold, tmp_path / "o.nii.gz", tr=2, timing_file=timing).cmdline]
    commands.append(B.volreg_interface(
        bold, tmp_path / "v.nii.gz", oned_file=tmp_path / "a.1D", matrix_file=tmp_path / "a.aff12.1D",
        maxdisp_file=tmp_path / "md.1D",
    ).cmdline)
    assert all(commands)
    assert list(cwd.iterdir()) == []


# ------------------------------------------------------- MCFLIRT .par (real)
@pytest.mark.parametrize("par", [PAR_LOW, PAR_HIGH], ids=["sub-01", "sub-05"])
def test_read_real_mcflirt_par(par):
    raw = np.loadtxt(par)
    params = B.read_mcflirt_par(par)
    assert params.shape == (240, 6)
    # fMRIPrep/nipype: a reorder to translations first, nothing else
    np.testing.assert_array_equal(params, raw[:, [3, 4, 5, 0, 1, 2]])
    # units: rotations are small angles in radians, translations millimetres
    assert np.abs(params[:, 3:]).max() < 0.1  # radians: < 6 degrees (degrees would read 3.1)
    assert np.abs(params[:, :3]).max() < 5.0
    assert np.abs(params[:, :3]).max() > 0.01  # not metres, not all zero
    fd = framewise_displacement(params)
    assert fd[0] == 0.0
    assert np.median(fd[1:]) < 0.3
    assert fd.max() < 5.0


def test_fd_of_real_par_separates_low_and_high_motion():
    fd_low = framewise_displacement(B.read_mcflirt_par(PAR_LOW))
    fd_high = framewise_displacement(B.read_mcflirt_par(PAR_HIGH))
    assert fd_low.max() < 0.5  # a still subject
    assert fd_high.max() > 2.0  # a real head jerk
    assert (fd_high > 0.5).sum() < 20  # ... on a few volumes only


def test_confounds_from_par_have_the_native_columns(tmp_path):
    par_tsv = tmp_path / "par_motion.tsv"
    params = B.tool_motion_to_tsv(PAR_LOW, par_tsv, source="fsl")
    np.testing.assert_allclose(read_motion_tsv(par_tsv), params, rtol=1e-7, atol=1e-12)
    from_par = write_confounds(par_tsv, tmp_path / "par_confounds.tsv")

    from fmri_phantom import moving_series, random_motion

    data, affine = moving_series(random_motion(6, np.random.default_rng(3)))
    phantom_bold = tmp_path / "phantom_bold.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), phantom_bold)
    native_tsv = tmp_path / "native_motion.tsv"
    res = B.run_backend_motion("native", phantom_bold, native_tsv, reference=0)
    assert res.backend == "native" and res.params.shape == (6, 6)
    from_native = write_confounds(native_tsv, tmp_path / "native_confounds.tsv")

    def base_columns(table):
        return [c for c in table.columns if not c.startswith("motion_outlier")]

    assert base_columns(from_par) == base_columns(from_native)
    assert base_columns(from_par)[:6] == list(PARAM_NAMES)
    outliers = [c for c in from_par.columns if c.startswith("motion_outlier")]
    assert all(re.fullmatch(r"motion_outlier\d{2,}", c) for c in outliers)
    on_disk = pd.read_csv(tmp_path / "par_confounds.tsv", sep="\t")
    assert list(on_disk.columns) == list(from_par.columns)
    assert len(on_disk) == 240


def test_par_reader_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.par"
    bad.write_text("1 2 3\n4 5 6\n")
    with pytest.raises(NeuroFuseError, match="6 columns"):
        B.read_mcflirt_par(bad)
    with pytest.raises(NeuroFuseError, match="cannot read"):
        B.read_mcflirt_par(tmp_path / "missing.par")


# ----------------------------------------------------------- AFNI .1D (by hand)
def _afni_correction_dicom(row: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """VOLREG_MATVEC of one 3dvolreg parameter row (input -> base, DICOM mm), as 3dvolreg.c
    builds it: rmat = Ry(yaw) Rx(pitch) Rz(roll) about the DICOM axes (right-handed),
    rotation about the dataset centre, then the shift (dL, dP, dS)."""
    roll, pitch, yaw = np.radians(row[:3])
    d_s, d_l, d_p = row[3:6]

    def rot(axis, a):
        c, s = np.cos(a), np.sin(a)
        i, j = [(1, 2), (2, 0), (0, 1)][axis]
        m = np.eye(3)
        m[i, i] = m[j, j] = c
        m[i, j], m[j, i] = -s, s
        return m

    rmat = rot(1, yaw) @ rot(0, pitch) @ rot(2, roll)
    out = np.eye(4)
    out[:3, :3] = rmat
    out[:3, 3] = np.array([d_l, d_p, d_s]) + centre - rmat @ centre
    return out


def _write_aff12(matrices_dicom: np.ndarray, path: Path) -> None:
    rows = [" ".join(f"{v:.12g}" for v in m[:3, :].ravel()) for m in matrices_dicom]
    path.write_text("# 3dvolreg matrices (DICOM-to-DICOM, row-by-row):\n" + "\n".join(rows) + "\n")


#: The known motions behind afni_handmade_3dvolreg.1D, in NeuroFuse convention.
_KNOWN = np.zeros((7, 6))
_KNOWN[1, 2] = 2.0
_KNOWN[2, 0] = 1.5
_KNOWN[3, 1] = 1.0
_KNOWN[4, 5] = _KNOWN[5, 3] = _KNOWN[6, 4] = np.radians(1.0)


def test_read_afni_oned_single_axis_motions():
    params = B.read_afni_oned(AFNI_1D)
    assert params.shape == (7, 6)
    np.testing.assert_allclose(params, _KNOWN, atol=1e-12)
    # each motion lands in its own column with the sign of our convention
    for t in range(1, 7):
        assert np.count_nonzero(params[t]) == 1
        assert params[t][np.flatnonzero(params[t])[0]] > 0
    # nipype's own mapping: same order and units, dS and roll with the opposite sign
    nip = B.read_afni_oned(AFNI_1D, convention="nipype")
    np.testing.assert_allclose(nip[:, [0, 1, 3, 4]], params[:, [0, 1, 3, 4]])
    np.testing.assert_allclose(nip[:, [2, 5]], -params[:, [2, 5]])


def test_read_afni_dfile_layout(tmp_path):
    """-dfile: index, the six parameters, rmsold, rmsnew."""
    six = np.loadtxt(AFNI_1D)
    nine = np.column_stack([np.arange(len(six)), six, np.ones(len(six)), np.zeros(len(six))])
    path = tmp_path / "motion.dfile.1D"
    np.savetxt(path, nine, fmt="%.4f")
    np.testing.assert_allclose(B.read_afni_oned(path), B.read_afni_oned(AFNI_1D))


def test_afni_matrices_round_trip_with_rigid_matrix(tmp_path):
    """The 1D parameters, turned into 3dvolreg's saved matrices by 3dvolreg's own formula,
    read back as exactly the known motion when the volume centre is the origin, and as
    the same rotations about the volume centre otherwise."""
    six = np.loadtxt(AFNI_1D)
    truth = rigid_matrix(_KNOWN)
    for centre in (np.zeros(3), np.array([4.0, -20.0, 12.0])):  # DICOM mm
        corrections = np.stack([_afni_correction_dicom(r, centre) for r in six])
        path = tmp_path / "motion.aff12.1D"
        _write_aff12(np.linalg.inv(corrections), path)  # saved: base -> input
        mats = B.read_afni_matrices(path)
        np.testing.assert_allclose(mats[:, :3, :3], truth[:, :3, :3], atol=1e-9)
        c_ras = LPS[:3, :3] @ centre
        expected_t = truth[:, :3, 3] + c_ras - np.einsum("tij,j->ti", truth[:, :3, :3], c_ras)
        np.testing.assert_allclose(mats[:, :3, 3], expected_t, atol=1e-9)
        if not centre.any():
            np.testing.assert_allclose(rigid_params(mats), _KNOWN, atol=1e-9)


def test_afni_matrices_exact_for_combined_motion(tmp_path):
    params = np.array([[0.0] * 6, [0.8, -1.2, 2.1, 0.02, -0.015, 0.03]])
    mats = rigid_matrix(params)
    path = tmp_path / "m.aff12.1D"
    _write_aff12(LPS @ mats @ LPS, path)
    np.testing.assert_allclose(rigid_params(B.read_afni_matrices(path)), params, atol=1e-10)


def test_afni_oblique_warning(tmp_path, caplog):
    aff = rigid_matrix([0, 0, 0, np.radians(12), 0, 0]) @ np.diag([3, 3, 3, 1.0])
    img_path = tmp_path / "oblique.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 2), np.float32), aff), img_path)
    path = tmp_path / "m.aff12.1D"
    _write_aff12(np.tile(np.eye(4), (2, 1, 1)), path)
    with caplog.at_level("WARNING"):
        B.read_afni_matrices(path, img_path)
    assert "oblique" in caplog.text


# --------------------------------------------------------- MCFLIRT matrices
def _flirt_matrix(m_world: np.ndarray, img: nib.Nifti1Image) -> np.ndarray:
    """What FLIRT saves for a head that moved by ``m_world`` (reference -> volume, RAS):
    the map from the volume's FSL coordinates to the reference's, with FSL coordinates
    written out by hand: voxel index times voxel size, the first axis counted from the
    other end when the affine's determinant is positive."""
    zooms = np.sqrt((img.affine[:3, :3] ** 2).sum(axis=0))
    fsl_from_vox = np.diag(list(zooms) + [1.0])
    if np.linalg.det(img.affine) > 0:
        fsl_from_vox[0, 0] = -zooms[0]
        fsl_from_vox[0, 3] = (img.shape[0] - 1) * zooms[0]
    fsl_from_world = fsl_from_vox @ np.linalg.inv(img.affine)
    return fsl_from_world @ np.linalg.inv(m_world) @ np.linalg.inv(fsl_from_world)


@pytest.mark.parametrize("flip", [False, True], ids=["RAS-stored", "LAS-stored"])
def test_read_mcflirt_matrices_exact(tmp_path, flip):
    affine = np.diag([2.5, 3.0, 3.5, 1.0])
    affine[:3, 3] = [-40.0, -50.0, -20.0]
    if flip:  # radiological storage: negative determinant, FSL does not mirror
        affine[0, 0] = -2.5
        affine[0, 3] = 40.0
    img = nib.Nifti1Image(np.zeros((33, 30, 20, 3), np.float32), affine)
    path = tmp_path / "bold.nii.gz"
    nib.save(img, path)
    params = np.array([[0.0] * 6, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.4, -0.7, 1.1, 0.01, -0.02, 0.015]])
    files = []
    for t, m in enumerate(rigid_matrix(params)):
        files.append(tmp_path / f"MAT_{t:04d}")
        np.savetxt(files[-1], _flirt_matrix(m, img), fmt="%.12f")
    got = rigid_params(B.read_mcflirt_matrices(files, path))
    np.testing.assert_allclose(got, params, atol=1e-9)
    # a pure 1 mm shift to the right is a 1 mm shift along FSL's (left-pointing) x
    shift = np.loadtxt(files[1])
    np.testing.assert_allclose(shift[:3, 3], [1.0, 0.0, 0.0], atol=1e-9)


# -------------------------------------------------------- missing tools
@pytest.mark.parametrize(("backend", "tool"), [("fsl", "mcflirt"), ("afni", "3dvolreg")])
def test_missing_tool_is_a_clear_error(no_tools, bold, tmp_path, backend, tool):
    with pytest.raises(NeuroFuseError) as err:
        B.run_backend_motion(backend, bold, tmp_path / "m.tsv")
    text = str(err.value)
    assert f"'{tool}'" in text and "not on PATH" in text
    assert "container image" in text and "fmri.backend: native" in text
    assert not (tmp_path / "m.tsv").exists()


def test_missing_3dtshift_is_a_clear_error(no_tools, bold, tmp_path):
    with pytest.raises(NeuroFuseError, match="'3dTshift'.*container image"):
        B.run_backend_slice_timing("afni", bold, tmp_path / "st.nii.gz", [0, 1, 0.5, 1.5, 0.25, 1.25], 2.0)


# --------------------------------------------------- runs with stand-in tools
_FAKE = r'''#!{python}
"""Stand-in for {tool}: records its arguments and writes the files the test prepared."""
import json, os, shutil, sys
args = sys.argv[1:]
canned = os.environ["NF_FAKE_CANNED"]
with open(os.path.join(canned, "{tool}.argv.json"), "w") as f:
    json.dump(args, f)
def opt(name):
    return args[args.index(name) + 1]
tool = "{tool}"
if tool == "mcflirt":
    out = opt("-out")
    shutil.copy(opt("-in"), out)
    shutil.copy(os.path.join(canned, "mcf.par"), out + ".par")
    os.makedirs(out + ".mat", exist_ok=True)
    for name in sorted(os.listdir(os.path.join(canned, "mats"))):
        shutil.copy(os.path.join(canned, "mats", name), os.path.join(out + ".mat", name))
elif tool == "3dvolreg":
    shutil.copy(args[-1], opt("-prefix"))
    shutil.copy(os.path.join(canned, "motion.1D"), opt("-1Dfile"))
    shutil.copy(os.path.join(canned, "motion.aff12.1D"), opt("-1Dmatrix_save"))
    open(opt("-maxdisp1D"), "w").write("0\n")
elif tool == "3dTshift":
    shutil.copy(args[-1], opt("-prefix"))
    shutil.copy(opt("-tpattern")[1:], os.path.join(canned, "timing.seen"))
'''


def _install_fake(tool: str, bin_dir: Path) -> None:
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / tool
    script.write_text(_FAKE.replace("{python}", sys.executable).replace("{tool}", tool))
    script.chmod(0o755)


@pytest.fixture()
def fake_env(tmp_path, monkeypatch):
    canned = tmp_path / "canned"
    canned.mkdir()
    bin_dir = tmp_path / "bin"
    for tool in ("mcflirt", "3dvolreg", "3dTshift"):
        _install_fake(tool, bin_dir)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("NF_FAKE_CANNED", str(canned))
    return canned


_MOTION = np.array(
    [
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.3, -0.2, 0.5, 0.004, -0.002, 0.003],
        [0.6, -0.1, 0.9, 0.006, -0.004, 0.001],
        [0.2, 0.4, 1.2, -0.002, 0.003, 0.005],
        [0.1, 0.3, 1.0, -0.001, 0.002, 0.004],
    ]
)


def test_run_fsl_backend_with_stand_in_mcflirt(fake_env, bold, tmp_path):
    img = nib.load(bold)
    (fake_env / "mats").mkdir()
    for t, m in enumerate(rigid_matrix(_MOTION)):
        np.savetxt(fake_env / "mats" / f"MAT_{t:04d}", _flirt_matrix(m, img), fmt="%.12f")
    np.savetxt(fake_env / "mcf.par", np.zeros((5, 6)))
    out_tsv, boldref = tmp_path / "out" / "motion.tsv", tmp_path / "out" / "boldref.nii.gz"
    res = B.run_backend_motion("fsl", bold, out_tsv, out_reference=boldref, reference="median", n_reference=3)

    argv = json.loads((fake_env / "mcflirt.argv.json").read_text())
    assert argv[:2] == ["-in", str(bold.resolve())]
    assert argv[argv.index("-cost") + 1] == "normcorr"
    assert "-reffile" in argv and {"-mats", "-plots"} <= set(argv)
    assert res.command.startswith("mcflirt -in ")
    np.testing.assert_allclose(read_motion_tsv(out_tsv), _MOTION, atol=1e-7)
    np.testing.assert_allclose(res.params, _MOTION, atol=1e-9)
    assert res.tool_params.shape == (5, 6)
    ref = nib.load(boldref)
    np.testing.assert_allclose(ref.affine, img.affine)
    np.testing.assert_allclose(ref.get_fdata(), np.median(img.get_fdata()[..., :3], axis=3), rtol=1e-6)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["boldref.nii.gz", "motion.tsv"]


def test_run_fsl_backend_volume_reference(fake_env, bold, tmp_path):
    img = nib.load(bold)
    (fake_env / "mats").mkdir()
    for t, m in enumerate(rigid_matrix(_MOTION)):
        np.savetxt(fake_env / "mats" / f"MAT_{t:04d}", _flirt_matrix(m, img), fmt="%.12f")
    np.savetxt(fake_env / "mcf.par", np.zeros((5, 6)))
    work = tmp_path / "work"
    B.run_backend_motion("fsl", bold, tmp_path / "m.tsv", reference=-1, work_dir=work)
    argv = json.loads((fake_env / "mcflirt.argv.json").read_text())
    assert argv[argv.index("-refvol") + 1] == "4" and "-reffile" not in argv
    assert (work / "mcf.nii.gz.par").exists()  # the tool's own files stay in work_dir


def test_run_afni_backend_with_stand_in_3dvolreg(fake_env, bold, tmp_path):
    _write_aff12(LPS @ rigid_matrix(_MOTION) @ LPS, fake_env / "motion.aff12.1D")
    deg = np.degrees(_MOTION[:, 3:])
    one_d = np.column_stack([-deg[:, 2], deg[:, 0], deg[:, 1], -_MOTION[:, 2], _MOTION[:, 0], _MOTION[:, 1]])
    np.savetxt(fake_env / "motion.1D", one_d, fmt="%.6f")
    out_tsv = tmp_path / "motion.tsv"
    res = B.run_backend_motion("afni", bold, out_tsv, reference=0, zpad=2)

    argv = json.loads((fake_env / "3dvolreg.argv.json").read_text())
    assert argv[-1] == str(bold.resolve())
    assert argv[argv.index("-zpad") + 1] == "2"
    assert argv[argv.index("-base") + 1].endswith("boldref.nii.gz")
    np.testing.assert_allclose(read_motion_tsv(out_tsv), _MOTION, atol=1e-7)
    np.testing.assert_allclose(res.tool_params, _MOTION, atol=1e-6)  # small motion: first order
    conf = write_confounds(out_tsv, tmp_path / "confounds.tsv")
    np.testing.assert_allclose(conf["framewise_displacement"].to_numpy()[1:], framewise_displacement(_MOTION)[1:])


def test_run_afni_backend_reports_a_failing_tool(fake_env, bold, tmp_path):
    (fake_env.parent / "bin" / "3dvolreg").write_text("#!/bin/sh\necho 'FATAL ERROR: bad dataset' >&2\nexit 1\n")
    with pytest.raises(NeuroFuseError, match="3dvolreg failed .exit code 1.: FATAL ERROR: bad dataset"):
        B.run_backend_motion("afni", bold, tmp_path / "m.tsv")
    assert not (tmp_path / "m.tsv").exists()


def test_run_afni_slice_timing_with_stand_in_3dtshift(fake_env, bold, tmp_path):
    times = [0.0, 1.0, 0.25, 1.25, 0.5, 1.5]
    out, out_json = tmp_path / "stc.nii.gz", tmp_path / "stc.json"
    meta = B.run_backend_slice_timing("afni", bold, out, times, 2.0, out_json=out_json)
    assert meta == {"SliceTimingCorrected": True, "StartTime": 0.75, "SliceTimingMethod": "afni-3dTshift",
                    "RepetitionTime": 2.0}
    assert json.loads(out_json.read_text()) == meta
    argv = json.loads((fake_env / "3dTshift.argv.json").read_text())
    assert argv[argv.index("-TR") + 1] == "2s" and argv[argv.index("-tzero") + 1] == "0.75"
    assert np.loadtxt(fake_env / "timing.seen").tolist() == times
    assert nib.load(out).shape == nib.load(bold).shape


def test_slice_timing_backend_choices(fake_env, bold, tmp_path):
    times = [0.0, 1.0, 0.25, 1.25, 0.5, 1.5]
    with pytest.raises(NeuroFuseError, match="third voxel axis"):
        B.run_backend_slice_timing("afni", bold, tmp_path / "x.nii.gz", times[:5], 2.0, slice_axis=0)
    meta = B.run_backend_slice_timing("fsl", bold, tmp_path / "n.nii.gz", times, 2.0)
    assert meta["SliceTimingMethod"] == "fft"  # native
    assert not (fake_env / "3dTshift.argv.json").exists()


def test_tool_motion_to_tsv_afni(tmp_path):
    out = tmp_path / "motion.tsv"
    params = B.tool_motion_to_tsv(AFNI_1D, out, source="afni")
    np.testing.assert_allclose(read_motion_tsv(out), params, atol=1e-8)
    assert pd.read_csv(out, sep="\t").columns.tolist() == list(PARAM_NAMES)
    with pytest.raises(ValueError):
        B.tool_motion_to_tsv(AFNI_1D, out, source="spm")
