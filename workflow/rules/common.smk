# Settings shared by every rule: wildcard shapes, output names, logs, software.
import os

from neurofuse.naming import derivative_path, parse_name, run_prefix, subject_dir


wildcard_constraints:
    sdir=r"sub-[A-Za-z0-9]+(/ses-[A-Za-z0-9]+)?",
    adir=r"sub-[A-Za-z0-9]+(/ses-[A-Za-z0-9]+)?",
    run=r"sub-[A-Za-z0-9]+(_[a-z]+-[A-Za-z0-9]+)*",
    anat=r"sub-[A-Za-z0-9]+(_[a-z]+-[A-Za-z0-9]+)*",


LOGS = f"{OUT}/logs"
WORK = f"{OUT}/work"
ENV = "../envs/neurofuse.yaml"


def out(datatype, root=OUT, **name):
    """A per-run output (BIDS-Derivatives name) with {sdir}/{run} wildcards."""
    return derivative_path(root, "{sdir}", datatype, "{run}", **name)


def work(datatype, **name):
    """A per-run intermediate file under output_dir/work/."""
    return out(datatype, root=WORK, **name)


def anat_work(**name):
    """A per-T1w intermediate file with {adir}/{anat} wildcards."""
    return derivative_path(WORK, "{adir}", "anat", "{anat}", **name)


def bids_file(rel):
    return os.path.join(config["bids_dir"], rel)


def run_of(wildcards):
    return INDEX.run(wildcards.run)


def t1w_key(run):
    """(adir, anat) wildcard values of the run's T1w, or None."""
    if not run.t1w:
        return None
    entities = parse_name(run.t1w)[0]
    return subject_dir(entities), run_prefix(entities)


def expand_runs(patterns, runs):
    """Every pattern filled in for every run."""
    return [pattern.format(sdir=run.subdir, run=run.id) for run in runs for pattern in patterns]


# T1w images the runs use, by their (adir, anat) wildcard values.
T1W_FILES = {t1w_key(run): run.t1w for run in INDEX.runs if run.t1w}


# fMRI: the transforms a run's resampling composes.
T1W_TO_MNI = dict(desc="T1wToMNI152NLin2009cAsym")


def fmri_transforms(wildcards):
    """Transform files in ANTs order (template side first) for the run's resampling."""
    run = run_of(wildcards)
    bold_affine = work("func", desc="coreg", suffix="xfm", extension=".mat").format(**wildcards)
    key = t1w_key(run)
    if key is None:
        return [bold_affine]
    adir, anat = key
    return [
        anat_work(**T1W_TO_MNI, suffix="warp", extension=".nii.gz").format(adir=adir, anat=anat),
        anat_work(**T1W_TO_MNI, suffix="xfm", extension=".mat").format(adir=adir, anat=anat),
        bold_affine,
    ]


def t1w_of_run(wildcards):
    run = run_of(wildcards)
    return {"t1w": bids_file(run.t1w)} if run.t1w else {}


# EEG: in-scanner runs (volume markers found) get gradient and BCG removal first.
def eeg_in_scanner(run):
    return bool(run.eeg and run.eeg.n_volume_markers)


def eeg_raw_file(wildcards):
    return bids_file(run_of(wildcards).eeg.path)


def eeg_clean_input(wildcards):
    """The BCG-corrected EEG for in-scanner runs, the raw recording otherwise."""
    run = run_of(wildcards)
    if eeg_in_scanner(run):
        return work("eeg", desc="bcg", suffix="eeg", extension=".fif").format(**wildcards)
    return bids_file(run.eeg.path)


def bold_timing(wildcards):
    """TR, volumes and slice times of the run's BOLD (None for EEG-only runs)."""
    bold = run_of(wildcards).bold
    if bold is None:
        return {"tr": None, "n_volumes": None, "slice_times": None}
    return {"tr": bold.repetition_time, "n_volumes": bold.n_volumes, "slice_times": bold.slice_timing}
