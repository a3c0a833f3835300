"""Speed and accuracy of the EEG chain (gradient -> BCG -> ICA) on a simulated run.

Prints, for our chain and side by side for the peer chain where it can run:

* time of each step (wall clock, one process on a shared 2-core machine);
* after gradient removal: correlation with the gradient-free signal (1-40 Hz, scan
  period, 250 Hz), median and worst channel (the FACETpy figure in shared/ANCHORS.md);
* after the whole chain: correlation with the true clean EEG (both average-referenced,
  1-40 Hz, scan period), median and worst channel;
* R-peak detection F1 (20 ms), and the correlation of per-volume alpha power with the
  true alpha envelope power.

Peer chain: FACETpy 2.0.2 standard pipeline (upsample x10, AAS window 30, PCA, ANC; it
pins mne 1.10.2 / numpy 2.1.3, so it runs in its own venv ``benchmarks/.work/facet-venv``
through a subprocess), then ``mne.preprocessing.apply_pca_obs`` with
``find_ecg_events`` R-peaks, then ICA with ``find_bads_eog``. Without that venv the
peer rows are skipped, and "ours + MNE OBS" still shows the MNE BCG step.

Usage::

    .venv/bin/python benchmarks/bench_eeg.py                 # demo preset, 1 subject
    .venv/bin/python benchmarks/bench_eeg.py --preset small  # 2 kHz, 48 s (faster)
    .venv/bin/python benchmarks/bench_eeg.py --facet         # + FACETpy peer chain
    .venv/bin/python benchmarks/bench_eeg.py --volumes 300 --speed  # 10-min run: time and peak memory

``--speed`` runs read + gradient + BCG removal on the simulated file in a fresh child
process and prints its wall time per step and its peak resident memory (the issue's goal
for a 10-minute, 34-channel, 5 kHz recording: <= 60 s on 2 cores, <= 4 GB).

Set up the peer venv once (needs PyPI)::

    .venv/bin/uv venv benchmarks/.work/facet-venv --python 3.11
    .venv/bin/uv pip install --python benchmarks/.work/facet-venv/bin/python facetpy==2.0.2
    benchmarks/.work/facet-venv/bin/python -m facet.build   # its C ANC filter (else a slow Python fallback)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import mne
import numpy as np
import pandas as pd

from neurofuse.eeg.bandpower import band_power_table
from neurofuse.eeg.bcg import remove_bcg, rpeaks_from_raw
from neurofuse.eeg.clean import clean_eeg
from neurofuse.eeg.gradient import remove_gradient_artifact
from neurofuse.eeg.io import read_raw
from neurofuse.eeg.metrics import align_rate, band_correlation, match_events

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
FACET_PY = WORK / "facet-venv" / "bin" / "python"
SF = 250.0

FACET_SCRIPT = r"""
import sys, time
from facet.pipelines import create_standard_pipeline
from facet.io import FIFExporter, EDFExporter
src, dst = sys.argv[1], sys.argv[2]
pipe = create_standard_pipeline(src, dst, trigger_regex=r"Response/R128", artifact_to_trigger_offset=0.0)
pipe.processors = [FIFExporter(path=dst, overwrite=True) if isinstance(p, EDFExporter) else p for p in pipe.processors]
t = time.perf_counter()
pipe.run(show_progress=False, channel_sequential=True)  # whole-recording x10 upsampling would need > 10 GB
print("FACET_SECONDS", time.perf_counter() - t)
"""


class Truth:
    """What the simulator knows about one run."""

    def __init__(self, root: Path, entities: dict, run: dict):
        from neurofuse.simulate.eeg import ArtifactModel, artifact_components

        files, fig = run["files"], run["figures"]
        self.vhdr = root / files["eeg"]
        self.n_slices = int(fig["n_slices"])
        self.tr = float(fig["tr_s"])
        self.n_volumes = int(fig["n_volumes"])
        self.lead = float(fig["eeg_lead_s"])
        raw = read_raw(self.vhdr)
        self.sfreq = raw.info["sfreq"]
        eeg = mne.pick_types(raw.info, eeg=True)
        model = ArtifactModel.load(root / files["artifact_model"])
        grad = artifact_components(model, np.arange(raw.n_times))["gradient"][eeg] * 1e-6
        self.gradient_free = align_rate(raw.get_data()[eeg] - grad, self.sfreq, SF)
        clean = mne.io.read_raw(root / files["clean_eeg"], preload=True, verbose="error")
        self.clean = align_rate(clean.get_data(), clean.info["sfreq"], SF)
        rpeaks = pd.read_csv(root / files["rpeaks"], sep="\t")["onset"].to_numpy()
        self.rpeaks = rpeaks[rpeaks < raw.times[-1]]  # the truth runs past the end of the EEG
        fine = pd.read_csv(root / files["drivers_fine"], sep="\t")
        t = fine["onset"].to_numpy()
        env2 = np.exp(2 * 0.4 * fine["alpha"].to_numpy())  # envelope power up to a constant
        self.alpha_power = np.array([env2[(t >= k * self.tr) & (t < (k + 1) * self.tr)].mean()
                                     for k in range(self.n_volumes)])
        self.scan = slice(int(self.lead * SF), int((self.lead + self.n_volumes * self.tr) * SF))


def _avg(x: np.ndarray) -> np.ndarray:
    return x - x.mean(axis=0, keepdims=True)


def _corr(est: np.ndarray, ref: np.ndarray, scan: slice) -> tuple[float, float]:
    n = min(est.shape[1], ref.shape[1])
    r = band_correlation(est[:, :n][:, scan], ref[:, :n][:, scan], SF, trim=0.5)
    return float(np.median(r)), float(np.min(r))


def simulate(preset: str, seed: int, volumes: int | None = None) -> Path:
    from neurofuse.simulate import simulate_dataset

    root = WORK / (f"sim_{preset}_s{seed}" if volumes is None else f"sim_{preset}_v{volumes}_s{seed}")
    if not (root / "derivatives" / "simulation" / "truth.json").exists():
        print(f"simulating preset {preset!r} (1 subject) into {root} ...", flush=True)
        simulate_dataset(root, preset=preset, n_subjects=1, seed=seed, n_volumes=volumes)
    return root


def speed_child(vhdr: str, n_slices: int) -> None:
    """Read -> gradient -> R-peaks + BCG in this process; print timings and peak RSS as JSON."""
    import resource

    t0 = time.perf_counter()
    raw = read_raw(vhdr)
    t1 = time.perf_counter()
    grad, _ = remove_gradient_artifact(raw, n_slices=n_slices)
    del raw
    t2 = time.perf_counter()
    bcg, _ = remove_bcg(grad)
    t3 = time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print("SPEED " + json.dumps({"read": t1 - t0, "gradient": t2 - t1, "bcg": t3 - t2, "total": t3 - t0,
                                 "cpu": usage.ru_utime + usage.ru_stime, "peak_rss_gb": usage.ru_maxrss / 1024**2,
                                 "n_times": int(grad.n_times)}))


def speed(root: Path, run: dict) -> dict:
    """Time and peak memory of read + gradient + BCG in a fresh process (see module docstring)."""
    vhdr = root / run["files"]["eeg"]
    fig = run["figures"]
    proc = subprocess.run([sys.executable, __file__, "--speed-child", str(vhdr), str(fig["n_slices"])],
                          capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("SPEED ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"speed run failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    res = json.loads(lines[0][len("SPEED "):])
    n_ch = len(mne.io.read_raw(vhdr, preload=False, verbose="error").ch_names)
    dur = fig["eeg_n_samples"] / fig["eeg_sfreq"]
    print(f"\nread + gradient + BCG removal, {vhdr.name}: {n_ch} channels, {fig['eeg_sfreq']:g} Hz, {dur:.0f} s "
          f"({fig['n_volumes']} volumes x {fig['n_slices']} slices), one fresh process")
    print(f"  read {res['read']:.1f} s, gradient {res['gradient']:.1f} s, BCG {res['bcg']:.1f} s, "
          f"total {res['total']:.1f} s wall, {res['cpu']:.1f} s CPU (goal <= 60 s); "
          f"peak memory {res['peak_rss_gb']:.2f} GB (goal <= 4 GB)")
    return res


def our_chain(truth: Truth, skip_ica: bool) -> dict:
    res: dict = {"name": "NeuroFuse (AAS aligned + deconv BCG + ICA)"}
    raw = read_raw(truth.vhdr)
    t0 = time.perf_counter()
    grad, glog = remove_gradient_artifact(raw, n_slices=truth.n_slices)
    res["t_gradient"] = time.perf_counter() - t0
    res["after_gradient"] = _corr(grad.get_data(picks="eeg"), truth.gradient_free, truth.scan)
    t0 = time.perf_counter()
    rpeaks = rpeaks_from_raw(grad)
    res["rpeaks"] = match_events(rpeaks, truth.rpeaks, 0.02)
    bcg, _ = remove_bcg(grad, rpeaks=rpeaks)
    res["t_bcg"] = time.perf_counter() - t0
    res["after_bcg"] = _corr(_avg(bcg.get_data(picks="eeg")), _avg(truth.clean), truth.scan)
    out = bcg
    if not skip_ica:
        t0 = time.perf_counter()
        out, clog, _ = clean_eeg(bcg)
        res["t_clean"] = time.perf_counter() - t0
        res["ica_excluded"] = clog["ica"]["reasons"]
    res["final"] = _corr(_avg(out.get_data(picks="eeg")), _avg(truth.clean), truth.scan)
    cols, values, _, _ = band_power_table(out, n_volumes=truth.n_volumes)
    res["alpha_r"] = float(np.corrcoef(values[:, cols.index("alpha_mean")], truth.alpha_power)[0, 1])
    res["grad_raw"] = grad
    return res


def mne_bcg_ica(raw250: mne.io.BaseRaw, truth: Truth, res: dict, skip_ica: bool) -> dict:
    """Peer steps 2-3: MNE find_ecg_events + apply_pca_obs, then ICA + find_bads_eog."""
    t0 = time.perf_counter()
    events, _, _ = mne.preprocessing.find_ecg_events(raw250, ch_name="ECG", verbose="error")
    qrs = (events[:, 0] - raw250.first_samp) / SF
    res["rpeaks"] = match_events(qrs, truth.rpeaks, 0.02)
    eeg_names = [raw250.ch_names[i] for i in mne.pick_types(raw250.info, eeg=True)]
    bcg = mne.preprocessing.apply_pca_obs(raw250, picks=eeg_names, qrs_times=qrs[(qrs > 0) & (qrs < raw250.times[-1])],
                                          verbose="error")
    res["t_bcg"] = time.perf_counter() - t0
    res["after_bcg"] = _corr(_avg(bcg.get_data(picks="eeg")), _avg(truth.clean), truth.scan)
    out = bcg
    if not skip_ica:
        t0 = time.perf_counter()
        filt = bcg.copy().filter(1.0, 40.0, picks=["eeg", "eog"], verbose="error")
        ica = mne.preprocessing.ICA(n_components=0.99, method="picard", random_state=97, verbose="error")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ica.fit(filt, picks="eeg", decim=3, verbose="error")
        bads, _ = ica.find_bads_eog(filt, verbose="error")
        ica.exclude = list(bads)
        out = ica.apply(filt, verbose="error")
        res["t_clean"] = time.perf_counter() - t0
        res["ica_excluded"] = {str(k): ["eog-correlation"] for k in bads}
    res["final"] = _corr(_avg(out.get_data(picks="eeg")), _avg(truth.clean), truth.scan)
    return res


def facet_chain(truth: Truth, skip_ica: bool, facet_fif: Path | None = None,
                facet_seconds: float | None = None) -> dict | None:
    res: dict = {"name": "peer: FACETpy 2.0.2 + MNE apply_pca_obs + ICA/EOG"}
    if facet_fif is not None:  # evaluate a FACETpy output made earlier (same script)
        res["t_gradient"] = facet_seconds if facet_seconds is not None else float("nan")
        raw = mne.io.read_raw(facet_fif, preload=True, verbose="error")
    elif not FACET_PY.exists():
        print(f"FACETpy venv not found ({FACET_PY}): peer gradient step skipped", flush=True)
        return None
    else:
        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            dst = Path(tmp) / "facet_raw.fif"
            t0 = time.perf_counter()
            proc = subprocess.run([str(FACET_PY), "-c", FACET_SCRIPT, str(truth.vhdr), str(dst)],
                                  capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode != 0 or not dst.exists():
                print(f"FACETpy failed (exit {proc.returncode}):\n" + (proc.stderr or proc.stdout)[-2000:], flush=True)
                return None
            inner = [float(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("FACET_SECONDS")]
            res["t_gradient"] = inner[0] if inner else wall
            raw = mne.io.read_raw(dst, preload=True, verbose="error")
    from neurofuse.eeg.io import guess_channel_types

    guess_channel_types(raw)
    data = align_rate(raw.get_data(), raw.info["sfreq"], SF)
    info = mne.create_info(raw.ch_names, SF, raw.get_channel_types())
    raw250 = mne.io.RawArray(data, info, verbose="error")
    res["after_gradient"] = _corr(raw250.get_data(picks="eeg"), truth.gradient_free, truth.scan)
    return mne_bcg_ica(raw250, truth, res, skip_ica)


def report(rows: list[dict], truth: Truth) -> None:
    def fmt(pair):
        return f"{pair[0]:.3f} / {pair[1]:.3f}" if pair else "-"

    dur = truth.n_volumes * truth.tr
    print(f"\nrun: {truth.vhdr.name}, {truth.sfreq:g} Hz, 34 channels, {dur:g} s scan "
          f"({truth.n_volumes} volumes x {truth.n_slices} slices), correlations median / worst channel, 1-40 Hz")
    head = f"{'chain':52s} {'grad s':>7s} {'BCG s':>6s} {'ICA s':>6s}  {'after gradient':>15s}  {'after BCG':>13s}  {'final':>13s}  {'R-peak F1':>9s}  {'alpha r':>7s}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['name'][:52]:52s} {r.get('t_gradient', float('nan')):7.1f} {r.get('t_bcg', float('nan')):6.1f} "
              f"{r.get('t_clean', float('nan')):6.1f}  {fmt(r.get('after_gradient')):>15s}  {fmt(r.get('after_bcg')):>13s}  "
              f"{fmt(r.get('final')):>13s}  {r['rpeaks']['f1']:9.3f}  {r.get('alpha_r', float('nan')):7.3f}")
    for r in rows:
        if "ica_excluded" in r:
            print(f"  ICA removed ({r['name'][:30]}): {r['ica_excluded']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="demo", choices=["demo", "small"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--facet", action="store_true", help="also run the FACETpy peer chain (its own venv)")
    ap.add_argument("--facet-fif", type=Path, help="evaluate this FACETpy output instead of running it")
    ap.add_argument("--facet-seconds", type=float, help="the time FACETpy took for --facet-fif")
    ap.add_argument("--skip-ica", action="store_true")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--volumes", type=int, help="BOLD volumes of the simulated run (demo: 150 of 2 s = 5 min)")
    ap.add_argument("--speed", action="store_true", help="only time read + gradient + BCG and its peak memory")
    ap.add_argument("--speed-child", nargs=2, metavar=("VHDR", "N_SLICES"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.speed_child:
        speed_child(args.speed_child[0], int(args.speed_child[1]))
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    root = simulate(args.preset, args.seed, args.volumes)
    index = json.loads((root / "derivatives/simulation/truth.json").read_text())
    run = index["runs"][0]
    if args.speed:
        res = speed(root, run)
        if args.json:
            args.json.write_text(json.dumps(res, indent=2))
        return 0
    truth = Truth(root, run["entities"], run)
    rows = []
    ours = our_chain(truth, args.skip_ica)
    rows.append(ours)
    hybrid = {"name": "ours gradient + MNE apply_pca_obs + ICA/EOG", "t_gradient": ours["t_gradient"],
              "after_gradient": ours["after_gradient"]}
    rows.append(mne_bcg_ica(ours.pop("grad_raw").copy(), truth, hybrid, args.skip_ica))
    if args.facet or args.facet_fif:
        peer = facet_chain(truth, args.skip_ica, args.facet_fif, args.facet_seconds)
        if peer:
            rows.append(peer)
    report(rows, truth)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
