"""The methods text of a run (``report/methods.md``) and its ``CITATION.md``.

:func:`build_methods` writes, from a validated config, the dataset index and the
installed software versions, the paragraphs a paper's methods section needs: what each
stage did with the settings this run used, with the version of every tool and a
citation for every method and tool — and nothing cited that the run did not use. Values
that the config does not expose (window lengths, thresholds, iteration counts) are read
from the defaults of the library functions the workflow calls, so the text follows the
code when the code changes.

The text is deterministic: the same config, dataset and software give the same bytes
(no dates, no paths), so ``methods.md`` and ``CITATION.md`` are reproducible outputs.
"""

from __future__ import annotations

import inspect
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from neurofuse import __version__
from neurofuse.config import bands_by_frequency
from neurofuse.errors import NeuroFuseError
from neurofuse.fusion.glm import RANDOM_EFFECTS_MIN_SUBJECTS
from neurofuse.io import atomic_write_text
from neurofuse.report.references import REFERENCES, Reference

METHODS_TITLE = "Methods"


# ----------------------------------------------------------------------------- facts
@dataclass(frozen=True)
class DatasetFacts:
    """What the methods text says about the dataset (from the dataset index)."""

    name: str = ""
    subjects: int = 0
    sessions: int = 0
    bold_runs: int = 0
    eeg_runs: int = 0
    in_scanner_eeg: int = 0
    paired_runs: int = 0
    bold_with_t1w: int = 0
    bold_with_slice_timing: int = 0
    eeg_with_slice_timing: int = 0  # in-scanner EEG runs whose BOLD gives slice times
    repetition_times: tuple[float, ...] = ()
    line_frequencies: tuple[float, ...] = ()
    #: (task, subjects with paired runs, paired runs) for every task with paired runs.
    fusion_tasks: tuple[tuple[str, int, int], ...] = ()

    @classmethod
    def from_index(cls, index) -> DatasetFacts:
        """Facts of a :class:`~neurofuse.bids.index.DatasetIndex`."""
        bold = index.bold_runs()
        eeg = index.eeg_runs()
        in_scanner = [run for run in eeg if run.eeg.n_volume_markers]
        paired = index.paired_runs()
        tasks = []
        for task in sorted({run.task for run in paired if run.task}):
            runs = [run for run in paired if run.task == task]
            tasks.append((task, len({run.subject for run in runs}), len(runs)))
        line = sorted({float(run.eeg.metadata.get("PowerLineFrequency") or DEFAULT_LINE_FREQ) for run in eeg})
        return cls(
            name=index.name or "",
            subjects=len(index.subjects),
            sessions=len(index.sessions),
            bold_runs=len(bold),
            eeg_runs=len(eeg),
            in_scanner_eeg=len(in_scanner),
            paired_runs=len(paired),
            bold_with_t1w=sum(1 for run in bold if run.t1w),
            bold_with_slice_timing=sum(1 for run in bold if run.bold.slice_timing),
            eeg_with_slice_timing=sum(1 for run in in_scanner if run.bold and run.bold.slice_timing),
            repetition_times=tuple(sorted({float(run.bold.repetition_time) for run in bold})),
            line_frequencies=tuple(line),
            fusion_tasks=tuple(tasks),
        )

    @classmethod
    def from_index_file(cls, path: str | os.PathLike) -> DatasetFacts:
        from neurofuse.bids.index import DatasetIndex

        try:
            return cls.from_index(DatasetIndex.from_json(path))
        except FileNotFoundError:
            raise NeuroFuseError("the dataset index is missing", path,
                                 "run `snakemake -n` (it writes the index) or give --index") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise NeuroFuseError(f"not a NeuroFuse dataset index ({exc.__class__.__name__})", path,
                                 "run `snakemake -n` again to rewrite it") from None


#: Mains frequency the EEG cleanup notches when a recording's sidecar does not say
#: (the workflow's default for ``PowerLineFrequency``).
DEFAULT_LINE_FREQ = 50.0


