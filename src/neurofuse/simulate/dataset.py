"""``simulate_dataset``: write a simultaneous EEG-fMRI BIDS dataset and its ground truth."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from scipy import ndimage

from neurofuse import __version__
from neurofuse.errors import NeuroFuseError
from neurofuse.naming import derivative_path, entity_string, run_prefix, subject_dir
from neurofuse.simulate import anatomy, bold, coupling, drivers, eeg
from neurofuse.simulate.coupling import build_layout
from neurofuse.simulate.presets import TASK, SimulationConfig, resolve_config
from neurofuse.simulate.writers import write_json, write_nifti, write_tsv
from neurofuse.transforms import PARAM_NAMES, apply_affine, framewise_displacement

#: Where the ground truth goes, relative to the dataset root.
TRUTH_DIR = "derivatives/simulation"
#: Name of the truth index (also the marker of a previous simulation).
TRUTH_INDEX = "truth.json"
BIDS_VERSION = "1.10.0"
GENERATOR = "neurofuse simulate"


@dataclass
class SimulationSummary:
    """What :func:`simulate_dataset` wrote."""

    out_dir: Path
    subjects: list[str]
    runs: int
    seconds: float
    preset: str = ""
    seed: int = 0
    truth_dir: Path | None = None
    files: int = 0
    bytes: int = 0

    def __str__(self) -> str:
        size = f"{self.bytes / 1e6:.0f} MB" if self.bytes >= 1e6 else f"{self.bytes / 1e3:.0f} kB"
        return (
            f"simulated {len(self.subjects)} subjects, {self.runs} EEG-fMRI runs "
            f"(preset {self.preset}, seed {self.seed}) in {self.seconds:.1f} s: {self.out_dir} "
            f"({self.files} files, {size}; truth in {self.truth_dir})"
        )


@dataclass
class _RunRecord:
    entities: dict
    files: dict = field(default_factory=dict)
    figures: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------ helpers
def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


def _path(root: Path, ent: dict, datatype: str, suffix: str, ext: str, **extra: str | None) -> Path:
    """BIDS path ``root/<sub>[/<ses>]/<datatype>/<prefix>[_<extra>]_<suffix><ext>``."""
    return Path(derivative_path(str(root), subject_dir(ent), datatype, run_prefix(ent),
                                suffix=suffix, extension=ext, **extra))


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _is_previous_simulation(path: Path) -> bool:
    index = path / TRUTH_DIR / TRUTH_INDEX
    if not index.is_file():
        return False
    try:
        import json

        return json.loads(index.read_text(encoding="utf-8")).get("generator", {}).get("name") == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise NeuroFuseError("the output path exists and is not a folder", out,
                             hint="choose a new folder name for the simulated dataset")
    if out.is_dir() and any(out.iterdir()) and not _is_previous_simulation(out):
        raise NeuroFuseError(
            "the output folder is not empty and does not hold a previous simulation", out,
            hint="choose an empty or new folder (a previous `neurofuse simulate` output is replaced)",
        )


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` into place, replacing an empty or previously simulated ``out``."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f"{out.name}.old-", dir=out.parent))
    old.rmdir()
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds")


# ------------------------------------------------------------------------------ public API
def simulate_dataset(
    out_dir: str | Path,
    *,
    preset: str = "demo",
    n_subjects: int | None = None,
    n_sessions: int | None = None,
    n_runs: int | None = None,
    n_volumes: int | None = None,
    tr: float | None = None,
    eeg_sfreq: float | None = None,
    seed: int = 42,
    progress: bool = False,
    coupling: Sequence[str] | None = None,
) -> SimulationSummary:
    """Write a simulated simultaneous EEG-fMRI BIDS dataset with its ground truth.

    The raw dataset (T1w, BOLD with slice timing and head motion, in-scanner EEG in
    BrainVision format with gradient/BCG/ocular/line artifacts and volume markers) goes
    to ``out_dir``; the truth (motion, transforms, region masks, drivers, clean EEG,
    R-peaks, slice onsets, artifact model) to ``out_dir/derivatives/simulation`` with an
    index ``truth.json`` describing every file and convention.

    Parameters
    ----------
    out_dir:
        Destination folder. Must not exist, be empty, or hold a previous simulation
        (which is replaced). The dataset is written to a sibling ``<name>.tmp-XXXX``
        folder and renamed into place only when complete.
    preset:
        ``"demo"`` or ``"small"`` (see :data:`neurofuse.simulate.PRESETS`).
    n_subjects, n_sessions, n_runs, n_volumes, tr, eeg_sfreq:
        Override the preset (``None`` keeps it). No ``ses-`` entity is written when
        ``n_sessions == 1`` and no ``run-`` entity when ``n_runs == 1``.
    seed:
        Same seed and parameters -> byte-identical files.
    progress:
        Show a progress bar (runs done, ETA) on stderr.
    coupling:
        Custom coupling layout, one ``BAND:STRENGTH:X,Y,Z:RADIUS`` per sphere (see
        :mod:`neurofuse.simulate.coupling`); replaces the default alpha/beta layout
        (:data:`neurofuse.simulate.bold.REGIONS`). ``None`` or empty keeps the default.

    Raises
    ------
    NeuroFuseError
        Bad parameters, or ``out_dir`` is a non-empty folder that is not a simulation.
    """
    start = time.perf_counter()
    cfg = resolve_config(preset, seed, n_subjects=n_subjects, n_sessions=n_sessions, n_runs=n_runs,
                         n_volumes=n_volumes, tr=tr, eeg_sfreq=eeg_sfreq)
    layout = build_layout(coupling) if coupling else None
    out = Path(out_dir).expanduser().absolute()
    _check_target(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise NeuroFuseError(f"cannot create a folder next to the output ({exc.strerror})", out.parent,
                             hint="choose an output location you can write to") from exc
    try:
        os.chmod(tmp, 0o755)
        subjects, n_runs_done = _write_dataset(tmp, cfg, progress, layout, list(coupling or ()))
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = [p for p in out.rglob("*") if p.is_file()]
    return SimulationSummary(
        out_dir=out, subjects=subjects, runs=n_runs_done, seconds=time.perf_counter() - start,
        preset=cfg.preset, seed=cfg.seed, truth_dir=out / TRUTH_DIR, files=len(files),
        bytes=sum(p.stat().st_size for p in files),
    )


# ------------------------------------------------------------------------------ the writer
def _write_dataset(root: Path, cfg: SimulationConfig, progress: bool, layout: dict | None,
                   coupling_texts: list[str]) -> tuple[list[str], int]:
    """``layout`` None = the default :data:`bold.REGIONS` (whose files stay byte-identical)."""
    from tqdm import tqdm

    truth_root = root / TRUTH_DIR
    width = max(2, len(str(cfg.n_subjects)))
    subjects = [f"{i + 1:0{width}d}" for i in range(cfg.n_subjects)]
    sessions = [str(i + 1) for i in range(cfg.n_sessions)] if cfg.n_sessions > 1 else [None]
    runs = [str(i + 1) for i in range(cfg.n_runs)] if cfg.n_runs > 1 else [None]
    total = len(subjects) * len(sessions) * len(runs)

    # dataset-level geometry shared by all subjects
    lo, hi = anatomy.mni_brain_box()
    epi_shape = bold.epi_shape(hi - lo, cfg.epi_voxel, cfg.epi_margin)
    n_slices = epi_shape[2]
    slice_times = bold.slice_timing(n_slices, cfg.tr)
    masks = bold.region_masks(layout)
    maps = bold.epi_source_maps(cfg.epi_voxel, masks)
    fs_truth = eeg.truth_sfreq(cfg.eeg_sfreq)
    grad_fmax = min(eeg.AMP_LOWPASS, 0.4 * cfg.eeg_sfreq)

    _write_dataset_files(root, cfg, subjects, slice_times, layout)
    region_files = _write_regions(root, truth_root, masks, layout or bold.REGIONS)

    index = {
        "generator": {"name": GENERATOR, "version": __version__},
        "config": cfg.as_dict() | ({"coupling": coupling_texts} if layout is not None else {}),
        "conventions": _conventions(),
        "file_descriptions": _FILE_DESCRIPTIONS,
        "regions": region_files,
        "anat": [],
        "runs": [],
    }
    bar = tqdm(total=total, unit="run", desc="neurofuse simulate", disable=not progress, file=sys.stderr,
               dynamic_ncols=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total} runs [{elapsed}<{remaining}{postfix}]")
    try:
        for i_sub, sub in enumerate(subjects):
            for i_ses, ses in enumerate(sessions):
                ses_ent = {"sub": sub, "ses": ses}
                bar.set_postfix_str(f"sub-{sub} anat")
                head_rng = _rng(cfg.seed, 1, i_sub, i_ses)
                head = anatomy.random_head(head_rng)
                anat_record = _write_anat(root, truth_root, ses_ent, head, cfg, head_rng)
                t1w_in_scans = anat_record["files"].pop("T1w_in_scans")
                index["anat"].append(anat_record)
                sub_lo, sub_hi = anatomy.subject_brain_box(head)
                grid = bold.epi_grid(epi_shape, cfg.epi_voxel, (sub_lo + sub_hi) / 2.0)
                session_start = datetime(2021, 3, 1, 9, 0, 0) + timedelta(days=7 * i_sub + i_ses)
                scans = {"filename": [t1w_in_scans], "acq_time": [_iso(session_start)]}
                for i_run, run in enumerate(runs):
                    ent = {"sub": sub, "ses": ses, "task": TASK, "run": run}
                    bar.set_postfix_str(f"{run_prefix(ent)}")
                    bold_start = session_start + timedelta(minutes=10 + 15 * i_run)
                    record = _write_run(root, truth_root, ent, head, grid, maps, slice_times, cfg,
                                        fs_truth, grad_fmax, (cfg.seed, i_sub, i_ses, i_run), bar.update,
                                        layout)
                    lead = record.figures["eeg_lead_s"]
                    scans["filename"] += [record.files["bold_in_scans"], record.files["eeg_in_scans"]]
                    scans["acq_time"] += [_iso(bold_start), _iso(bold_start - timedelta(seconds=lead))]
                    record.figures["bold_acq_time"] = _iso(bold_start)
                    record.figures["eeg_acq_time"] = _iso(bold_start - timedelta(seconds=lead))
                    run_files = {k: v for k, v in record.files.items() if not k.endswith("_in_scans")}
                    index["runs"].append({"entities": {k: v for k, v in ent.items() if v is not None},
                                          "files": run_files, "figures": record.figures})
                scans_path = root / subject_dir(ses_ent) / f"{entity_string(ses_ent)}_scans.tsv"
                write_tsv(scans_path, scans)
    finally:
        bar.close()
    write_json(truth_root / TRUTH_INDEX, index)
    return subjects, total


#: What each key of the ``files`` entries of truth.json points to (paths relative to the dataset root).
_FILE_DESCRIPTIONS = {
    "regions.<band>.mask": "binary region of the band, 2 mm MNI grid; its JSON sidecar holds coupling and spheres",
    "anat.T1w": "raw T1w image (BIDS)",
    "anat.affine_json": "A (subject -> MNI affine), its inverse, its parameters and the warp's Gaussian bumps",
    "anat.affine_txt": "A as a plain 4x4 text matrix",
    "anat.forward_warp": "u(r), the true forward displacement on the 2 mm MNI grid (see conventions.subject_to_mni)",
    "anat.inverse_warp": "v(q), the true inverse displacement on the 2 mm MNI grid (see conventions.mni_to_subject)",
    "anat.bias_field": "multiplicative intensity bias applied to the T1w, on the T1w grid",
    "runs.bold": "raw BOLD (BIDS)",
    "runs.eeg": "raw EEG header (BIDS, BrainVision)",
    "runs.true_motion": "per-volume motion params (mm, rad) and framewise displacement",
    "runs.brain_mask_epi": "brain mask on the BOLD grid at the reference pose",
    "runs.noiseless_boldref": "EPI baseline at the reference pose (no activity, drift, motion or noise)",
    "runs.drivers": "z-scored band drivers, HRF-convolved regressors and EEG envelopes (µV) at each volume start",
    "runs.drivers_fine": "the same on the fine driver grid (BOLD time)",
    "runs.clean_eeg": "the 32 EEG channels without any artifact at truth_sfreq (FIF, volts as MNE stores them)",
    "runs.artifact_model": "every artifact parameter (neurofuse.simulate.eeg.ArtifactModel)",
    "runs.rpeaks": "ECG R-peaks (EEG time, samples), RR intervals, per-beat BCG gain and delay",
    "runs.blinks": "blink onsets, durations and VEOG amplitudes",
    "runs.slice_onsets": "exact onset of every slice excitation in EEG time and samples (with jitter)",
}


def _conventions() -> dict:
    return {
        "units": "lengths mm, angles radians, times seconds, EEG microvolts (µV) unless a column says otherwise",
        "world_frames": (
            "subject space = scanner RAS+ mm of the T1w and of the BOLD reference pose (volume 0); "
            "MNI space = RAS+ mm of nilearn's bundled MNI152 template (ICBM 2009a nonlinear symmetric), "
            "labelled MNI152NLin2009cAsym as in the project's data contract"
        ),
        "subject_to_mni": (
            "q = A p + u(A p): A = 4x4 affine (desc-T1wtoMNI_xfm.json/.txt, applied first); u = forward "
            "displacement, RAS mm, defined as the trilinear interpolation (constant beyond the grid edge) of "
            "desc-forwardwarp_xfm.nii.gz on the 2 mm MNI grid, evaluated at the affine-mapped point r = A p. "
            "This is exactly the mapping used to simulate the T1w and the BOLD"
        ),
        "mni_to_subject": (
            "p = A^-1 (q + v(q)): v = inverse displacement (desc-inversewarp_xfm.nii.gz, at MNI grid points q, "
            "RAS mm, solves r + u(r) = q with r = q + v(q), rounded to 2^-10 mm). To resample a subject image "
            "into MNI space, sample it at p for every MNI voxel q"
        ),
        "warp_files": (
            "NIfTI 5-D (X, Y, Z, 1, 3), intent vector, int16 with scale factor 2^-10 (read with nibabel "
            "get_fdata), components dx dy dz in RAS mm (not ITK/LPS)"
        ),
        "head_motion": (
            "neurofuse.transforms: params (trans_x, trans_y, trans_z, rot_x, rot_y, rot_z) in mm and radians; "
            "M_t = rigid_matrix(params[t]) = T @ Rx @ Ry @ Rz about the scanner origin, maps a head point in the "
            "reference pose (volume 0, identical to the T1w pose) to its position in volume t; the corrected "
            "volume t at reference position x is I_t(M_t x). Motion is constant within a volume. FD: Power 2012, "
            "50 mm sphere, FD[0] = 0"
        ),
        "bold_time": (
            "0 = start of BOLD volume 0 (its first slice). Volume k starts at k*TR; spatial slice z is acquired at "
            "k*TR + SliceTiming[z] and its voxels carry the signal of that instant"
        ),
        "eeg_time": (
            "EEG sample n (0-based, MNE convention) is at EEG time n/sfreq; BOLD time = EEG time - eeg_lead_s. "
            "Volume marker k (Response/R128) is at round(sample of the onset of volume k's first slice); "
            "exact (jittered, fractional) slice onsets are in desc-slices_events.tsv"
        ),
        "clean_eeg": (
            "desc-clean_eeg.fif holds the 32 EEG channels at the truth rate truth_sfreq = sfreq / L (integer L). "
            "raw[:, L*m] = clean[:, m] + sum of artifacts at sample L*m (to float32 rounding); at other samples "
            "the clean part is the band-limited (FFT) interpolation of the truth"
        ),
        "artifact_model": (
            "desc-artifacts_eeg.npz: every artifact parameter; neurofuse.simulate.eeg.ArtifactModel.load + "
            "artifact_components(model, samples) recomputes gradient, bcg, ecg, blink and line exactly"
        ),
        "drivers": (
            "per band: z-scored driver d(t); EEG envelope = amplitude_uv * exp(0.4 d(t)); BOLD relative change in "
            "the band's region = coupling * (HRF * d)(t), HRF = nilearn spm_hrf with unit sum"
        ),
    }


def _layout_sentence(layout: dict | None) -> str:
    """README text on the coupled activity (the default layout keeps its historic wording)."""
    if layout is None:
        return ("activity driven by EEG alpha power (negative coupling,\n"
                "occipito-parietal) and beta power (positive coupling, sensorimotor).")
    parts = [f"{band} power ({'negative' if spec['coupling'] < 0 else 'positive'} coupling {spec['coupling']:g}, "
             f"{len(spec['spheres'])} sphere{'s' if len(spec['spheres']) > 1 else ''})" for band, spec in layout.items()]
    return "activity driven by a custom coupling layout (--coupling):\n" + ", ".join(parts) + "."


def _write_dataset_files(root: Path, cfg: SimulationConfig, subjects: list[str], slice_times: np.ndarray,
                         layout: dict | None = None) -> None:
    write_json(root / "dataset_description.json", {
        "Name": f"NeuroFuse simulated simultaneous EEG-fMRI (preset {cfg.preset}, seed {cfg.seed})",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
        "License": "CC0",
        "Authors": ["NeuroFuse developers"],
        "GeneratedBy": [{"Name": "neurofuse", "Version": __version__,
                         "Description": "neurofuse simulate: ground-truth EEG-fMRI generator"}],
        "SourceDatasets": [{"URL": "https://nist.mni.mcgill.ca/icbm-152-nonlinear-atlases-2009/",
                            "Version": "ICBM 2009a nonlinear symmetric, as bundled with nilearn"}],
    })
    (root / "README").write_text(
        "NeuroFuse simulated simultaneous EEG-fMRI dataset\n"
        "=================================================\n\n"
        f"Written by `neurofuse simulate` (neurofuse {__version__}), preset '{cfg.preset}', seed {cfg.seed}.\n"
        "Every subject's T1w is the MNI152 template (as bundled with nilearn) moved by a known affine and a\n"
        "smooth warp, with an intensity bias. Resting-state BOLD runs carry interleaved slice timing, known\n"
        f"rigid head motion, thermal noise and {_layout_sentence(layout)} The EEG, recorded in the\n"
        "scanner, holds gradient, ballistocardiogram, blink and 50 Hz artifacts, and one Response R128\n"
        "marker per volume.\n\n"
        "The ground truth of every simulated quantity is in derivatives/simulation/ (see its truth.json).\n"
        "These are synthetic data: no person was scanned.\n",
        encoding="utf-8",
    )
    rng = _rng(cfg.seed, 0)
    write_tsv(root / "participants.tsv", {
        "participant_id": [f"sub-{s}" for s in subjects],
        "age": [int(a) for a in rng.integers(20, 40, len(subjects))],
        "sex": [str(x) for x in rng.choice(["F", "M"], len(subjects))],
        "handedness": ["R"] * len(subjects),
    })
    write_json(root / "participants.json", {
        "participant_id": {"Description": "Unique participant identifier"},
        "age": {"Description": "Age of the (simulated) participant", "Units": "year"},
        "sex": {"Description": "Sex of the (simulated) participant", "Levels": {"F": "female", "M": "male"}},
        "handedness": {"Description": "Handedness", "Levels": {"R": "right", "L": "left"}},
    })
    write_json(root / f"{entity_string({'task': TASK})}_bold.json", {
        "TaskName": TASK,
        "RepetitionTime": cfg.tr,
        "SliceTiming": [float(t) for t in slice_times],
        "SliceEncodingDirection": "k",
    })


def _write_regions(root: Path, truth_root: Path, masks: dict[str, np.ndarray], layout: dict) -> dict:
    write_json(truth_root / "dataset_description.json", {
        "Name": "Ground truth of the NeuroFuse simulation",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "neurofuse", "Version": __version__,
                         "Description": "neurofuse simulate: ground truth of the simulated dataset"}],
        "SourceDatasets": [{"URL": "../../"}],
        "DatasetLinks": {"raw": "../../"},
    })
    (truth_root / "README").write_text(
        "Ground truth of a `neurofuse simulate` dataset. truth.json lists every file and the conventions\n"
        "(frames, units, directions, time axes). Truth files that BIDS has no name for are listed in\n"
        ".bidsignore.\n", encoding="utf-8")
    (truth_root / ".bidsignore").write_text(
        "truth.json\n*_xfm.json\n*_xfm.txt\n*_xfm.nii.gz\n*_timeseries.tsv\n*_timeseries.json\n"
        "*_desc-noiseless_boldref.nii.gz\n*_desc-clean_eeg.fif\n*_desc-artifacts_eeg.npz\n", encoding="utf-8")
    affine = anatomy.mni_2mm()["mask"].affine
    out = {}
    for band, mask in masks.items():
        stem = entity_string({"space": anatomy.MNI_SPACE, "label": band})
        path = truth_root / f"{stem}_mask.nii.gz"
        write_nifti(path, mask.astype(np.uint8), affine, xform_code=4)
        spec = layout[band]
        sidecar = {
            "Description": f"True {band}-coupled region: {spec['description']}",
            "Type": "ROI",
            "SpatialReference": "nilearn MNI152 template (ICBM 2009a nonlinear symmetric), 2 mm grid",
            "Band": band,
            "Coupling": spec["coupling"],
            "CouplingSign": "negative" if spec["coupling"] < 0 else "positive",
            "CouplingDefinition": "relative BOLD change per unit of the HRF-convolved z-scored driver",
            "Spheres": [{"CentreMNI": list(c), "RadiusMM": r} for c, r in spec["spheres"]],
            "GreyMatterThreshold": 0.5,
            "VoxelCount": int(mask.sum()),
            "Grid": "nilearn MNI152 2 mm grid (99 x 117 x 95)",
        }
        write_json(path.with_name(f"{stem}_mask.json"), sidecar)
        out[band] = {"mask": _rel(path, root), "coupling": spec["coupling"], "voxels": int(mask.sum())}
    return out


def _write_anat(root: Path, truth_root: Path, ent: dict, head: anatomy.HeadModel, cfg: SimulationConfig,
                rng: np.random.Generator) -> dict:
    data, affine, bias = anatomy.synthesize_t1w(head, cfg.t1w_voxel, rng)
    t1w = _path(root, ent, "anat", "T1w", ".nii.gz")
    write_nifti(t1w, data, affine)
    write_json(t1w.with_name(t1w.name.replace(".nii.gz", ".json")), {
        **_MR_DEVICE,
        "MRAcquisitionType": "3D",
        "EchoTime": 0.00298,
        "RepetitionTime": 2.3,
        "InversionTime": 0.9,
        "FlipAngle": 9,
        "SkullStripped": True,
        "Description": "Simulated: MNI152 template (brain only) under a known affine + warp, with a smooth bias field",
    })
    files = {"T1w": _rel(t1w, root), "T1w_in_scans": t1w.relative_to(root / subject_dir(ent)).as_posix()}

    xfm_json = _path(truth_root, ent, "anat", "xfm", ".json", desc="T1wtoMNI")
    write_json(xfm_json, {
        "Description": "True affine part of the subject (T1w scanner RAS mm) -> MNI (RAS mm) mapping",
        "FromSpace": "T1w (scanner RAS+, mm)",
        "ToSpace": f"{anatomy.MNI_SPACE} (RAS+, mm)",
        "Mapping": "q = A p + u(A p); see desc-forwardwarp / desc-inversewarp for u and its inverse",
        **head.to_json(),
    })
    xfm_txt = xfm_json.with_suffix(".txt")
    xfm_txt.write_text("\n".join(" ".join(repr(float(v)) for v in row) for row in head.affine) + "\n")
    forward, inverse, mni_affine = anatomy.warp_fields(head)
    fwd = _path(truth_root, ent, "anat", "xfm", ".nii.gz", space=anatomy.MNI_SPACE, desc="forwardwarp")
    inv = _path(truth_root, ent, "anat", "xfm", ".nii.gz", space=anatomy.MNI_SPACE, desc="inversewarp")
    write_nifti(fwd, forward[:, :, :, None, :], mni_affine, xform_code=4, intent="vector",
                slope=anatomy.WARP_QUANTUM, description="u(r), RAS mm, at MNI points r")
    write_nifti(inv, inverse[:, :, :, None, :], mni_affine, xform_code=4, intent="vector",
                slope=anatomy.WARP_QUANTUM, description="v(q), RAS mm, at MNI points q")
    bias_path = _path(truth_root, ent, "anat", "T1w", ".nii.gz", desc="biasfield")
    write_nifti(bias_path, bias, affine, slope=2.0**-13, description="multiplicative bias of the T1w")
    write_json(bias_path.with_name(bias_path.name.replace(".nii.gz", ".json")), {
        "Description": "True multiplicative intensity bias applied to the T1w (same grid)",
        "SkullStripped": False,
        "Sources": [f"bids:raw:{files['T1w']}"],
    })
    files.update({
        "affine_json": _rel(xfm_json, root), "affine_txt": _rel(xfm_txt, root),
        "forward_warp": _rel(fwd, root), "inverse_warp": _rel(inv, root), "bias_field": _rel(bias_path, root),
    })
    disp = np.linalg.norm(forward, axis=-1)[anatomy.mni_2mm()["mask"].data > 0.5]
    return {
        "entities": {k: v for k, v in ent.items() if v is not None},
        "files": files,
        "figures": {"warp_max_mm": float(disp.max()), "warp_mean_mm": float(disp.mean()),
                    "t1w_shape": list(data.shape), "t1w_voxel_mm": cfg.t1w_voxel},
    }


def _bold_note(band: str, layout: dict | None) -> str:
    """Custom layouts say in the drivers' sidecars which drivers reach the BOLD (the default says nothing)."""
    if layout is None:
        return ""
    if band in layout:
        return f"; drives the BOLD of the {band} region (coupling {layout[band]['coupling']:g})"
    return "; not coupled to the BOLD in this layout"


