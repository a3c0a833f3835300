"""Training the fusion model with held-out subjects, and the voxel heatmaps it yields.

Data: every paired run's preprocessed BOLD inside the group mask (the intersection of
the runs' brain masks), cleaned of the motion confounds and slow drifts and z-scored
per voxel (nilearn ``signal.clean``); its band power (log, z-scored per column); regions
are compact parcels from k-means on the group mask's voxel coordinates (no atlas to
download; the same parcels for every subject in template space).

Validation is subject-wise: subjects are dealt round-robin into ``folds`` folds; each
fold trains on the other subjects, stops early on a held-out time block at the end of
each training run (separated by one window so windows do not overlap), and is evaluated
on its held-out subjects. With a single subject the folds hold out runs, or, with a
single run, the two halves of the run (each trained on the other) — the log and the
model card say which.

Heatmaps (on held-out data only): a ridge read-out from the EEG embedding to every
voxel is fitted on the training runs; on the held-out runs the predicted BOLD is
correlated voxel by voxel with the measured BOLD (``desc-fusion``: all bands). Per
band, the prediction is split into the part due to that band (prediction minus the
prediction with the band's features at their mean) and correlated with the measured
BOLD; the sign is the direction in which more power of the band moves the prediction,
so a band whose power lowers BOLD (alpha) gives negative values. Per-subject maps are
Fisher-averaged over its runs and the group map over subjects.

Determinism: fixed seeds for torch, numpy and the batch order, deterministic torch
algorithms, float32 on the CPU; a checkpoint after every epoch holds the model,
optimiser, early-stopping state, history and the batch generator's state, so a run
resumed after SIGTERM continues exactly where it stopped.

Preemption: a Spot VM (or ``scancel``, or Kubernetes evicting a pod) sends SIGTERM. The
checkpoint is replaced atomically, so whenever the signal comes the file holds the last
finished epoch; during training SIGTERM also ends the job at once with a message naming
that checkpoint (exit status 143, as for an unhandled SIGTERM) and without leaving a
temporary file, and the retried job resumes from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from neurofuse.errors import NeuroFuseError
from neurofuse.fusion.data import band_power_matrix, check_rows, confound_matrix, load_bold, read_table
from neurofuse.fusion.glm import MOTION_CONFOUNDS
from neurofuse.io import atomic_write_text, save_nifti, save_sidecar, save_torch

__all__ = ["TrainConfig", "RunInput", "prepare", "make_folds", "train_fold", "fold_maps", "subject_maps", "fit_fusion"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the fusion model and its training (config ``fusion.model``)."""

    arch: str = "transformer"
    window: int = 8
    width: int = 32
    embedding: int = 16
    layers: int = 2
    heads: int = 4
    dropout: float = 0.2
    n_regions: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 64
    max_epochs: int = 150
    patience: int = 25
    nce_weight: float = 0.5
    temperature: float = 0.1
    ridge: float = 100.0
    val_fraction: float = 0.2
    folds: int = 5
    high_pass: float = 0.01
    seed: int = 42

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RunInput:
    """The files of one paired run."""

    run: str
    subject: str
    bold: str
    mask: str
    bands: str
    confounds: str
    tr: float


@dataclass
class Prepared:
    runs: list[RunInput]
    mask_img: nib.Nifti1Image
    bold: list[np.ndarray]  # (T, V) per run
    eeg: list[np.ndarray]  # (T, F) per run
    regions: np.ndarray  # (V,) parcel label per voxel
    feature_names: list[str]
    band_of_feature: np.ndarray  # (F,) index into bands
    bands: list[str]
    excluded: list[str] = field(default_factory=list)