# ---------------------------------------------------------------------------- result
@dataclass
class Methods:
    """The methods of one run: sections of prose, the references cited, the software used."""

    sections: list[tuple[str, list[str]]] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    software: list[tuple[str, str, str]] = field(default_factory=list)  # (name, distribution, version)

    def markdown(self) -> str:
        """``methods.md``: a title, the sections, and the reference list."""
        out = [f"# {METHODS_TITLE}", "",
               f"*Written by NeuroFuse {__version__} from the configuration and software of this run. "
               "Copy it into a manuscript as it is or edit it; cite the works listed at the end.*", ""]
        for title, paragraphs in self.sections:
            out += [f"## {title}", ""]
            for paragraph in paragraphs:
                out += [paragraph, ""]
        out += ["## References", ""] + [f"- {ref.markdown()}" for ref in self.references] + [""]
        return "\n".join(out)

    def citation_markdown(self) -> str:
        """``CITATION.md``: how to cite these results, the software versions and every reference (+ BibTeX)."""
        out = ["# Citing these results", "",
               f"These derivatives were made by NeuroFuse {__version__}, a Snakemake workflow for simultaneous "
               "EEG-fMRI. If you publish them, describe the processing with the methods text in "
               "`report/methods.md` (also in `report/group.html`) and cite the works below: they are the methods "
               "and tools this run used, no more. The provenance manifest `neurofuse/provenance.json` lists the "
               "SHA-256 of every output, the job, inputs and code behind it and every installed package; "
               "`ro-crate-metadata.json` packages the run as a Workflow Run RO-Crate.", "",
               "## Software", ""]
        out += [f"- {name} {version}" for name, _dist, version in self.software] + [""]
        out += [f"## References ({len(self.references)})", ""]
        out += [f"- {ref.markdown()}" for ref in self.references] + [""]
        out += ["## BibTeX", "", "```bibtex"]
        out += ["\n\n".join(ref.bibtex() for ref in self.references), "```", ""]
        return "\n".join(out)


class _Writer:
    """Collects the references a text cites, in a stable order."""

    def __init__(self) -> None:
        self.cited: dict[str, Reference] = {}

    def cite(self, *keys: str, bare: bool = False) -> str:
        """``(Allen et al., 2000; Niazy et al., 2005)`` (``bare``: without the parentheses, for use
        inside a parenthesis), and remember the references."""
        refs = [REFERENCES[key] for key in keys]
        for ref in refs:
            self.cited.setdefault(ref.key, ref)
        text = "; ".join(ref.label for ref in refs)
        return text if bare else f"({text})"

    def references(self) -> list[Reference]:
        return sorted(self.cited.values(), key=lambda ref: (ref.label.lower(), ref.key))


# --------------------------------------------------------------------------- helpers
def _default(func: Callable, name: str) -> Any:
    """The default value of parameter ``name`` of ``func`` (what the workflow leaves as it is)."""
    return inspect.signature(func).parameters[name].default


def _num(value: float) -> str:
    """A number as a person writes it: 2.0 -> "2", 0.010 -> "0.01"."""
    return f"{float(value):g}"