def _write_run(root: Path, truth_root: Path, ent: dict, head: anatomy.HeadModel, grid: bold.EpiGrid,
               maps: dict, slice_times: np.ndarray, cfg: SimulationConfig, fs_truth: float, grad_fmax: float,
               key: tuple[int, ...], tick: Callable[[float], object] = lambda step: None,
               layout: dict | None = None) -> _RunRecord:
    """Simulate and write one run; ``tick`` receives progress increments summing to 1."""
    seed, *idx = key
    bands = drivers.BANDS if layout is None else coupling.driver_bands(layout)
    extra = tuple(eeg.RegionRhythm(b, coupling.workflow_bands()[b], tuple(c for c, _ in spec["spheres"]))
                  for b, spec in (layout or {}).items() if b not in drivers.BANDS)
    rec = _RunRecord(entities=ent)
    n_vol, tr = cfg.n_volumes, cfg.tr
    n_slices = len(slice_times)

    # --- timeline -------------------------------------------------------------------
    t_rng = _rng(seed, 2, *idx, 0)
    lead = round(float(t_rng.uniform(3.0, 6.0)), 6)
    tail = float(t_rng.uniform(2.0, 5.0))
    factor = int(round(cfg.eeg_sfreq / fs_truth))
    n_truth = int(np.ceil((lead + n_vol * tr + tail) * fs_truth))
    n_samples = n_truth * factor
    drv = drivers.make_drivers(-(lead + 40.0), n_samples / cfg.eeg_sfreq - lead + 1.0, _rng(seed, 2, *idx, 1),
                              bands=bands)

    # --- BOLD -----------------------------------------------------------------------
    motion, spikes = bold.random_motion(n_vol, cfg.n_spikes, _rng(seed, 2, *idx, 2))
    b_rng = _rng(seed, 2, *idx, 3)
    tsnr = float(b_rng.uniform(80.0, 100.0))
    brain_mask = _epi_brain_mask(head, grid)
    ref_base = _sample_reference(head, grid, maps["baseline"])
    sigma = float(np.mean(ref_base[brain_mask]) / tsnr)
    drift = (float(b_rng.uniform(-0.01, 0.01)), float(b_rng.uniform(-0.005, 0.005)))
    data, noiseless = bold.synthesize_bold(head, grid, maps, motion, tr, slice_times, drv.regressor_at, drift,
                                           sigma, b_rng, progress=lambda: tick(0.5 / n_vol), layout=layout)
    bold_path = _path(root, ent, "func", "bold", ".nii.gz")
    write_nifti(bold_path, data, grid.affine, tr=tr, slice_times=slice_times)
    write_json(bold_path.with_name(bold_path.name.replace(".nii.gz", ".json")), {
        **_MR_DEVICE,
        "MRAcquisitionType": "2D",
        "PulseSequenceType": "gradient-echo EPI",
        "ScanningSequence": "EP",
        "SequenceVariant": "SK",
        "EchoTime": 0.03,
        "FlipAngle": 78,
        "TaskDescription": "Simulated eyes-closed rest with simultaneous EEG",
        "Instructions": "Rest with your eyes closed and keep still",
    })
    rec.files["bold"] = _rel(bold_path, root)
    rec.files["bold_in_scans"] = bold_path.relative_to(root / subject_dir(ent)).as_posix()

    # --- BOLD truth -----------------------------------------------------------------
    fd = framewise_displacement(motion)
    mot = _path(truth_root, ent, "func", "timeseries", ".tsv", desc="truemotion")
    write_tsv(mot, {**{n: motion[:, j] for j, n in enumerate(PARAM_NAMES)}, "framewise_displacement": fd})
    write_json(mot.with_suffix(".json"), {
        "Description": "True head motion per volume (neurofuse.transforms convention; see truth.json)",
        **{n: {"Units": "mm" if n.startswith("trans") else "rad"} for n in PARAM_NAMES},
        "framewise_displacement": {"Description": "Power et al. 2012, 50 mm sphere, first value 0", "Units": "mm"},
        "SpikeVolumes": [int(s) for s in spikes],
    })
    mask_path = _path(truth_root, ent, "func", "mask", ".nii.gz", desc="brain")
    write_nifti(mask_path, brain_mask.astype(np.uint8), grid.affine)
    ref_path = _path(truth_root, ent, "func", "boldref", ".nii.gz", desc="noiseless")
    write_nifti(ref_path, noiseless, grid.affine)
    rec.files.update({"true_motion": _rel(mot, root), "brain_mask_epi": _rel(mask_path, root),
                      "noiseless_boldref": _rel(ref_path, root)})
    rec.figures.update({
        "tr_s": tr, "n_volumes": n_vol, "n_slices": n_slices, "epi_shape": list(grid.shape),
        "epi_voxel_mm": cfg.epi_voxel, "thermal_sigma": sigma, "target_tsnr": tsnr, "drift": list(drift),
        "max_fd_mm": float(fd.max()), "spike_volumes": [int(s) for s in spikes],
    })
    del data

    # --- EEG ------------------------------------------------------------------------
    e_rng = _rng(seed, 2, *idx, 4)
    clean = eeg.synthesize_clean(n_truth, fs_truth, lead, drv, e_rng, extra)
    model = eeg.random_artifact_model(sfreq=cfg.eeg_sfreq, n_samples=n_samples, lead=lead, tr=tr,
                                      n_volumes=n_vol, slice_offsets=np.sort(slice_times), rng=e_rng)
    raw = eeg.assemble_raw(clean, model)
    markers = np.rint(model.slice_onsets[::n_slices] * cfg.eeg_sfreq).astype(np.int64)
    vhdr = _path(root, ent, "eeg", "eeg", ".vhdr")
    vhdr.parent.mkdir(parents=True, exist_ok=True)
    eeg.write_brainvision(raw, cfg.eeg_sfreq, markers, vhdr)
    del raw
    tick(0.4)
    _write_eeg_sidecars(root, ent, cfg, n_samples, markers, grad_fmax)
    rec.files["eeg"] = _rel(vhdr, root)
    rec.files["eeg_in_scans"] = vhdr.relative_to(root / subject_dir(ent)).as_posix()

    # --- EEG truth ------------------------------------------------------------------
    amplitude = {b: clean.info[f"{b}_amplitude_uv"] for b in bands}
    vol_times = np.arange(n_vol) * tr
    drv_path = _path(truth_root, ent, "func", "timeseries", ".tsv", desc="drivers")
    cols = {"volume": np.arange(n_vol), "onset": vol_times}
    for band in bands:
        cols[band] = drv.driver_at(band, vol_times)
        cols[f"{band}_hrf"] = drv.regressor_at(band, vol_times)
        cols[f"{band}_envelope"] = amplitude[band] * np.exp(drivers.ENVELOPE_GAIN * cols[band])
    write_tsv(drv_path, cols)
    fine_path = _path(truth_root, ent, "func", "timeseries", ".tsv", desc="driversfine")
    fine = {"onset": drv.times}
    for band in bands:
        fine[band] = drv.drivers[band]
        fine[f"{band}_hrf"] = drv.regressors[band]
        fine[f"{band}_envelope"] = amplitude[band] * np.exp(drivers.ENVELOPE_GAIN * drv.drivers[band])
    write_tsv(fine_path, fine)
    for path, what in ((drv_path, "sampled at the start of each BOLD volume"),
                       (fine_path, f"on a {drivers.DRIVER_DT} s grid")):
        write_json(path.with_suffix(".json"), {
            "Description": f"True neural drivers {what}; onset is BOLD time (s, 0 = start of volume 0)",
            "onset": {"Units": "s"},
            **{b: {"Description": f"z-scored {b} driver; EEG {b} envelope = amplitude * exp(0.4 * driver)"
                               + _bold_note(b, layout)}
               for b in bands},
            **{f"{b}_hrf": {"Description": f"{b} driver convolved with nilearn's SPM HRF (unit sum)"}
               for b in bands},
            **{f"{b}_envelope": {"Description": f"amplitude envelope of the EEG {b} generator (topography peak 1)",
                                 "Units": "µV"} for b in bands},
        })
    rec.files.update({"drivers": _rel(drv_path, root), "drivers_fine": _rel(fine_path, root)})
    fif = _path(truth_root, ent, "eeg", "eeg", ".fif", desc="clean")
    fif.parent.mkdir(parents=True, exist_ok=True)
    eeg.write_clean_fif(clean, fif)
    npz = _path(truth_root, ent, "eeg", "eeg", ".npz", desc="artifacts")
    model.save(npz)
    sf = cfg.eeg_sfreq
    rpk = _path(truth_root, ent, "eeg", "events", ".tsv", desc="rpeaks")
    write_tsv(rpk, {
        "onset": model.rpeaks, "duration": np.zeros(model.rpeaks.size),
        "sample": np.rint(model.rpeaks * sf).astype(np.int64), "sample_exact": model.rpeaks * sf,
        "bold_time": model.rpeaks - lead, "rr_interval": np.r_[np.nan, np.diff(model.rpeaks)],
        "bcg_gain": model.beat_gain, "bcg_delay": model.beat_delay,
    })
    write_json(rpk.with_suffix(".json"), {
        "Description": "True ECG R-peaks; the BCG of each beat follows it (see artifact model)",
        "onset": {"Description": "EEG time of the R-peak", "Units": "s"},
        "sample": {"Description": "nearest EEG sample, 0-based"},
        "sample_exact": {"Description": "fractional EEG sample, 0-based"},
        "bold_time": {"Units": "s"}, "rr_interval": {"Units": "s"},
        "bcg_gain": {"Description": "beat amplitude factor of the BCG"},
        "bcg_delay": {"Description": "extra BCG delay of this beat", "Units": "s"},
    })
    blk = _path(truth_root, ent, "eeg", "events", ".tsv", desc="blinks")
    write_tsv(blk, {
        "onset": model.blink_onsets, "duration": model.blink_widths,
        "sample": np.rint(model.blink_onsets * sf).astype(np.int64),
        "peak": model.blink_onsets + model.blink_widths / 2, "amplitude": model.blink_amps,
    })
    write_json(blk.with_suffix(".json"), {
        "Description": "True blinks: sin^2 pulse from onset over duration, VEOG amplitude; weaker frontally",
        "onset": {"Units": "s"}, "duration": {"Units": "s"}, "peak": {"Units": "s"},
        "sample": {"Description": "nearest EEG sample of the onset, 0-based"},
        "amplitude": {"Units": "µV", "Description": "peak on VEOG"},
    })
    slc = _path(truth_root, ent, "eeg", "events", ".tsv", desc="slices")
    acq = np.tile(np.arange(n_slices), n_vol)
    order = bold.slice_order(n_slices)
    write_tsv(slc, {
        "onset": model.slice_onsets, "duration": np.full(model.slice_onsets.size, model.slice_period),
        "volume": np.repeat(np.arange(n_vol), n_slices), "acquisition_position": acq, "slice": order[acq],
        "sample_exact": model.slice_onsets * sf,
        "nominal_bold_time": np.repeat(np.arange(n_vol) * tr, n_slices) + acq * model.slice_period,
    })
    write_json(slc.with_suffix(".json"), {
        "Description": "Exact onsets of every slice excitation (gradient artifact template starts)",
        "onset": {"Description": "EEG time including sub-sample jitter", "Units": "s"},
        "volume": {"Description": "BOLD volume index (0-based)"},
        "acquisition_position": {"Description": "position of the slice in the acquisition order (0-based)"},
        "slice": {"Description": "spatial slice index along k (0-based)"},
        "sample_exact": {"Description": "fractional EEG sample, 0-based"},
        "nominal_bold_time": {"Description": "k*TR + SliceTiming[slice]", "Units": "s"},
    })
    rec.files.update({"clean_eeg": _rel(fif, root), "artifact_model": _rel(npz, root), "rpeaks": _rel(rpk, root),
                      "blinks": _rel(blk, root), "slice_onsets": _rel(slc, root)})
    rec.figures.update({
        "eeg_sfreq": sf, "truth_sfreq": fs_truth, "upsampling_factor": factor, "eeg_lead_s": lead,
        "eeg_n_samples": n_samples, "eeg_tail_s": n_samples / sf - lead - n_vol * tr,
        "slice_period_s": model.slice_period, "gradient_lowpass_hz": grad_fmax,
        "heart_rate_bpm": float(60.0 / np.mean(np.diff(model.rpeaks))), "n_rpeaks": int(model.rpeaks.size),
        "n_blinks": int(model.blink_onsets.size), "first_marker_sample": int(markers[0]),
        **{k: v for k, v in clean.info.items()},
    })
    tick(0.1)
    return rec


