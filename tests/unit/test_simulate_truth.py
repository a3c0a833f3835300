"""neurofuse.simulate: the written data agree with the written ground truth.

Every figure below is measured against the truth files only (plus the documented
conventions), so a change of direction, unit, time axis or file content makes a test fail.
Thresholds were measured on the ``small`` preset (6 mm EPI, 2 mm T1w, 2 kHz EEG) and
leave a margin; the comment next to each says what was measured.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage, signal

from neurofuse.simulate import TRUTH_DIR, TRUTH_INDEX
from neurofuse.simulate.bold import slice_order
from neurofuse.simulate.eeg import EEG_CHANNELS, ArtifactModel, artifact_components, upsample
from neurofuse.transforms import apply_affine, framewise_displacement, rigid_matrix

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("simulate_small")]


def _truth(root: Path) -> dict:
    return json.loads((root / TRUTH_DIR / TRUTH_INDEX).read_text())


def _runs(root: Path):
    truth = _truth(root)
    for run in truth["runs"]:
        yield {k: root / v for k, v in run["files"].items()}, run["figures"]


def _grid_points(shape, affine) -> np.ndarray:
    return apply_affine(affine, np.indices(shape[:3]).reshape(3, -1).T)


def _corr(a, b) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def _raw_eeg(vhdr: Path) -> tuple[np.ndarray, float, object]:
    import mne

    raw = mne.io.read_raw_brainvision(vhdr, preload=True, verbose="error")
    return raw.get_data() * 1e6, raw.info["sfreq"], raw


def test_truth_index_lists_existing_files(small_dataset):
    truth = _truth(small_dataset)
    assert truth["generator"]["name"] == "neurofuse simulate"
    for key in ("units", "subject_to_mni", "mni_to_subject", "head_motion", "bold_time", "eeg_time", "clean_eeg"):
        assert truth["conventions"][key]
    paths = [r["files"] for r in truth["runs"] + truth["anat"]] + [truth["regions"]]
    listed = [v["mask"] if isinstance(v, dict) else v for files in paths for v in files.values()]
    assert len(listed) > 20
    for rel in listed:
        assert (small_dataset / rel).is_file(), rel


def test_slice_timing_matches_the_bold_images(small_dataset):
    shared = json.loads((small_dataset / "task-rest_bold.json").read_text())
    tr, times = shared["RepetitionTime"], np.asarray(shared["SliceTiming"])
    assert shared["SliceEncodingDirection"] == "k" and shared["TaskName"] == "rest"
    for files, fig in _runs(small_dataset):
        img = nib.load(files["bold"])
        assert len(times) == img.shape[2] == fig["n_slices"]
        assert img.header.get_zooms()[3] == pytest.approx(tr)
        assert "SliceTiming" not in json.loads(files["bold"].with_name(
            files["bold"].name.replace(".nii.gz", ".json")).read_text())  # inherited from the top level
    assert times.min() == 0 and times.max() < tr
    # interleaved: even slices first, then odd ones, evenly spread over the TR
    np.testing.assert_array_equal(np.argsort(times, kind="stable"), slice_order(len(times)))
    np.testing.assert_allclose(np.diff(np.sort(times)), tr / len(times), atol=1e-8)


def test_true_motion_undoes_the_head_motion(small_dataset):
    for files, fig in _runs(small_dataset):
        img = nib.load(files["bold"])
        data = np.asarray(img.dataobj, dtype=np.float32)
        mask = np.asarray(nib.load(files["brain_mask_epi"]).dataobj) > 0
        motion = pd.read_csv(files["true_motion"], sep="\t")
        params = motion.iloc[:, :6].to_numpy()
        assert list(motion.columns[:6]) == ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
        np.testing.assert_array_equal(params[0], 0.0)
        np.testing.assert_allclose(motion["framewise_displacement"], framewise_displacement(params), atol=1e-9)
        assert 0.3 < np.abs(params[:, :3]).max() < 4.0 and np.degrees(np.abs(params[:, 3:]).max()) < 2.5
        assert motion["framewise_displacement"].max() > 0.5  # the spikes are there

        points = _grid_points(img.shape, img.affine)
        to_vox = np.linalg.inv(img.affine)
        ref = data[..., 0][mask]
        for k in range(1, data.shape[3]):
            m = rigid_matrix(params[k])
            # documented convention: corrected volume k at reference position x is I_k(M_k x)
            fixed = ndimage.map_coordinates(data[..., k], apply_affine(to_vox @ m, points).T, order=3)
            wrong = ndimage.map_coordinates(data[..., k], apply_affine(to_vox @ np.linalg.inv(m), points).T, order=3)
            c_fixed = _corr(fixed.reshape(mask.shape)[mask], ref)
            c_raw = _corr(data[..., k][mask], ref)
            c_wrong = _corr(wrong.reshape(mask.shape)[mask], ref)
            # measured: corrected 0.986-0.991 (noise, activity and cubic interpolation of 6 mm voxels)
            assert c_fixed > 0.975, (k, c_fixed)
            displacement = np.abs(params[k, :3]).sum() + 70 * np.abs(params[k, 3:]).sum()
            if displacement > 1.0:  # visible motion: undoing it helps, doing it twice hurts
                assert c_fixed > c_raw > c_wrong, (k, c_fixed, c_raw, c_wrong)


def region_bold(root: Path, run: dict, anat: dict, bands) -> dict[str, np.ndarray]:
    """Per band: mean BOLD in the band's true region over mean BOLD in the rest of the brain,
    per volume, with the EPI grid mapped to MNI by the truth (q = A p + u(A p))."""
    truth = _truth(root)
    files = {k: root / v for k, v in run["files"].items()}
    img = nib.load(files["bold"])
    data = np.asarray(img.dataobj, dtype=np.float32)
    brain = np.asarray(nib.load(files["brain_mask_epi"]).dataobj) > 0
    affine = np.loadtxt(root / anat["files"]["affine_txt"])
    warp = nib.load(root / anat["files"]["forward_warp"])
    u = np.asarray(warp.get_fdata())[:, :, :, 0, :]
    r = apply_affine(affine, _grid_points(img.shape, img.affine))
    ijk = apply_affine(np.linalg.inv(warp.affine), r).T
    q = r + np.stack([ndimage.map_coordinates(u[..., c], ijk, order=1, mode="nearest") for c in range(3)], 1)
    out = {}
    for band in bands:
        label = nib.load(root / truth["regions"][band]["mask"])
        inside = ndimage.map_coordinates(np.asarray(label.dataobj, float), apply_affine(
            np.linalg.inv(label.affine), q).T, order=0).reshape(brain.shape) > 0
        assert inside.sum() > 20
        out[band] = data[inside].mean(axis=0) / data[brain & ~inside].mean(axis=0)
    return out


def test_bold_follows_the_drivers_in_the_true_regions(small_dataset):
    truth = _truth(small_dataset)
    for run, anat in zip(truth["runs"], truth["anat"]):
        drivers = pd.read_csv(small_dataset / run["files"]["drivers"], sep="\t")
        ratios = region_bold(small_dataset, run, anat, ("alpha", "beta"))
        for band, sign in (("alpha", -1), ("beta", 1)):
            c = _corr(ratios[band], drivers[f"{band}_hrf"])
            # measured: alpha -0.97/-0.98, beta 0.74/0.98 (32 volumes only)
            assert sign * c > 0.5, (band, c)


def test_t1w_truth_transform_maps_back_onto_the_template(small_dataset):
    from neurofuse.simulate.anatomy import mni_2mm

    template = mni_2mm()["t1"]  # the template at the 2 mm grid of the warp files
    brain = mni_2mm()["mask"].data > 0.5
    for anat in _truth(small_dataset)["anat"]:
        files = {k: small_dataset / v for k, v in anat["files"].items()}
        t1w = nib.load(files["T1w"])
        affine = np.loadtxt(files["affine_txt"])
        assert np.allclose(affine, json.loads(files["affine_json"].read_text())["affine_subject_to_mni"])
        inv = nib.load(files["inverse_warp"])
        v = np.asarray(inv.get_fdata())[:, :, :, 0, :].reshape(-1, 3)
        q = _grid_points(inv.shape, inv.affine)
        to_t1w = np.linalg.inv(t1w.affine)
        data = np.asarray(t1w.dataobj, dtype=np.float32)

        def resample(points):
            return ndimage.map_coordinates(data, apply_affine(to_t1w, points).T, order=1).reshape(brain.shape)

        full = resample(apply_affine(np.linalg.inv(affine), q + v))  # p = A^-1 (q + v(q))
        affine_only = resample(apply_affine(np.linalg.inv(affine), q))
        c_full = _corr(full[brain], template.data[brain])
        c_affine = _corr(affine_only[brain], template.data[brain])
        # measured: 0.979 / 0.991 with the truth, 0.89-0.91 with the affine alone (bias field included)
        assert c_full > 0.95 and c_full > c_affine + 0.03, (c_full, c_affine)
        # the forward warp inverts the inverse one: r + u(r) = q with r = q + v(q)
        fwd = nib.load(files["forward_warp"])
        u = np.asarray(fwd.get_fdata())[:, :, :, 0, :]
        rr = q + v
        ijk = apply_affine(np.linalg.inv(fwd.affine), rr).T
        back = rr + np.stack([ndimage.map_coordinates(u[..., c], ijk, order=1, mode="nearest") for c in range(3)], 1)
        assert np.abs(back - q)[brain.ravel()].max() < 0.01
        assert 0.5 < np.abs(u).max() < 8.0  # a warp of a few mm


def test_eeg_reads_with_mne_and_markers_agree_with_the_bold(small_dataset):
    for files, fig in _runs(small_dataset):
        x, sfreq, raw = _raw_eeg(files["eeg"])
        assert sfreq == fig["eeg_sfreq"] and x.shape == (34, fig["eeg_n_samples"])
        assert raw.ch_names[:32] == list(EEG_CHANNELS) and raw.ch_names[32:] == ["ECG", "VEOG"]
        volumes = [a for a in raw.annotations if a["description"] == "Response/R128"]
        assert len(volumes) == fig["n_volumes"]
        # the .vmrk itself: one Response R128 per volume, 1-based positions
        vmrk = files["eeg"].with_suffix(".vmrk").read_text()
        pos = np.array([int(m) for m in re.findall(r"^Mk\d+=Response,R128,(\d+),1,0$", vmrk, flags=re.M)]) - 1
        assert len(pos) == fig["n_volumes"]
        np.testing.assert_allclose(np.array([a["onset"] for a in volumes]) * sfreq, pos, atol=1e-6)
        tr_samples = fig["tr_s"] * sfreq
        assert np.all(np.abs(np.diff(pos) - tr_samples) <= 1)
        assert abs(pos[0] - fig["eeg_lead_s"] * sfreq) <= 1  # volume 0 starts eeg_lead_s into the recording
        events = pd.read_csv(files["eeg"].with_name(files["eeg"].name.replace("_eeg.vhdr", "_events.tsv")), sep="\t")
        np.testing.assert_array_equal(events["sample"], pos)
        slices = pd.read_csv(files["slice_onsets"], sep="\t")
        first = slices[slices["acquisition_position"] == 0]
        np.testing.assert_array_equal(np.rint(first["sample_exact"]).astype(int), pos)
        assert np.abs(slices["sample_exact"] - np.rint(slices["sample_exact"])).max() > 0.05  # sub-sample onsets
        # scans.tsv: the EEG started eeg_lead_s before the BOLD
        scans = pd.read_csv(files["bold"].parent.parent / f"{files['bold'].parent.parent.name}_scans.tsv", sep="\t")
        times = {Path(f).name: pd.Timestamp(t) for f, t in zip(scans["filename"], scans["acq_time"])}
        lag = (times[files["bold"].name] - times[files["eeg"].name]).total_seconds()
        assert lag == pytest.approx(fig["eeg_lead_s"], abs=1e-6) and 2.0 < lag < 8.0
        # the artifact is large during the scan and absent before it
        grad = x[:32, pos[0]: pos[-1]].std()
        before = x[:32, : pos[0] - 10].std()
        assert grad > 200.0 and before < 100.0, (grad, before)


def test_eeg_minus_artifacts_is_the_clean_truth(small_dataset):
    import mne

    for files, fig in _runs(small_dataset):
        x, sfreq, _ = _raw_eeg(files["eeg"])
        clean = mne.io.read_raw_fif(files["clean_eeg"], verbose="error")
        assert clean.ch_names == list(EEG_CHANNELS) and clean.info["sfreq"] == fig["truth_sfreq"]
        c = clean.get_data() * 1e6
        factor = fig["upsampling_factor"]
        assert factor * fig["truth_sfreq"] == sfreq
        model = ArtifactModel.load(files["artifact_model"])
        samples = np.arange(0, x.shape[1], factor)
        parts = artifact_components(model, samples)
        residual = x[:32, samples] - sum(parts.values())[:32] - c
        # measured max 2.4e-4 µV: float32 rounding of a recording that reaches several mV
        assert np.abs(residual).max() < 0.01
        assert c.std() > 5.0  # and the clean EEG is not trivially small
        # the truth files agree with the artifact model
        rpeaks = pd.read_csv(files["rpeaks"], sep="\t")
        np.testing.assert_allclose(rpeaks["onset"], model.rpeaks)
        assert 55 < 60 / np.diff(model.rpeaks).mean() < 80 and np.diff(model.rpeaks).std() > 0.01  # HRV
        blinks = pd.read_csv(files["blinks"], sep="\t")
        np.testing.assert_allclose(blinks["onset"], model.blink_onsets)
        assert 2.5 < np.diff(model.blink_onsets).mean() < 6.5
        # BCG is locked to the R-peaks: strongest 0.2-0.45 s after them
        bcg = np.abs(parts["bcg"][:32]).mean(axis=0)
        t = samples / sfreq
        after = np.zeros(t.size, bool)
        for r in model.rpeaks:
            after |= (t >= r + 0.2) & (t <= r + 0.45)
        assert bcg[after].mean() > 3 * bcg[~after].mean()
        # ECG channel holds the cardiac waveform; VEOG sees the blinks far more than Fp1
        assert np.abs(parts["ecg"][32]).max() > 500 and np.abs(parts["ecg"][:32]).max() == 0
        blink = np.abs(parts["blink"]).max(axis=1)
        assert blink[33] > 100 and blink[33] > 2 * blink[0] > 0 and blink[EEG_CHANNELS.index("O1")] < 5


def test_upsampling_keeps_the_truth_samples():
    x = np.random.default_rng(1).standard_normal((2, 1000))
    for factor in (1, 4, 10):
        np.testing.assert_allclose(upsample(x, factor)[:, ::factor], x, atol=1e-10)


def test_alpha_envelope_follows_the_alpha_driver(small_dataset):
    import mne

    for files, fig in _runs(small_dataset):
        clean = mne.io.read_raw_fif(files["clean_eeg"], verbose="error")
        fs = clean.info["sfreq"]
        c = clean.get_data() * 1e6
        fine = pd.read_csv(files["drivers_fine"], sep="\t")
        t = np.arange(c.shape[1]) / fs - fig["eeg_lead_s"]  # BOLD time of each clean sample

        def log_envelope(channels, band):
            sos = signal.butter(4, band, "bandpass", fs=fs, output="sos")
            picks = [EEG_CHANNELS.index(ch) for ch in channels]
            env = np.abs(signal.hilbert(signal.sosfiltfilt(sos, c[picks], axis=1), axis=1)).mean(axis=0)
            return np.log(ndimage.gaussian_filter1d(env, 0.5 * fs))

        alpha = log_envelope(("O1", "O2", "Oz", "POz"), [fig["alpha_frequency_hz"] - 2, fig["alpha_frequency_hz"] + 2])
        c_alpha = _corr(alpha, np.interp(t, fine["onset"], fine["alpha"]))
        c_other = _corr(alpha, np.interp(t, fine["onset"], fine["beta"]))
        # measured 0.95-0.97 with the alpha driver, |r| < 0.25 with the (independent) beta driver
        assert c_alpha > 0.85 and c_alpha > abs(c_other) + 0.3, (c_alpha, c_other)
        # posterior topography: occipital alpha power well above frontal
        sos = signal.butter(4, [8, 12], "bandpass", fs=fs, output="sos")
        power = signal.sosfiltfilt(sos, c, axis=1).std(axis=1)
        assert power[EEG_CHANNELS.index("Oz")] > 3 * power[EEG_CHANNELS.index("Fz")]
