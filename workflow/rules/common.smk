# Settings shared by every rule: wildcard shapes, output names, logs, software.
import os

from snakemake.io import is_flagged

from neurofuse.config import bands_by_frequency
from neurofuse.naming import derivative_path, parse_name, run_prefix, subject_dir
from neurofuse.resources import load_resource_model


wildcard_constraints:
    sdir=r"sub-[A-Za-z0-9]+(/ses-[A-Za-z0-9]+)?",
    adir=r"sub-[A-Za-z0-9]+(/ses-[A-Za-z0-9]+)?",
    run=r"sub-[A-Za-z0-9]+(_[a-z]+-[A-Za-z0-9]+)*",
    anat=r"sub-[A-Za-z0-9]+(_[a-z]+-[A-Za-z0-9]+)*",


LOGS = f"{OUT}/logs"
WORK = f"{OUT}/work"
ENV = "../envs/neurofuse.yaml"
# What each job asks a scheduler for: mem_mb and runtime from measured figures, growing with
# the job's input and with each retry (workflow/resources.yaml, neurofuse.resources).
RESOURCE_MODEL = load_resource_model(os.path.join(workflow.basedir, "resources.yaml"))


def measured(rule):
    # Google Batch's own resource names only when the data are in a bucket (the gcp profile).
    return RESOURCE_MODEL.snakemake_resources(rule, google_batch=LOCATIONS.on_storage)


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
    """A dataset file; in a bucket, a storage object that the job alone downloads."""
    if LOCATIONS.bids_url is not None:
        return storage(LOCATIONS.bids_object(rel))
    return os.path.join(config["bids_dir"], rel)


RUNS_BY_ID = {run.id: run for run in INDEX.runs}
RUNS_BY_SUBJECT = {}  # subject -> its runs, in index order (one pass: a scan per subject job is quadratic)
for _run in INDEX.runs:
    RUNS_BY_SUBJECT.setdefault(_run.subject, []).append(_run)


def run_of(wildcards):
    """The run of a job (a dict lookup: the DAG asks this several times per job)."""
    return RUNS_BY_ID[wildcards.run]


def t1w_key(run):
    """(adir, anat) wildcard values of the run's T1w, or None."""
    if not run.t1w:
        return None
    entities = parse_name(run.t1w)[0]
    return subject_dir(entities), run_prefix(entities)


def fill(pattern, **wildcards):
    """A rule's output pattern with its wildcards filled in (also when it lives in a bucket)."""
    if is_flagged(pattern, "storage_object"):  # str.format would leave the storage query behind
        return pattern.apply_wildcards(wildcards)
    return pattern.format(**wildcards)


def expand_runs(patterns, runs):
    """Every pattern filled in for every run."""
    return [fill(pattern, sdir=run.subdir, run=run.id) for run in runs for pattern in patterns]


# T1w images the runs use, by their (adir, anat) wildcard values.
T1W_FILES = {t1w_key(run): run.t1w for run in INDEX.runs if run.t1w}


# fMRI: the T1w -> MNI transforms a run's resampling composes with its BOLD -> T1w one.
T1W_TO_MNI = dict(desc="T1wToMNI152NLin2009cAsym")


def anat_transforms(wildcards):
    """The run's T1w -> MNI transforms in ANTs order (warp, affine); none without a T1w."""
    key = t1w_key(run_of(wildcards))
    if key is None:
        return []
    adir, anat = key
    return [
        anat_work(**T1W_TO_MNI, suffix="warp", extension=".nii.gz").format(adir=adir, anat=anat),
        anat_work(**T1W_TO_MNI, suffix="xfm", extension=".mat").format(adir=adir, anat=anat),
    ]


def t1w_of_run(wildcards):
    run = run_of(wildcards)
    return {"t1w": bids_file(run.t1w)} if run.t1w else {}


# EEG: in-scanner runs (volume markers found, eeg.recorded_in not "outside") get gradient and
# BCG removal first.
def eeg_in_scanner(run):
    if config["eeg"]["recorded_in"] == "outside":
        return False
    return bool(run.eeg and run.eeg.n_volume_markers)


def eeg_raw_file(wildcards):
    return bids_file(run_of(wildcards).eeg.path)


def eeg_companions(wildcards):
    """The .eeg signal and .vmrk markers beside a raw BrainVision header: inputs too, so that a
    job in the cloud downloads them, a changed marker file re-runs the job and the job's
    resources scale with the recording's size (on a local disk: those that exist)."""
    eeg = run_of(wildcards).eeg
    if not eeg.path.endswith(".vhdr"):
        return []
    files = [eeg.path[: -len(".vhdr")] + ".eeg"] + ([eeg.marker_file] if eeg.marker_file else [])
    if LOCATIONS.bids_url is not None:
        return [bids_file(rel) for rel in files]
    return [path for path in map(bids_file, files) if os.path.exists(path)]


def eeg_line_freq(wildcards):
    """Mains frequency (Hz) for the notch filter: the sidecar's PowerLineFrequency (checked by the
    index), 50 Hz when it is absent, no notch when it is "n/a" (unknown)."""
    value = run_of(wildcards).eeg.metadata.get("PowerLineFrequency", 50)
    return None if value == "n/a" else value