def _count(n: int, noun: str, plural: str | None = None) -> str:
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def _series(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _version(versions: Mapping[str, str], dist: str) -> str:
    return versions.get(dist, "(not installed)")


def _ica(method: str, versions: Mapping[str, str]) -> tuple[str, str]:
    """The ICA algorithm the run used (python-picard missing: extended Infomax) and its name."""
    if method == "picard" and "python-picard" not in versions:
        return "infomax", "extended Infomax (Picard is not installed here)"
    return method, {"picard": "Picard", "fastica": "FastICA", "infomax": "extended Infomax"}[method]


def _icalabel(versions: Mapping[str, str]) -> bool:
    """ICLabel runs when mne-icalabel and one of its back-ends are installed (as ``icalabel_available``)."""
    return "mne-icalabel" in versions and ("onnxruntime" in versions or "torch" in versions)


def _group_effects(choice: str, n_subjects: int) -> str:
    if choice == "auto":
        return "random" if n_subjects >= RANDOM_EFFECTS_MIN_SUBJECTS else "fixed"
    return choice


# -------------------------------------------------------------------------- sections
def _data_section(w: _Writer, config: Mapping[str, Any], facts: DatasetFacts | None,
                  versions: Mapping[str, str]) -> list[str]:
    if facts is None:
        data = ("The data were organised according to the Brain Imaging Data Structure (BIDS; "
                + w.cite("gorgolewski2016", bare=True) + ") and its EEG extension " + w.cite("pernet2019"))
    else:
        runs = [_count(n, kind) for n, kind in ((facts.bold_runs, "BOLD run"), (facts.eeg_runs, "EEG run")) if n]
        together = (f"; {_count(facts.paired_runs, 'EEG-BOLD pair')} recorded simultaneously"
                    if facts.paired_runs else "")
        if facts.repetition_times:
            together += "; repetition time " + " or ".join(f"{_num(tr)} s" for tr in facts.repetition_times)
        sessions = f" in {_count(facts.sessions, 'session')}" if facts.sessions else ""
        name = f" “{facts.name}”" if facts.name else ""
        data = (f"The dataset{name} ({_count(facts.subjects, 'subject')}{sessions}; {_series(runs)}{together}) "
                "was organised according to the Brain Imaging Data Structure (BIDS; "
                + w.cite("gorgolewski2016", bare=True) + ")")
        if facts.eeg_runs:
            data += " and its EEG extension " + w.cite("pernet2019")
    tool = (f"{data}, and processed with NeuroFuse {__version__}, a workflow for Snakemake "
            f"{_version(versions, 'snakemake')} " + w.cite("koster2012", "molder2021")
            + f", in Python {platform.python_version()} with NumPy {_version(versions, 'numpy')} "
            + w.cite("harris2020") + f", SciPy {_version(versions, 'scipy')} " + w.cite("virtanen2020")
            + f" and NiBabel {_version(versions, 'nibabel')}. Every step that draws random numbers used the seed "
            f"{config['seed']}.")
    return [tool]


def _fmri_section(w: _Writer, config: Mapping[str, Any], facts: DatasetFacts | None,
                  versions: Mapping[str, str]) -> list[str]:
    from neurofuse.fmri.backends import run_backend_motion
    from neurofuse.fmri.registration import register_t1w_to_template
    from neurofuse.fmri.resample import resample_bold_to_template

    fmri = config["fmri"]
    backend = fmri["backend"]
    n_ref = _default(run_backend_motion, "n_reference")
    ref = fmri["motion_reference"]
    if ref in ("median", "mean"):
        reference = f"the voxel-wise {ref} of the first {n_ref} volumes"
    else:
        reference = f"volume {ref} (counted from 0)"
    nipype = f"run through Nipype {_version(versions, 'nipype')} " + w.cite("gorgolewski2011") if backend != "native" else ""
    if backend == "native":
        motion = ("Head motion was estimated on the raw BOLD series, before slice-timing correction, by registering "
                  f"every volume to {reference} with a rigid-body (six-parameter) transform that minimises the sum of "
                  "squared intensity differences within a brain mask, solved by inverse-compositional Gauss-Newton "
                  "iterations " + w.cite("baker2004") + " on two levels of a Gaussian pyramid (NeuroFuse's own "
                  "implementation).")
    elif backend == "fsl":
        motion = ("Head motion was estimated on the raw BOLD series, before slice-timing correction, with FSL MCFLIRT "
                  + w.cite("jenkinson2002") + f" with the {_default(run_backend_motion, 'cost')} cost function, {nipype}, "
                  f"registering every volume to {reference}; the transform matrices MCFLIRT saved were converted to "
                  "rigid-body parameters (translations in mm, rotations in radians).")
    else:
        motion = ("Head motion was estimated on the raw BOLD series, before slice-timing correction, with AFNI "
                  "3dvolreg " + w.cite("cox1996") + f" with {_default(run_backend_motion, 'zpad')} voxel of "
                  f"zero-padding and its default interpolation, {nipype}, registering every volume to {reference}; the "
                  "transform matrices 3dvolreg saved were converted to rigid-body parameters.")
    paragraphs = [motion]

    if facts is None or facts.bold_with_slice_timing:
        target = ("the middle of the slice-acquisition range (half-way between the earliest and the latest slice time)"
                  if fmri["slice_time_ref"] is None else f"{_num(fmri['slice_time_ref'])} s after the volume onset")
        if backend == "afni":
            how = "with AFNI 3dTshift and its default interpolation " + w.cite("cox1996")
        else:
            how = ("by band-limited (Fourier phase-shift) interpolation, after removing the straight line through "
                   "the first and last sample and extending the series antisymmetrically so that no wrap-around "
                   "enters the data")
        stc = f"Slice-timing correction shifted every slice's time series to {target}, {how}."
        if facts is None:
            stc += " Runs without SliceTiming in their sidecar were not corrected."
        elif facts.bold_with_slice_timing < facts.bold_runs:
            missing = facts.bold_runs - facts.bold_with_slice_timing
            stc += f" {_count(missing, 'run')} without SliceTiming in the sidecar {'was' if missing == 1 else 'were'} not corrected."
        paragraphs.append(stc)
    else:
        paragraphs.append("No run had SliceTiming in its sidecar, so no slice-timing correction was applied.")

    syn_iter = ", ".join(str(i) for i in _default(register_t1w_to_template, "reg_iterations"))
    template = ("the ICBM 2009a nonlinear symmetric MNI152 template bundled with nilearn "
                f"{_version(versions, 'nilearn')} " + w.cite("fonov2009", "fonov2011", "abraham2014"))
    with_t1w = facts is None or facts.bold_with_t1w
    registration = []
    if with_t1w:
        registration.append(
            f"Each T1w image was registered to {template}, resampled to {_num(fmri['registration_resolution'])} mm, "
            f"with ANTsPy {_version(versions, 'antspyx')} " + w.cite("tustison2021") + ": after aligning the centres "
            "of mass, an affine stage (Mattes mutual information) was followed by symmetric diffeomorphic "
            "normalisation (SyN; "
            + w.cite("avants2008", bare=True) + f") with a {_default(register_t1w_to_template, 'syn_metric')} metric of radius "
            f"{_default(register_t1w_to_template, 'syn_sampling')} voxels and ({syn_iter}) iterations per level, its "
            "metric restricted to the template's brain mask dilated by 3 voxels, on one thread with a fixed seed. "
            "The T1w images were used as provided, without skull stripping (the template is brain-only).")
        dof = "rigid (6 degrees of freedom)" if fmri["bold_to_t1w"] == "Rigid" else "affine (12 degrees of freedom)"
        registration.append(
            f"The BOLD reference volume was registered to the subject's T1w image with a {dof} transform "
            "maximising Mattes mutual information (ANTsPy), the T1w resampled to the BOLD voxel size (at most 3 mm).")
    if not with_t1w:
        registration.append(
            f"Without T1w images, the BOLD reference of every run was registered directly to {template} with an "
            f"affine transform (mutual information) by ANTsPy {_version(versions, 'antspyx')} "
            + w.cite("tustison2021") + ".")
    elif facts is None or facts.bold_with_t1w < facts.bold_runs:
        which = ("Runs without a T1w image" if facts is None else
                 _count(facts.bold_runs - facts.bold_with_t1w, "run") + " without a T1w image")
        registration.append(f"{which} had the BOLD reference registered directly to the template with an affine "
                            "transform (mutual information).")
    registration.append(
        "The labels of the outputs name the space MNI152NLin2009cAsym, the asymmetric ICBM 2009c template; the image "
        "used is the symmetric 2009a version, which shares its MNI152 space but not its exact anatomy.")
    paragraphs.append(" ".join(registration))

    order = _default(resample_bold_to_template, "order")
    interpolation = {1: "trilinear", 3: "cubic B-spline"}.get(order, f"order-{order} spline")
    if not with_t1w:
        chain = "The head-motion and BOLD-to-template transforms"
    elif facts is None or facts.bold_with_t1w < facts.bold_runs:
        chain = ("The head-motion, BOLD-to-T1w and T1w-to-template transforms (BOLD-to-template without a T1w)")
    else:
        chain = "The head-motion, BOLD-to-T1w and T1w-to-template transforms"
    series = "slice-time-corrected series" if facts is None or facts.bold_with_slice_timing else "BOLD series"
    paragraphs.append(
        f"{chain} were composed and the {series} was resampled once, with {interpolation} interpolation, onto a "
        f"{_num(fmri['output_resolution'])} mm grid in template space. A brain mask of the BOLD reference (nilearn's compute_epi_mask) was carried into "
        "template space by the same transforms.")
    paragraphs.append(
        "Confounds were computed with fMRIPrep's conventions: the six rigid-body parameters with their temporal "
        "derivatives, squares and squared derivatives " + w.cite("friston1996") + "; framewise displacement (FD), "
        "the sum of the absolute parameter changes with rotations taken as arc length on a 50 mm sphere "
        + w.cite("power2012") + "; DVARS " + w.cite("power2012") + " after scaling the median brain intensity to "
        "1000, and DVARS standardised by its expected value under a voxel-wise AR(1) model "
        + w.cite("afyouni2018") + "; the mean signal in the brain mask (global_signal), in white matter and in "
        "CSF (the template's tissue probability maps at 0.9, white matter eroded by one voxel), expanded like the "
        "motion parameters; and the discrete cosine basis of a 128 s high-pass filter (cosine columns)"
        + f". Volumes with FD above {_num(fmri['fd_threshold'])} mm or standardised DVARS "
        f"above {_num(fmri['dvars_threshold'])} were each marked by a spike regressor (motion_outlier columns).")
    return paragraphs


def _eeg_section(w: _Writer, config: Mapping[str, Any], facts: DatasetFacts | None,
                 versions: Mapping[str, str]) -> list[str]:
    from neurofuse.eeg.bandpower import band_power_table
    from neurofuse.eeg.bcg import detect_rpeaks, remove_bcg
    from neurofuse.eeg.clean import clean_eeg, detect_bad_channels, label_ica_components
    from neurofuse.eeg.gradient import remove_gradient_artifact

    eeg = config["eeg"]
    paragraphs = [f"EEG recordings were read and processed with MNE-Python {_version(versions, 'mne')} "
                  + w.cite("gramfort2013") + "."]
    if facts is None or facts.in_scanner_eeg:
        who = ("For runs recorded inside the scanner (volume markers present)" if facts is None else
               f"For the {_count(facts.in_scanner_eeg, 'run')} recorded inside the scanner")
        if facts is None or 0 < facts.eeg_with_slice_timing < facts.in_scanner_eeg:
            epochs = "every slice where the BOLD sidecar gives slice times, otherwise every volume"
        elif facts.eeg_with_slice_timing:
            epochs = "every slice (slice times from the BOLD sidecar)"
        else:
            epochs = "every volume"
        window = eeg["aas_window"]
        upsample = _default(remove_gradient_artifact, "upsample")
        max_lag = _default(remove_gradient_artifact, "max_lag_ms")
        obs = eeg["obs_components"]
        lowpass = _default(remove_gradient_artifact, "lowpass")
        gradient = (
            f"{who}, the MR gradient artifact was removed by averaged artifact subtraction " + w.cite("allen2000")
            + f": artifact epochs started at the scanner's '{eeg['volume_marker']}' markers, one epoch for {epochs}; "
            f"the sub-sample lag of each epoch (within ±{_num(max_lag)} ms, in steps of 1/{upsample} sample) was "
            "found by cross-correlation with the average epoch, and each epoch's artifact template — the average of "
            f"the {window} neighbouring epochs of a high-passed copy of the signal (cut-off a quarter of the epoch "
            "rate), shifted to the epoch's lag in the Fourier domain and scaled to the epoch by least squares — was "
            "subtracted.")
        if obs:
            gradient += (f" The first {obs} principal components of the residual (high-passed at "
                         f"{_num(eeg['obs_highpass'])} Hz) were then fitted and removed "
                         "(optimal basis set; " + w.cite("niazy2005", bare=True) + ").")
        else:
            gradient += " No optimal-basis-set (PCA) step followed."
        gradient += (f" The signal was then low-pass filtered at {_num(lowpass)} Hz (Kaiser-window FIR) and "
                     f"decimated to {_num(eeg['sfreq'])} Hz.")
        paragraphs.append(gradient)

        band = "-".join(_num(f) for f in _default(detect_rpeaks, "band"))
        rpeaks = (f"R-peaks were detected in the ECG channel by a matched filter ({band} Hz band, median QRS "
                  f"template, normalised correlation at least {_num(_default(detect_rpeaks, 'threshold'))}, beats at "
                  f"least {_num(_default(detect_rpeaks, 'min_rr'))} s apart).")
        method = eeg["bcg_method"]
        if method == "deconv":
            bcg = ("The ballistocardiogram was modelled in every EEG channel as a sum of one pulse waveform per "
                   f"heartbeat ({_num(_default(remove_bcg, 'pre'))} s before to {_num(_default(remove_bcg, 'post'))} s "
                   "after each R-peak), with a gain and a delay per beat shared by all channels; the waveforms were "
                   f"fitted by least squares over overlapping beats in {_num(_default(remove_bcg, 'block_s'))} s "
                   "blocks with half overlap, the gains and delays by Gauss-Newton iterations, and the fitted "
                   "artifact was subtracted (NeuroFuse's own method).")
        elif method == "obs":
            bcg = ("The ballistocardiogram was removed with the optimal basis set method " + w.cite("niazy2005")
                   + " as implemented in MNE-Python's apply_pca_obs: in every channel the first "
                   f"{_default(remove_bcg, 'n_components')} principal components of the heartbeat-locked epochs "
                   "were fitted to each epoch and subtracted.")
        else:
            bcg = ("The ballistocardiogram was removed by averaged artifact subtraction locked to the R-peaks "
                   + w.cite("allen1998") + f", with templates averaged over a sliding window of "
                   f"{_default(remove_bcg, 'window')} heartbeats.")
        paragraphs.append(f"{rpeaks} {bcg}")

    if facts is None:
        line = "the PowerLineFrequency of each recording (50 Hz when the sidecar does not give it)"
    else:
        line = " and ".join(f"{_num(f)} Hz" for f in facts.line_frequencies)
    z = _default(detect_bad_channels, "z_threshold")
    corr = _default(detect_bad_channels, "corr_threshold")
    ica_method, ica_name = _ica(eeg["ica_method"], versions)
    ica_cite = {"picard": ("ablin2018", "lee1999"), "fastica": ("hyvarinen1999",),
                "infomax": ("bell1995", "lee1999")}[ica_method]
    if ica_method == "picard":
        ica_name += " " + w.cite(*ica_cite) + " with extended-Infomax density and no orthogonality constraint"
    else:
        ica_name += " " + w.cite(*ica_cite)
    threshold = _default(clean_eeg, "threshold")
    labels = [label.replace(" artifact", "") for label in _default(clean_eeg, "exclude_labels")]
    correlation = (f"correlated with the EOG channel (z-score above {_num(_default(label_ica_components, 'eog_threshold'))}) "
                   "or the ECG channel (MNE's correlation method)")
    if _icalabel(versions):
        rule = ("ICLabel " + w.cite("piontonachini2019") + f", run by mne-icalabel {_version(versions, 'mne-icalabel')} "
                + w.cite("li2022") + f", gave them the class {_series(labels).replace(' and ', ' or ')} with a "
                f"probability of at least {_num(threshold)}, or when they {correlation}")
    else:
        rule = f"they {correlation} (ICLabel is not installed here)"
    limit = _default(clean_eeg, "max_excluded_fraction")
    paragraphs.append(
        f"Mains interference was removed by notch filters at {line} and harmonics below the Nyquist frequency. "
        f"Channels that were flat, noisy (robust z-score of the log amplitude above {_num(z)}) or poorly correlated "
        f"with every other channel (largest correlation below {_num(corr)}, the criterion of the PREP pipeline; "
        + w.cite("bigdelyshamlo2015", bare=True) + ") were interpolated with spherical splines " + w.cite("perrin1989")
        + ", using standard 10-20 positions where the recording had none, and the data were re-referenced to the common "
        f"average. Independent component analysis — {ica_name} — was fitted on a 1-100 Hz filtered copy with as "
        f"many components as the data's rank and seed {config['seed']}. Components were removed when {rule}, "
        f"never more than {_num(100 * limit)} % of them. The data were then band-pass filtered from "
        f"{_num(eeg['l_freq'])} to {_num(eeg['h_freq'])} Hz.")

    bands = bands_by_frequency(eeg["bands"])
    listed = _series([f"{name} ({_num(lo)}-{_num(hi)} Hz)" for name, (lo, hi) in bands.items()])
    hrf = _default(band_power_table, "hrf_model").upper()
    stref = _default(band_power_table, "slice_time_ref")
    windows = []
    if facts is None or facts.in_scanner_eeg:
        windows.append("one window per BOLD volume (from its volume marker to one repetition time later) for "
                       "recordings made in the scanner")
    if facts is None or facts.in_scanner_eeg < facts.eeg_runs:
        windows.append(f"consecutive {_num(eeg['window_s'])} s windows for EEG recorded outside the scanner")
    where = "at the middle of each window" if stref == 0.5 else f"{_num(stref)} window lengths after each onset"
    paragraphs.append(
        f"Band power in the {listed} bands was computed as the squared magnitude of the Hilbert transform of the "
        f"band-passed signal, averaged over {', and over '.join(windows)}, for every channel and for the channel "
        f"average (µV²). Each column was also convolved with the {hrf} canonical haemodynamic response function "
        "(" + w.cite("friston1998", bare=True) + "; nilearn's compute_regressor) after removing its run mean, and "
        f"sampled {where}.")
    return paragraphs


def _noise_text(w: _Writer, glm: Mapping[str, Any]) -> str:
    if glm["noise_model"] == "ols":
        return "ordinary least squares (white noise)"
    order = glm["noise_model"][2:]
    where = (f", the residual autocovariance maps smoothed with a {_num(glm['ar_smoothing_fwhm'])} mm FWHM Gaussian "
             "before they gave each voxel's coefficients" if glm["ar_smoothing_fwhm"] else ", estimated voxel by voxel")
    return (f"AR({order}) noise, whose coefficients came from the residual autocovariances corrected for the bias "
            "the design leaves in them " + w.cite("worsley2002") + where)


def _glm_paragraphs(w: _Writer, config: Mapping[str, Any], facts: DatasetFacts | None,
                    versions: Mapping[str, str], bands: Sequence[str]) -> list[str]:
    glm = config["fusion"]["glm"]
    who = ("For every run with both BOLD and EEG" if facts is None else
           f"For each of the {_count(facts.paired_runs, 'run')} with both BOLD and EEG")
    regressor = ("the HRF-convolved power of all channels weighted by the first principal component of the band's "
                 "power across channels (z-scored per channel)" if glm["regressor"] == "pca"
                 else "the channel-averaged HRF-convolved power")
    smoothing = (f"smoothed with a Gaussian kernel of {_num(glm['smoothing_fwhm'])} mm FWHM, "
                 if glm["smoothing_fwhm"] else "not smoothed, ")
    confounds = _series(config["fusion"]["confounds"]) or "no confounds"
    first = (f"{who}, an EEG-informed general linear model " + w.cite("goldman2002", "laufs2003")
             + f" was fitted with nilearn {_version(versions, 'nilearn')} " + w.cite("abraham2014")
             + f": one regressor per EEG band ({_series(bands)}), {regressor}, scaled to unit variance; the confounds "
             f"{confounds}; a cosine drift basis with a {_num(glm['high_pass'])} Hz cut-off and a constant. The BOLD "
             f"was {smoothing}scaled to percent signal change per voxel and fitted with {_noise_text(w, glm)}; one "
             "z-map per band was kept.")
    choice = glm["group_effects"]
    random_text = "random effects (a one-sample t-test)"
    if facts is None:
        if choice == "auto":
            across = (f"Subjects were combined with {random_text} when a task had at least "
                      f"{RANDOM_EFFECTS_MIN_SUBJECTS} subjects, otherwise with fixed effects.")
        else:
            across = f"Subjects were combined with {'fixed effects' if choice == 'fixed' else random_text}."
    else:
        per_task = []
        for task, n_sub, _n_runs in facts.fusion_tasks:
            if n_sub == 1:
                per_task.append(f"task {task} has a single subject, whose map is the group map")
            else:
                kind = "fixed effects" if _group_effects(choice, n_sub) == "fixed" else random_text
                per_task.append(f"the {n_sub} subjects of task {task} were combined with {kind}")
        across = per_task[0][0].upper() + "; ".join(per_task)[1:]
        if choice == "auto" and any(n > 1 for _t, n, _r in facts.fusion_tasks):
            across += f", as chosen automatically (random effects from {RANDOM_EFFECTS_MIN_SUBJECTS} subjects on)"
        across += "."
    if glm["height_control"] == "fdr":
        control = f"a false discovery rate of {_num(glm['alpha'])} " + w.cite("benjamini1995")
    elif glm["height_control"] == "bonferroni":
        control = f"a Bonferroni-corrected family-wise error rate of {_num(glm['alpha'])}"
    else:
        control = f"p < {_num(glm['alpha'])}, uncorrected"
    cluster = (f", and clusters smaller than {glm['cluster_threshold']} voxels were removed"
               if glm["cluster_threshold"] else "")
    group = (f"Runs were combined within each subject with fixed effects (t converted to z with the runs' residual degrees of freedom). {across} The group z-maps were "
             f"thresholded two-sided with nilearn's threshold_stats_img at {control}{cluster}.")
    return [first, group]


def _model_paragraphs(w: _Writer, config: Mapping[str, Any], facts: DatasetFacts | None,
                      versions: Mapping[str, str]) -> list[str]:
    from neurofuse.fusion.train import TrainConfig

    model = config["fusion"]["model"]
    heads = TrainConfig.heads
    val = TrainConfig.val_fraction
    if model["arch"] == "transformer":
        encoder = (f"a {model['layers']}-layer transformer encoder " + w.cite("vaswani2017")
                   + f" of width {model['width']} with {heads} attention heads, one token per volume and a learned "
                   "position embedding")
    else:
        encoder = f"two 1-D convolutions over time (kernel of 5 volumes, width {model['width']})"
    data = (f"A deep EEG-fMRI fusion model was trained with PyTorch {_version(versions, 'torch')} "
            + w.cite("paszke2019") + ". The BOLD inside the intersection of the runs' brain masks was cleaned of the "
            f"confounds and of cosine drifts ({_num(config['fusion']['glm']['high_pass'])} Hz cut-off) by least "
            f"squares, z-scored per voxel and averaged into {model['n_regions']} regions, the clusters of a k-means "
            f"partition of the mask's voxel coordinates (scikit-learn {_version(versions, 'scikit-learn')}; "
            + w.cite("pedregosa2011", bare=True) + "); the EEG features were the log band power of every channel and band, "
            f"z-scored per run. A sample was a window of {model['window']} consecutive volumes. Two encoders with the "
            f"same architecture and dropout {_num(model['dropout'])} mapped the window's EEG features and regional BOLD "
            f"to {model['embedding']}-dimensional embeddings: {encoder}. A linear head predicted the regional BOLD at "
            "the window's last volume from the EEG embedding.")
    loss = ("The loss was the mean squared error of that prediction plus "
            f"{_num(model['nce_weight'])} times a symmetric InfoNCE term " + w.cite("vandenoord2018", "radford2021")
            + f" with temperature {_num(model['temperature'])}, which pulls the EEG and BOLD embeddings of the same "
            "window together and pushes the other windows of the batch away. Training used AdamW "
            + w.cite("loshchilov2019") + f" with learning rate {_num(model['learning_rate'])} and weight decay "
            f"{_num(model['weight_decay'])}, batches of {model['batch_size']} windows, at most {model['max_epochs']} "
            f"epochs and early stopping after {model['patience']} epochs without a lower loss on the last "
            f"{_num(100 * val)} % of each training run.")
    if facts is None:
        folds = (f"Validation was subject-wise, in up to {model['folds']} folds of held-out subjects (held-out runs, "
                 "or the two halves of the run, for a task with a single subject).")
    else:
        parts = []
        for task, n_sub, n_runs in facts.fusion_tasks:
            if n_sub >= 2:
                parts.append(f"{min(model['folds'], n_sub)} folds of held-out subjects for task {task}")
            elif n_runs >= 2:
                parts.append(f"{min(model['folds'], n_runs)} folds of held-out runs for task {task} (one subject)")
            else:
                parts.append(f"the two halves of the single run of task {task}, each held out in turn")
        folds = "Validation was subject-wise: " + "; ".join(parts) + "."
    maps = (f"{folds} For the heatmaps, a ridge regression (penalty {_num(model['ridge'])}) from the EEG embedding to "
            "every voxel was fitted on the training data and the correlation of predicted with measured BOLD "
            "computed on the held-out data; for each band, the part of the prediction due to that band's features "
            "was correlated with the measured BOLD and signed by the direction in which more power moves the "
            "prediction. Maps were averaged over runs and subjects after Fisher's z-transform. PyTorch, NumPy and "
            f"the batch order were seeded ({config['seed']}) and PyTorch's deterministic algorithms were used.")
    return [data, loss, maps]


# ----------------------------------------------------------------------------- main
def _software(config: Mapping[str, Any], facts: DatasetFacts | None,
              versions: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(display name, distribution, version) of the software the run used, in reading order."""
    wanted = [("Snakemake", "snakemake"), ("NumPy", "numpy"), ("SciPy", "scipy"), ("NiBabel", "nibabel"),
              ("pandas", "pandas"), ("Matplotlib", "matplotlib")]
    if facts is None or facts.bold_runs:
        wanted += [("nilearn", "nilearn"), ("ANTsPy", "antspyx")]
        if config["fmri"]["backend"] != "native":
            wanted.append(("Nipype", "nipype"))
    if facts is None or facts.eeg_runs:
        wanted.append(("MNE-Python", "mne"))
        if _ica(config["eeg"]["ica_method"], versions)[0] == "picard":
            wanted.append(("python-picard", "python-picard"))
        if _icalabel(versions):
            wanted += [("mne-icalabel", "mne-icalabel")] + ([("ONNX Runtime", "onnxruntime")]
                                                           if "onnxruntime" in versions else [])
    if facts is None or facts.paired_runs:
        wanted += [("nilearn", "nilearn"), ("PyTorch", "torch"), ("scikit-learn", "scikit-learn")]
    seen, out = set(), [("NeuroFuse", "neurofuse", __version__), ("Python", "python", platform.python_version())]
    for name, dist in wanted:
        if dist not in seen:
            seen.add(dist)
            out.append((name, dist, _version(versions, dist)))
    return out


def build_methods(
    config: Mapping[str, Any],
    facts: DatasetFacts | None = None,
    versions: Mapping[str, str] | None = None,
) -> Methods:
    """The methods of a run with validated ``config`` on a dataset with ``facts``.

    ``facts=None`` describes every stage the config can run, with the conditions under
    which each applies; ``versions`` maps distribution names to versions (default: what
    is installed, :func:`neurofuse.provenance.environment.package_versions`).
    """
    if versions is None:
        from neurofuse.provenance.environment import package_versions

        versions = package_versions()
    w = _Writer()
    methods = Methods()
    methods.sections.append(("Data and software", _data_section(w, config, facts, versions)))
    if facts is None or facts.bold_runs:
        methods.sections.append(("Functional MRI preprocessing", _fmri_section(w, config, facts, versions)))
    if facts is None or facts.eeg_runs:
        methods.sections.append(("EEG preprocessing", _eeg_section(w, config, facts, versions)))
    if facts is None or facts.paired_runs:
        bands = config["fusion"]["bands"] or list(bands_by_frequency(config["eeg"]["bands"]))
        methods.sections.append(("EEG-informed GLM", _glm_paragraphs(w, config, facts, versions, bands)))
        methods.sections.append(("Deep EEG-fMRI fusion model", _model_paragraphs(w, config, facts, versions)))
    methods.references = w.references()
    methods.software = _software(config, facts, versions)
    return methods


def write_methods(
    settings: Mapping[str, Any],
    index_json: str | os.PathLike,
    methods_md: str | os.PathLike,
    citation_md: str | os.PathLike,
) -> Methods:
    """Workflow step ``report_write_methods``: ``methods.md`` and ``CITATION.md`` of a run.

    ``settings`` is the validated config (at least ``seed``, ``fmri``, ``eeg`` and
    ``fusion``); ``index_json`` the run's dataset index.
    """
    missing = [key for key in ("seed", "fmri", "eeg", "fusion") if key not in settings]
    if missing:
        raise NeuroFuseError(f"the settings lack {', '.join(missing)}", hint="pass the validated config of the run")
    methods = build_methods(settings, DatasetFacts.from_index_file(index_json))
    atomic_write_text(methods_md, methods.markdown())
    atomic_write_text(citation_md, methods.citation_markdown())
    return methods


__all__ = ["DatasetFacts", "Methods", "build_methods", "write_methods"]