def _parcels(mask: np.ndarray, affine: np.ndarray, n_regions: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    xyz = nib.affines.apply_affine(affine, np.argwhere(mask))
    n = min(n_regions, len(xyz))
    km = KMeans(n_clusters=n, n_init=1, random_state=seed, max_iter=100).fit(xyz[:: max(1, len(xyz) // 20000)])
    return km.predict(xyz).astype(np.int32)


def _clean(y: np.ndarray, confounds: np.ndarray, tr: float, high_pass: float) -> np.ndarray:
    """Residual of ``y`` (T, V) after confounds, cosine drifts and a constant, z-scored per column.

    One least-squares projection (what nilearn's ``signal.clean`` does in several passes
    over the data, 50x slower on a 2 mm brain); the drift basis is nilearn's.
    """
    from nilearn.glm.first_level import make_first_level_design_matrix

    frame_times = np.arange(len(y)) * tr
    drift = make_first_level_design_matrix(frame_times, drift_model="cosine", high_pass=high_pass).to_numpy()
    design = np.column_stack([confounds - confounds.mean(0), drift]).astype(np.float64)
    q, _ = np.linalg.qr(design)
    y = y.astype(np.float32)
    y = y - (q @ (q.T @ y)).astype(np.float32)
    sd = y.std(axis=0, ddof=1)
    return np.divide(y, sd, out=np.zeros_like(y), where=sd > 0)


def prepare(runs: Sequence[RunInput], bands: Sequence[str], cfg: TrainConfig,
            confounds: Sequence[str] = MOTION_CONFOUNDS, log=print) -> Prepared:
    """Load, check and clean every run; runs shorter than two windows are excluded with a warning."""
    from nilearn.masking import intersect_masks

    if not runs:
        raise NeuroFuseError("no paired EEG-BOLD runs to train the fusion model on",
                             hint="fusion needs runs with both EEG and BOLD")
    mask_img = intersect_masks([r.mask for r in runs], threshold=1.0, connected=False)
    mask = np.asarray(mask_img.dataobj) > 0
    if mask.sum() < cfg.n_regions:
        raise NeuroFuseError(f"the runs' brain masks overlap in {int(mask.sum())} voxels only", runs[0].mask,
                             hint="check the normalisation of every run (registration figures in the report)")
    kept, bold, eeg, excluded = [], [], [], []
    names: list[str] = []
    for r in runs:
        table = read_table(r.bands)
        n_vol = nib.load(r.bold).shape[-1]
        check_rows(n_vol, len(table), r.bands)
        if n_vol < 2 * cfg.window:
            msg = f"{r.run}: {n_vol} volumes, fewer than two model windows ({cfg.window} volumes each): excluded"
            log(f"WARNING {msg}")
            excluded.append(msg)
            continue
        feats, names = band_power_matrix(table, bands, r.bands)
        n_nan = int((~np.isfinite(table[names].to_numpy())).any(axis=1).sum())
        if n_nan:
            log(f"{r.run}: {n_nan} volumes without EEG band power set to the run mean")
        conf_table = read_table(r.confounds)
        check_rows(n_vol, len(conf_table), r.confounds, what="confounds table")
        conf = confound_matrix(conf_table, confounds, r.confounds).to_numpy()
        y = _clean(load_bold(r.bold, mask), conf, r.tr, cfg.high_pass)
        kept.append(r)
        bold.append(np.nan_to_num(y).astype(np.float32))
        eeg.append(feats.astype(np.float32))
    if len(kept) == 0:
        raise NeuroFuseError(f"every run is shorter than two model windows of {cfg.window} volumes",
                             hint="lower fusion.model.window")
    band_index = np.array([list(bands).index(n.split("_", 1)[0]) for n in names])
    regions = _parcels(mask, mask_img.affine, cfg.n_regions, cfg.seed)
    return Prepared(kept, mask_img, bold, eeg, regions, names, band_index, list(bands), excluded)


def make_folds(prep: Prepared, n_folds: int) -> tuple[list[list[int]], str]:
    """Held-out run indices per fold, and how they were chosen."""
    subjects = sorted({r.subject for r in prep.runs})
    if len(subjects) >= 2:
        k = min(n_folds, len(subjects))
        groups = [[s for i, s in enumerate(subjects) if i % k == f] for f in range(k)]
        return [[i for i, r in enumerate(prep.runs) if r.subject in g] for g in groups], "held-out subjects"
    if len(prep.runs) >= 2:
        k = min(n_folds, len(prep.runs))
        return [[i for i in range(len(prep.runs)) if i % k == f] for f in range(k)], \
            "held-out runs (one subject only: no subject can be held out)"
    return [[-1], [-2]], "held-out halves of the only run (one subject, one run: no subject or run can be held out)"


def _windows(n: int, window: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """End indices of the windows inside [start, stop)."""
    stop = n if stop is None else stop
    return np.arange(start + window - 1, stop)


#: Fewest windows a run's validation block holds when the run is long enough for it.
MIN_VAL_WINDOWS = 4


def _split(prep: Prepared, held_out: list[int], window: int, val_fraction: float):
    """(train, validation, test) lists of (run index, window end indices)."""
    train, val, test = [], [], []
    if held_out[0] < 0:  # halves of the only run
        n = len(prep.bold[0])
        half = n // 2
        test_half = (0, half) if held_out[0] == -1 else (half, n)
        train_half = (half, n) if held_out[0] == -1 else (0, half)
        test.append((0, _windows(n, window, *test_half)))
        parts = [(0, train_half)]
    else:
        test = [(i, _windows(len(prep.bold[i]), window)) for i in held_out]
        parts = [(i, (0, len(prep.bold[i]))) for i in range(len(prep.runs)) if i not in held_out]
    min_val = window + MIN_VAL_WINDOWS - 1  # volumes for MIN_VAL_WINDOWS whole validation windows
    for i, (a, b) in parts:
        n_val = max(1, int(round((b - a) * val_fraction)))
        if n_val < min_val and (b - a) - min_val >= window + MIN_VAL_WINDOWS - 1:
            n_val = min_val  # short runs: a block long enough to hold whole windows, if training keeps as many
        cut = b - n_val
        train.append((i, _windows(b, window, a, cut)))
        val.append((i, np.arange(cut + window - 1, b)))  # windows wholly after the training part
    val = [(i, idx) for i, idx in val if len(idx)]
    if not val:
        val = None
    return train, val, test


def _gather(prep: Prepared, parts, window: int, region_ts: list[np.ndarray]):
    eeg, fmri, target = [], [], []
    for i, idx in parts:
        offs = np.arange(-window + 1, 1)
        eeg.append(prep.eeg[i][idx[:, None] + offs])
        fmri.append(region_ts[i][idx[:, None] + offs])
        target.append(region_ts[i][idx])
    return np.concatenate(eeg), np.concatenate(fmri), np.concatenate(target)


def _region_series(prep: Prepared) -> list[np.ndarray]:
    n = int(prep.regions.max()) + 1
    counts = np.bincount(prep.regions, minlength=n).astype(np.float32)
    out = []
    for y in prep.bold:
        sums = np.zeros((len(y), n), np.float32)
        np.add.at(sums.T, prep.regions, y.T)
        r = sums / np.maximum(counts, 1)
        out.append(((r - r.mean(0)) / (r.std(0) + 1e-6)).astype(np.float32))
    return out


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)


@contextlib.contextmanager
def _exit_on_sigterm(describe, log=print):
    """While inside, SIGTERM raises ``SystemExit(143)`` after logging ``describe()`` (main thread only).

    Raising (instead of dying on the signal) runs the ``finally`` blocks: a checkpoint
    being written is either completed or its temporary file removed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, _frame):
        log(f"SIGTERM received (preempted or cancelled): stopping; {describe()}")
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train_fold(prep: Prepared, held_out: list[int], cfg: TrainConfig, checkpoint: str | PathLike,
               region_ts: list[np.ndarray] | None = None, log=print, stop_after: int | None = None,
               checkpoint_url: str | None = None) -> dict[str, Any]:
    """Train one fold, resuming from ``checkpoint`` if it belongs to the same data and config.

    ``checkpoint_url`` (``gs://...``): a copy of the checkpoint kept in the bucket after
    every epoch, and fetched when there is no local one: a job retried on a new VM after a
    preemption (cloud profiles) resumes from it.
    ``stop_after`` ends training after that many epochs of this call (tests of resume).
    Returns ``{"model": ..., "history": [...], "best_epoch": ..., "resumed_from": ...}``.
    """
    import torch

    from neurofuse.fusion.model import FusionModel, info_nce

    _seed_everything(cfg.seed)
    device = _device()
    region_ts = region_ts if region_ts is not None else _region_series(prep)
    train, val, _ = _split(prep, held_out, cfg.window, cfg.val_fraction)
    xe, xf, yt = (torch.from_numpy(a) for a in _gather(prep, train, cfg.window, region_ts))
    if val is not None:
        ve, vf, vy = (torch.from_numpy(a).to(device) for a in _gather(prep, val, cfg.window, region_ts))
    if val is None:
        log(f"runs too short for a validation block after {cfg.window}-volume windows: "
            "early stopping watches the training loss (no validation figures)")
    if len(xe) < 4:
        raise NeuroFuseError(f"only {len(xe)} training windows", hint="lower fusion.model.window or add data")
    model = FusionModel(xe.shape[2], xf.shape[2], cfg.window, arch=cfg.arch, width=cfg.width,
                        embedding=cfg.embedding, layers=cfg.layers, heads=cfg.heads, dropout=cfg.dropout).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    key = {"config": cfg.digest(), "held_out": list(map(int, held_out)), "n_train": int(len(xe)),
           "features": prep.feature_names[:3] + [len(prep.feature_names)]}
    state = {"epoch": 0, "best": math.inf, "best_epoch": 0, "best_state": None, "history": [], "bad": 0}
    resumed_from = None
    ckpt = Path(checkpoint)
    if checkpoint_url and not ckpt.is_file():
        from neurofuse.cloud import pull_file

        if pull_file(checkpoint_url, ckpt):
            log(f"fetched the checkpoint {checkpoint_url} (an earlier attempt of this job)")
    if ckpt.is_file():
        saved = torch.load(ckpt, map_location=device, weights_only=False)
        if saved.get("key") == key:
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
            gen.set_state(saved["generator"])
            torch.set_rng_state(saved["torch_rng"])  # dropout draws from the global generator
            state = saved["state"]
            resumed_from = state["epoch"]
            log(f"resumed from {ckpt} after epoch {resumed_from}")
        else:
            log(f"{ckpt} belongs to other data or settings: starting afresh")
    epochs_run, seconds = 0, []  # timings stay out of the checkpoint so its bytes are reproducible

    def where() -> str:
        if not ckpt.is_file():
            return "no epoch finished yet (no checkpoint): a re-run starts this fold afresh"
        return f"{ckpt} holds the last finished epoch; running the workflow again resumes from it"

    with _exit_on_sigterm(where, log):
        while state["epoch"] < cfg.max_epochs and state["bad"] < cfg.patience:
            t0 = time.perf_counter()
            model.train()
            order = torch.randperm(len(xe), generator=gen)
            total = {"mse": 0.0, "nce": 0.0}
            for start in range(0, len(order), cfg.batch_size):
                b = order[start:start + cfg.batch_size]
                if len(b) < 2:
                    continue
                e, f, y = xe[b].to(device), xf[b].to(device), yt[b].to(device)
                z_e, z_f, pred = model(e, f)
                mse = torch.mean((pred - y) ** 2)
                nce = info_nce(z_e, z_f, cfg.temperature)
                loss = mse + cfg.nce_weight * nce
                opt.zero_grad()
                loss.backward()
                opt.step()
                total["mse"] += float(mse.detach()) * len(b)
                total["nce"] += float(nce.detach()) * len(b)
            model.eval()
            with torch.no_grad():
                if val is not None:
                    z_e, z_f, pred = model(ve, vf)
                    v_mse = float(torch.mean((pred - vy) ** 2))
                    v_nce = float(info_nce(z_e, z_f, cfg.temperature)) if len(ve) > 1 else 0.0
                else:  # no validation block fits: stop on the training loss, and record no validation figures
                    v_mse = v_nce = math.nan
            monitored = (v_mse + cfg.nce_weight * v_nce) if val is not None else \
                (total["mse"] + cfg.nce_weight * total["nce"]) / len(xe)
            v_loss = v_mse + cfg.nce_weight * v_nce
            state["epoch"] += 1
            state["history"].append({"epoch": state["epoch"], "train_mse": total["mse"] / len(xe),
                                     "train_nce": total["nce"] / len(xe), "val_mse": v_mse, "val_nce": v_nce,
                                     "val_loss": v_loss})
            seconds.append(time.perf_counter() - t0)
            if monitored < state["best"] - 1e-4:
                state.update(best=monitored, best_epoch=state["epoch"], bad=0,
                             best_state={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            else:
                state["bad"] += 1
            save_torch({"key": key, "model": model.state_dict(), "optimizer": opt.state_dict(),
                        "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "state": state}, ckpt)
            if checkpoint_url:
                from neurofuse.cloud import push_file

                failed = push_file(ckpt, checkpoint_url)
                if failed:
                    log(f"WARNING {failed}")
            epochs_run += 1
            if stop_after is not None and epochs_run >= stop_after:
                break
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    model.eval()
    return {"model": model, "history": state["history"], "best_epoch": state["best_epoch"],
            "finished": state["epoch"] >= cfg.max_epochs or state["bad"] >= cfg.patience,
            "resumed_from": resumed_from, "epoch_seconds": seconds, "n_train": int(len(xe)), "n_val": 0 if val is None else int(len(ve))}


# ----------------------------------------------------------------------------- heatmaps


def _embed(model, eeg: np.ndarray, idx: np.ndarray, window: int) -> np.ndarray:
    import torch

    offs = np.arange(-window + 1, 1)
    x = torch.from_numpy(eeg[idx[:, None] + offs]).to(next(model.parameters()).device)
    with torch.no_grad():
        return model.eeg(x).cpu().numpy().astype(np.float64)


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Column-wise Pearson correlation of two (n, V) arrays (0 where a column is flat)."""
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a**2).sum(0) * (b**2).sum(0))
    return np.divide((a * b).sum(0), den, out=np.zeros(a.shape[1]), where=den > 0)


def fold_maps(prep: Prepared, model, held_out: list[int], cfg: TrainConfig) -> dict[str, Any]:
    """Held-out correlation maps (V,) per band and for all bands, per held-out run."""
    train, val, test = _split(prep, held_out, cfg.window, cfg.val_fraction)
    parts = train + (val or [])
    z = np.concatenate([_embed(model, prep.eeg[i], idx, cfg.window) for i, idx in parts])
    y = np.concatenate([prep.bold[i][idx] for i, idx in parts]).astype(np.float64)
    mu, sd = z.mean(0), z.std(0) + 1e-8
    zs = (z - mu) / sd
    weights = np.linalg.solve(zs.T @ zs + cfg.ridge * np.eye(zs.shape[1]), zs.T @ (y - y.mean(0)))
    out = []
    for i, idx in test:
        eeg = prep.eeg[i]
        actual = prep.bold[i][idx].astype(np.float64)

        def predict(features):
            return ((_embed(model, features, idx, cfg.window) - mu) / sd) @ weights

        full = predict(eeg)
        maps = {"fusion": _corr(full, actual)}
        for b, band in enumerate(prep.bands):
            cols = prep.band_of_feature == b
            muted, raised = eeg.copy(), eeg.copy()
            muted[:, cols] = 0.0
            raised[:, cols] += 1.0
            part = full - predict(muted)
            direction = np.sign((predict(raised) - full).mean(0))
            maps[band] = _corr(part, actual) * direction
        out.append({"run": prep.runs[i].run, "subject": prep.runs[i].subject, "maps": maps,
                    "n_samples": int(len(idx))})
    return {"runs": out}


def _fisher_mean(maps: Sequence[np.ndarray]) -> np.ndarray:
    return np.tanh(np.mean([np.arctanh(np.clip(m, -0.999999, 0.999999)) for m in maps], axis=0))


def subject_maps(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """Held-out maps averaged (Fisher z) over each subject's runs (or halves)."""
    by_subject: dict[str, dict[str, list[np.ndarray]]] = {}
    for res in results:
        for item in res["runs"]:
            for name, m in item["maps"].items():
                by_subject.setdefault(item["subject"], {}).setdefault(name, []).append(m)
    return {s: {n: _fisher_mean(ms) for n, ms in maps.items()} for s, maps in sorted(by_subject.items())}


# ----------------------------------------------------------------------------- the workflow step


def _software() -> dict[str, str]:
    import nilearn
    import sklearn
    import torch

    from neurofuse import __version__

    return {"neurofuse": __version__, "torch": torch.__version__, "nilearn": nilearn.__version__,
            "scikit-learn": sklearn.__version__, "numpy": np.__version__}


def fit_fusion(runs: Sequence[RunInput], bands: Sequence[str], cfg: TrainConfig, *, maps: Mapping[str, str],
               model_path: str, card_json: str, card_md: str, history_tsv: str, checkpoint_dir: str,
               curves_figure: str | None = None, maps_figure: str | None = None, checkpoint_url: str | None = None,
               subject_maps_out: Mapping[str, str] | None = None,
               confounds: Sequence[str] = MOTION_CONFOUNDS, log=print) -> dict[str, Any]:
    """Workflow step ``fusion_train_model``: train every fold, write the group heatmaps and the model card.

    ``maps`` maps ``"fusion"`` and each band to the output NIfTI path of its group heatmap;
    ``subject_maps_out`` (same keys) to a 4D NIfTI with each subject's held-out map, one
    volume per subject in the order of the sidecar's ``Subjects``.
    Checkpoints (one per fold, rewritten every epoch) go to ``checkpoint_dir``, and with
    ``checkpoint_url`` (outputs in a bucket) also to that ``gs://`` folder; a re-run or a
    retried job resumes from them. Returns the log (timings, samples per second).
    """
    import torch

    t_start = time.perf_counter()
    if os.environ.get("OMP_NUM_THREADS"):  # Snakemake sets it to the job's threads
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    prep = prepare(runs, bands, cfg, confounds, log=log)
    folds, scheme = make_folds(prep, cfg.folds)
    log(f"{len(prep.runs)} runs, {len(set(r.subject for r in prep.runs))} subjects, {len(folds)} folds: {scheme}")
    region_ts = _region_series(prep)
    results, fold_logs, states, history_rows = [], [], {}, []
    train_seconds, samples, epoch_seconds = 0.0, 0, []
    for k, held_out in enumerate(folds):
        t0 = time.perf_counter()
        name = f"fold-{k}_checkpoint.pt"
        fit = train_fold(prep, held_out, cfg, Path(checkpoint_dir) / name, region_ts, log=log,
                         checkpoint_url=f"{checkpoint_url.rstrip('/')}/{name}" if checkpoint_url else None)
        train_seconds += time.perf_counter() - t0
        samples += fit["n_train"] * len(fit["epoch_seconds"])  # epochs trained by this call
        epoch_seconds += fit["epoch_seconds"]
        states[f"fold-{k}"] = {n: v.detach().cpu() for n, v in fit["model"].state_dict().items()}
        res = fold_maps(prep, fit["model"], held_out, cfg)
        results.append(res)
        held = sorted({item["run"] for item in res["runs"]})
        fold_logs.append({"fold": k, "held_out": held, "best_epoch": fit["best_epoch"], "epochs": len(fit["history"]),
                          "n_train_windows": fit["n_train"], "n_val_windows": fit["n_val"],
                          "best_val_mse": _number(fit["history"][fit["best_epoch"] - 1]["val_mse"]) if fit["best_epoch"] else None,
                          "held_out_median_r": {i["run"]: float(np.median(i["maps"]["fusion"])) for i in res["runs"]},
                          "held_out_top1pct_r": {i["run"]: float(np.quantile(i["maps"]["fusion"], 0.99)) for i in res["runs"]}})
        for row in fit["history"]:
            history_rows.append({"fold": k, **row})
        log(f"fold {k}: {len(fit['history'])} epochs (best {fit['best_epoch']}), {time.perf_counter() - t0:.1f} s")
    per_subject = subject_maps(results)
    mask = np.asarray(prep.mask_img.dataobj) > 0
    group = {name: _fisher_mean([m[name] for m in per_subject.values()]) for name in ["fusion", *prep.bands]}
    for name, path in maps.items():
        vol = np.zeros(mask.shape, np.float32)
        vol[mask] = group[name]
        save_nifti(nib.Nifti1Image(vol, prep.mask_img.affine), path)
        what = "all EEG bands" if name == "fusion" else f"the {name} band's part of the prediction, signed by its direction"
        save_sidecar(path, {
            "Description": f"Held-out correlation between measured BOLD and the deep model's EEG-based prediction ({what}); "
                           f"Fisher-averaged over runs of a subject, then over {len(per_subject)} subjects",
            "Statistic": "Pearson r (held-out)", "Validation": scheme, "Subjects": sorted(per_subject),
            "Model": str(Path(model_path).name), "Seed": cfg.seed,
        })
    for name, path in (subject_maps_out or {}).items():
        labels = sorted(per_subject)
        vol = np.zeros(mask.shape + (len(labels),), np.float32)
        for i, label in enumerate(labels):
            vol[mask, i] = per_subject[label][name]
        save_nifti(nib.Nifti1Image(vol, prep.mask_img.affine), path)
        save_sidecar(path, {
            "Description": f"Held-out correlation between measured BOLD and the deep model's prediction, "
                           f"{'all EEG bands' if name == 'fusion' else 'the ' + name + ' band'}, one volume per subject "
                           "(Fisher-averaged over the subject's runs); each subject's map comes from the fold that held it out",
            "Statistic": "Pearson r (held-out)", "Validation": scheme, "Subjects": labels,
            "Model": str(Path(model_path).name), "Seed": cfg.seed,
        })
    save_torch({"config": asdict(cfg), "bands": list(prep.bands), "features": prep.feature_names,
                "regions": torch.from_numpy(prep.regions), "folds": states}, model_path)
    _write_history(history_rows, history_tsv)
    card = {
        "model": {"name": "NeuroFuse EEG-fMRI joint embedding", "architecture": cfg.arch,
                  "objective": f"MSE(EEG -> region BOLD) + {cfg.nce_weight:g} x InfoNCE (temperature {cfg.temperature:g})",
                  "parameters": int(sum(v.numel() for v in next(iter(states.values())).values())),
                  "file": Path(model_path).name},
        "data": {"runs": [r.run for r in prep.runs], "subjects": sorted({r.subject for r in prep.runs}),
                 "excluded": prep.excluded, "bands": list(prep.bands), "eeg_features": len(prep.feature_names),
                 "regions": int(prep.regions.max()) + 1, "voxels": int(mask.sum()),
                 "region_method": "k-means on the group mask's voxel coordinates"},
        "validation": {"scheme": scheme, "folds": fold_logs},
        "hyperparameters": asdict(cfg),
        "metrics": {"held_out_median_r": float(np.median(group["fusion"])),
                    "held_out_top1pct_r": float(np.quantile(group["fusion"], 0.99)),
                    **{f"{b}_peak_abs_r": float(np.abs(group[b]).max()) for b in prep.bands}},
        "seed": cfg.seed, "device": "cuda" if torch.cuda.is_available() else "cpu", "software": _software(),
        "intended_use": "Exploratory maps of where EEG band power predicts BOLD in held-out data; not a diagnostic tool.",
    }
    atomic_write_text(card_json, json.dumps(card, indent=2, sort_keys=True) + "\n")
    atomic_write_text(card_md, _card_markdown(card))
    if curves_figure:
        _plot_curves(history_rows, curves_figure)
    if maps_figure:
        from neurofuse.fusion.glm import plot_maps

        plot_maps({n: maps[n] for n in maps}, maps_figure, threshold=None, cmap="cold_hot",
                  title=f"Deep fusion heatmaps: held-out r ({scheme})")
    seconds = time.perf_counter() - t_start
    return {"step": "fusion_train_model", "seconds": round(seconds, 2), "train_seconds": round(train_seconds, 2),
            "samples_per_second": round(samples / max(train_seconds, 1e-9), 1),
            "epoch_seconds_median": float(np.median(epoch_seconds)), "epochs": len(epoch_seconds),
            "folds": fold_logs, "scheme": scheme, "excluded": prep.excluded}


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _write_history(rows: Sequence[Mapping[str, Any]], path: str) -> None:
    cols = ["fold", "epoch", "train_mse", "train_nce", "val_mse", "val_nce", "val_loss"]
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "n/a" if math.isnan(value) else f"{value:.6g}"
        return str(value)

    lines = ["\t".join(cols)] + ["\t".join(cell(row[c]) for c in cols) for row in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _card_markdown(card: Mapping[str, Any]) -> str:
    lines = [f"# Model card: {card['model']['name']}", "",
             f"- Architecture: {card['model']['architecture']} ({card['model']['parameters']} parameters per fold)",
             f"- Objective: {card['model']['objective']}",
             f"- Data: {len(card['data']['runs'])} runs of {len(card['data']['subjects'])} subjects; "
             f"{card['data']['eeg_features']} EEG features ({', '.join(card['data']['bands'])}); "
             f"{card['data']['regions']} regions ({card['data']['region_method']}); {card['data']['voxels']} voxels",
             f"- Validation: {card['validation']['scheme']}, {len(card['validation']['folds'])} folds",
             f"- Held-out median voxel r: {card['metrics']['held_out_median_r']:.3f}; "
             f"99th percentile: {card['metrics']['held_out_top1pct_r']:.3f}",
             f"- Seed: {card['seed']}; device: {card['device']}",
             f"- Software: {', '.join(f'{k} {v}' for k, v in card['software'].items())}",
             f"- Intended use: {card['intended_use']}", "", "## Hyper-parameters", ""]
    lines += [f"- {k}: {v}" for k, v in sorted(card["hyperparameters"].items())]
    if card["data"]["excluded"]:
        lines += ["", "## Excluded runs", ""] + [f"- {e}" for e in card["data"]["excluded"]]
    return "\n".join(lines) + "\n"


def _plot_curves(rows: Sequence[Mapping[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neurofuse.io import save_figure

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for fold in sorted({r["fold"] for r in rows}):
        rr = [r for r in rows if r["fold"] == fold]
        ep = [r["epoch"] for r in rr]
        for ax, key in zip(axes, ("mse", "nce")):
            line, = ax.plot(ep, [r[f"train_{key}"] for r in rr], label=f"fold {fold} train")
            if not all(math.isnan(r[f"val_{key}"]) for r in rr):
                ax.plot(ep, [r[f"val_{key}"] for r in rr], "--", color=line.get_color(), label=f"fold {fold} validation")
    axes[0].set(title="EEG -> BOLD prediction (MSE, z units)", xlabel="epoch", ylabel="mean squared error")
    axes[1].set(title="Contrastive EEG-fMRI alignment (InfoNCE)", xlabel="epoch", ylabel="loss (nats)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
