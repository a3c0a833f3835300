"""QC figures of the fMRI stage (matplotlib, Agg backend; PNG or SVG by file extension).

* :func:`plot_motion` — translations, rotations and framewise displacement over time,
  with the outlier threshold and flagged volumes marked.
* :func:`plot_carpet` — carpet plot (Power 2017): every brain voxel's detrended,
  z-scored time series as one row, with FD and standardised DVARS traces above it.
* :func:`plot_registration` — template edges over the normalised mean BOLD (nilearn).
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # never open a window; must precede pyplot

import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from neurofuse.io import save_figure  # noqa: E402


def _save_figure(fig: plt.Figure, out_file: str | os.PathLike, dpi: int = 100) -> str:
    save_figure(fig, out_file, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return os.fspath(out_file)


def _read_confounds(confounds: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    if isinstance(confounds, pd.DataFrame):
        return confounds
    return pd.read_csv(confounds, sep="\t", na_values="n/a")


def plot_motion(
    confounds: str | os.PathLike | pd.DataFrame,
    out_file: str | os.PathLike,
    *,
    tr: float | None = None,
    fd_threshold: float = 0.5,
    title: str | None = None,
) -> str:
    """Motion parameters and FD of one run (from the confounds TSV or table).

    Rotations are drawn in degrees for legibility (the TSV keeps radians). The x axis is
    time in seconds when ``tr`` is given, else the volume index.
    """
    table = _read_confounds(confounds)
    n = len(table)
    x = np.arange(n) * tr if tr else np.arange(n)
    fig, axes = plt.subplots(3, 1, figsize=(9, 6.5), sharex=True)
    for ax_name in ("x", "y", "z"):
        axes[0].plot(x, table[f"trans_{ax_name}"], label=ax_name, lw=1)
        axes[1].plot(x, np.degrees(table[f"rot_{ax_name}"]), label=ax_name, lw=1)
    axes[0].set_ylabel("translation (mm)")
    axes[1].set_ylabel("rotation (deg)")
    for ax in axes[:2]:
        ax.legend(loc="upper left", ncol=3, fontsize=8, frameon=False)
        ax.grid(alpha=0.3)
    fd = table["framewise_displacement"].to_numpy(dtype=float)
    axes[2].plot(x, fd, color="k", lw=1)
    axes[2].axhline(fd_threshold, color="tab:red", ls="--", lw=1, label=f"{fd_threshold:g} mm")
    over = np.flatnonzero(np.nan_to_num(fd) > fd_threshold)
    axes[2].plot(x[over], fd[over], "o", color="tab:red", ms=4)
    axes[2].set_ylabel("FD (mm)")
    axes[2].set_xlabel("time (s)" if tr else "volume")
    axes[2].legend(loc="upper left", fontsize=8, frameon=False)
    axes[2].grid(alpha=0.3)
    mean_fd = np.nanmean(fd) if n > 1 else 0.0
    fig.suptitle(title or f"Head motion: mean FD {mean_fd:.3f} mm, {len(over)} volumes > {fd_threshold:g} mm")
    return _save_figure(fig, out_file)


def plot_carpet(
    bold_file: str | os.PathLike,
    mask_file: str | os.PathLike,
    out_file: str | os.PathLike,
    *,
    confounds: str | os.PathLike | pd.DataFrame | None = None,
    max_rows: int = 2000,
    title: str | None = None,
) -> str:
    """Carpet plot of brain voxels (detrended, z-scored; rows subsampled to ``max_rows``).

    Only the plotted voxels are kept: ``4 x max_rows`` brain voxels evenly spread over the
    mask are read one volume at a time (:func:`neurofuse.io.iter_nifti_volumes`), those
    that never change are dropped, and ``max_rows`` of the rest are drawn. A 600-volume
    run at 2 mm then needs a few MB instead of the whole series (5.2 GB peak before).
    """
    from neurofuse.io import iter_nifti_volumes

    img = nib.load(os.fspath(bold_file))
    mask = np.asarray(nib.load(os.fspath(mask_file)).dataobj) > 0
    flat = np.flatnonzero(mask.ravel(order="F"))
    if len(flat) > 4 * max_rows:
        flat = flat[np.linspace(0, len(flat) - 1, 4 * max_rows).astype(int)]
    n_vol = img.shape[3]
    data = np.empty((len(flat), n_vol), dtype=np.float32)
    for k, vol in enumerate(iter_nifti_volumes(bold_file)):
        data[:, k] = vol.ravel(order="F")[flat]
    data = data[data.std(axis=1) > 0]
    t = np.arange(n_vol, dtype=float)
    if len(data):
        design = np.vstack([np.ones(n_vol), t - t.mean()]).T
        beta, *_ = np.linalg.lstsq(design, data.T, rcond=None)
        resid = data - (design @ beta).T
        sd = resid.std(axis=1, keepdims=True)
        z = resid / np.where(sd > 0, sd, 1)
        if len(z) > max_rows:
            z = z[np.linspace(0, len(z) - 1, max_rows).astype(int)]
    else:
        z = np.zeros((1, n_vol))
    table = _read_confounds(confounds) if confounds is not None else None
    n_traces = 0 if table is None else sum(c in table for c in ("framewise_displacement", "std_dvars"))
    ratios = [1] * n_traces + [4]
    fig, axes = plt.subplots(len(ratios), 1, figsize=(9, 2 + 1.2 * len(ratios)), sharex=True,
                             gridspec_kw={"height_ratios": ratios})
    axes = np.atleast_1d(axes)
    row = 0
    if table is not None:
        for col, label in (("framewise_displacement", "FD (mm)"), ("std_dvars", "std DVARS")):
            if col in table:
                axes[row].plot(np.arange(n_vol), table[col].to_numpy(dtype=float), color="k", lw=1)
                axes[row].set_ylabel(label, fontsize=8)
                axes[row].grid(alpha=0.3)
                row += 1
    axes[-1].imshow(z, aspect="auto", cmap="gray", vmin=-2, vmax=2, interpolation="nearest",
                    extent=(-0.5, n_vol - 0.5, len(z), 0))
    axes[-1].set_ylabel("brain voxels")
    axes[-1].set_xlabel("volume")
    fig.suptitle(title or "Carpet plot (detrended, z-scored)")
    return _save_figure(fig, out_file)


def plot_registration(
    mean_bold_file: str | os.PathLike,
    out_file: str | os.PathLike,
    *,
    template_file: str | os.PathLike | None = None,
    resolution: float = 2.0,
    title: str | None = None,
) -> str:
    """Template edges (red) over the normalised mean BOLD, nilearn ``plot_anat`` mosaic.

    ``template_file`` defaults to the template the pipeline used
    (:func:`neurofuse.fmri.registration.load_template`).
    """
    from nilearn import plotting

    if template_file is None:
        from neurofuse.fmri.registration import load_template

        template = load_template(resolution)
    else:
        template = nib.load(os.fspath(template_file))
    bold = nib.load(os.fspath(mean_bold_file))
    if bold.ndim == 4:
        bold = nib.Nifti1Image(np.asarray(bold.dataobj, dtype=np.float32).mean(axis=3), bold.affine)
    fig = plt.figure(figsize=(11, 3.6))
    display = plotting.plot_anat(
        bold, display_mode="ortho", cut_coords=(0, -18, 12), figure=fig, dim=-0.3,
        title=title or "Template edges over normalised mean BOLD", annotate=True, draw_cross=False,
    )
    display.add_edges(template, color="r")
    out = _save_figure(fig, out_file)
    display.close()
    return out