def eeg_clean_companions(wildcards):
    """Companions of the raw recording when eeg_clean_signal reads it (runs outside the scanner)."""
    return [] if eeg_in_scanner(run_of(wildcards)) else eeg_companions(wildcards)


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


# Report: the files the HTML reports show (rules/report.smk). ---------------------------
def report_run_files(run):
    """QC figures, confounds and EEG step logs of one run, for its subject report."""
    patterns = []
    if run.bold:
        confounds = rules.fmri_compute_confounds.output
        patterns += [confounds.tsv, confounds.json, confounds.motion, confounds.carpet, confounds.registration]
    if eeg_in_scanner(run):
        gradient = rules.eeg_remove_gradient_artifact.output
        bcg = rules.eeg_remove_bcg_artifact.output
        patterns += [gradient.log, gradient.qc, bcg.log, bcg.qc, bcg.rpeaks_qc]
    if run.eeg:
        clean = rules.eeg_clean_signal.output
        patterns += [clean.log, clean.qc, clean.ica]
    glm = glm_run_figure(run)
    return expand_runs(patterns, [run]) + ([glm] if glm else [])


def report_subject_files(wildcards):
    return [path for run in RUNS_BY_SUBJECT.get(wildcards.subject, ()) for path in report_run_files(run)]


def report_group_files(wildcards):
    """The group fusion outputs (figures, model card) of every task, when fusion runs."""
    return [path for task in INDEX.tasks for path in fusion_report_inputs(task).values()]


def report_group_maps(wildcards):
    """The group NIfTI maps of every task (GLM z-maps, fusion heatmaps): linked to Neuroglancer."""
    return [path for task in INDEX.tasks if fusion_runs(task) for path in fusion_group_maps(task)]


# End of Report block. ---------------------------------------------------------------


# Fusion: paired runs per task, the bands and the outputs the reports show (rules/fusion.smk).
FUSION = config["fusion"]
FUSION_BANDS = FUSION["bands"] or list(bands_by_frequency(config["eeg"]["bands"]))
GROUP = f"{OUT}/group"


def fusion_runs(task):
    """Runs of ``task`` with both BOLD and EEG (fusion needs both)."""
    return [run for run in INDEX.paired_runs() if run.task == task]


def fusion_tasks():
    return [task for task in INDEX.tasks if fusion_runs(task)]


def fusion_run_inputs(wildcards):
    """Per-run inputs of the group steps: BOLD, mask, band power and confounds of every paired run."""
    runs = fusion_runs(wildcards.task)
    pick = lambda pattern: expand_runs([pattern], runs)
    return {
        "bold": pick(rules.fmri_resample_bold_to_template.output.bold),
        "mask": pick(rules.fmri_resample_bold_to_template.output.mask),
        "bands": pick(rules.eeg_compute_band_power.output.tsv),
        "confounds": pick(rules.fmri_compute_confounds.output.tsv),
    }


def fusion_glm_maps(wildcards, kind):
    """First-level effect or variance maps of every paired run of the task, per band."""
    runs = fusion_runs(wildcards.task)
    return {band: expand_runs([work("func", desc=band, stat=kind, suffix="statmap", extension=".nii.gz")], runs)
            for band in FUSION_BANDS}


def glm_run_figure(run):
    """The run's GLM figure, or None when fusion does not apply to it."""
    if run.bold is None or run.eeg is None:
        return None
    return out("figures", desc="glm", suffix="statmap", extension=".png").format(sdir=run.subdir, run=run.id)


def fusion_report_inputs(task):
    """Group fusion outputs of ``task`` that the group report shows ({} without paired runs)."""
    if not fusion_runs(task):
        return {}
    train = rules.fusion_train_model.output
    outputs = {
        "glm_figure": rules.fusion_combine_glm.output.figure,
        "fusion_figure": train.maps_figure,
        "training_curves": train.curves_figure,
        "model_card": train.card_json,
    }
    return {name: fill(path, task=task) for name, path in outputs.items()}

def fusion_group_maps(task):
    """Group z-maps (one per band) and the fusion model's heatmaps of ``task``."""
    return [fill(path, task=task) for path in
            list(rules.fusion_combine_glm.output.zmaps) + list(rules.fusion_train_model.output.maps)]

# Names of the deep model's heatmaps: all bands together, then one per band.
FUSION_MAP_NAMES = ["fusion"] + [f"{band}fusion" for band in FUSION_BANDS]


# The privacy gate (rules/privacy.smk calls it): stop before data leave the machine.
from neurofuse.privacy.gate import gate_file, run_gate

PRIVACY_GATE = gate_file(OUT)


def privacy_gate(executor=None):
    try:
        decision = run_gate(config, PRIVACY_GATE, executor=executor,
                            storage_provider=workflow.storage_settings.default_storage_provider)
    except NeuroFuseError as err:
        print(f"NeuroFuse: {err}", file=sys.stderr)
        sys.exit(1)
    logger.info(f"NeuroFuse: {decision.summary()}")