#: Scanner description shared by the MR sidecars (truthful: nothing was scanned).
_MR_DEVICE = {
    "Manufacturer": "NeuroFuse (simulated)",
    "ManufacturersModelName": "neurofuse simulate",
    "SoftwareVersions": f"neurofuse {__version__}",
    "MagneticFieldStrength": 3,
    "NonlinearGradientCorrection": False,
}


def _epi_brain_mask(head: anatomy.HeadModel, grid: bold.EpiGrid) -> np.ndarray:
    mask = anatomy.mni_2mm()["mask"]
    q = head.to_mni(anatomy.grid_points(grid.shape, grid.affine))
    ijk = apply_affine(np.linalg.inv(mask.affine), q).T
    return (ndimage.map_coordinates(mask.data, ijk, order=1, cval=0.0) >= 0.5).reshape(grid.shape)


def _sample_reference(head: anatomy.HeadModel, grid: bold.EpiGrid, source: anatomy.Volume) -> np.ndarray:
    q = head.to_mni(anatomy.grid_points(grid.shape, grid.affine))
    return ndimage.map_coordinates(source.data, source.world_to_voxel(q), order=1, cval=0.0).reshape(grid.shape)


def _write_eeg_sidecars(root: Path, ent: dict, cfg: SimulationConfig, n_samples: int, markers: np.ndarray,
                        grad_fmax: float) -> None:
    sf = cfg.eeg_sfreq
    write_json(_path(root, ent, "eeg", "eeg", ".json"), {
        "TaskName": TASK,
        "TaskDescription": "Simulated eyes-closed rest inside the MR scanner",
        "SamplingFrequency": sf,
        "PowerLineFrequency": eeg.LINE_FREQ,
        "EEGReference": eeg.REFERENCE,
        "EEGGround": eeg.GROUND,
        "SoftwareFilters": "n/a",
        "HardwareFilters": {"LowPass": {"CutoffFrequency (Hz)": grad_fmax}},
        "EEGChannelCount": len(eeg.EEG_CHANNELS),
        "ECGChannelCount": 1,
        "EOGChannelCount": 1,
        "EMGChannelCount": 0,
        "MISCChannelCount": 0,
        "TriggerChannelCount": 0,
        "RecordingType": "continuous",
        "RecordingDuration": n_samples / sf,
        "EEGPlacementScheme": "10-20",
        "Manufacturer": "NeuroFuse (simulated)",
        "ManufacturersModelName": "simulated MR-compatible amplifier (BrainAmp MR-like)",
        "CapManufacturer": "NeuroFuse (simulated)",
        "CapManufacturersModelName": "BrainCap MR 32 layout (simulated)",
        "SoftwareVersions": f"neurofuse {__version__}",
        "HeadCircumference": 58,
        "Instructions": "Rest with your eyes closed and keep still",
        "SubjectArtefactDescription": (
            "Simulated in-scanner recording: MR gradient artifact, ballistocardiogram, blinks, 50 Hz line noise"
        ),
    })
    names = list(eeg.ALL_CHANNELS)
    types = ["EEG"] * len(eeg.EEG_CHANNELS) + ["ECG", "EOG"]
    write_tsv(_path(root, ent, "eeg", "channels", ".tsv"), {
        "name": names,
        "type": types,
        "units": ["µV"] * len(names),
        "low_cutoff": [0.0] * len(names),
        "high_cutoff": [grad_fmax] * len(names),
        "reference": [eeg.REFERENCE] * len(names),
        "status": ["good"] * len(names),
        "status_description": ["n/a"] * len(names),
    })
    ev = _path(root, ent, "eeg", "events", ".tsv")
    write_tsv(ev, {
        "onset": markers / sf,
        "duration": np.zeros(markers.size),
        "sample": markers,
        "trial_type": ["volume"] * markers.size,
        "value": ["R128"] * markers.size,
        "volume": np.arange(markers.size),
    })
    write_json(ev.with_suffix(".json"), {
        "onset": {"Description": "Time of the scanner volume trigger from the start of the EEG recording",
                  "Units": "s"},
        "sample": {"Description": "EEG sample of the trigger (0-based; the .vmrk stores it 1-based)"},
        "trial_type": {"Description": "Event category", "Levels": {"volume": "start of a BOLD volume"}},
        "value": {"Description": "BrainVision marker description (type Response)",
                  "Levels": {"R128": "volume trigger"}},
        "volume": {"Description": "Index of the BOLD volume (0-based)"},
    })
