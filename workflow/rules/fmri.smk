# fMRI preprocessing in fMRIPrep's order: head motion on the raw series (per run), T1w->MNI
# registration (per T1w), then per run BOLD->T1w registration, slice timing and one composed
# resampling, then confounds and QC figures. Three jobs per run.
FMRI = config["fmri"]


rule fmri_estimate_head_motion:
    input:
        bold=lambda wc: bids_file(run_of(wc).bold.path),
    output:
        motion=work("func", desc="hmc", suffix="motion", extension=".tsv"),
        boldref=work("func", desc="hmc", suffix="boldref", extension=".nii.gz"),
    params:
        backend=FMRI["backend"],
        reference=FMRI["motion_reference"],
        min_volumes=FMRI["min_volumes"],
    log:
        f"{LOGS}/fmri_estimate_head_motion/{{sdir}}/{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/fmri_estimate_head_motion/{{sdir}}/{{run}}.tsv"
    threads: 1
    resources:
        **measured("fmri_estimate_head_motion"),
    conda:
        ENV
    container:
        IMAGES["fmri_tools"]
    script:
        "../scripts/fmri_estimate_head_motion.py"


rule anat_register_t1w_to_template:
    input:
        t1w=lambda wc: bids_file(T1W_FILES[(wc.adir, wc.anat)]),
    output:
        affine=anat_work(**T1W_TO_MNI, suffix="xfm", extension=".mat"),
        warp=anat_work(**T1W_TO_MNI, suffix="warp", extension=".nii.gz"),
    params:
        resolution=FMRI["registration_resolution"],
        seed=config["seed"],
    log:
        f"{LOGS}/anat_register_t1w_to_template/{{adir}}/{{anat}}.log",
    benchmark:
        f"{OUT}/benchmarks/anat_register_t1w_to_template/{{adir}}/{{anat}}.tsv"
    threads: 1
    resources:
        **measured("anat_register_t1w_to_template"),
    conda:
        ENV
    script:
        "../scripts/anat_register_t1w_to_template.py"


# One job per run after head motion: BOLD reference -> T1w registration, slice timing and the
# one resampling. The registration and the slice-time-corrected series serve this
# resampling only: one job keeps the DAG small (1,000 subjects x 4 runs) and stages no
# series between jobs; any change to either re-runs the resampling anyway.
rule fmri_resample_bold_to_template:
    input:
        unpack(t1w_of_run),
        bold=lambda wc: bids_file(run_of(wc).bold.path),
        boldref=rules.fmri_estimate_head_motion.output.boldref,
        motion=rules.fmri_estimate_head_motion.output.motion,
        anat_transforms=anat_transforms,
    output:
        bold=out("func", space="MNI152NLin2009cAsym", desc="preproc", suffix="bold", extension=".nii.gz"),
        json=out("func", space="MNI152NLin2009cAsym", desc="preproc", suffix="bold", extension=".json"),
        mask=out("func", space="MNI152NLin2009cAsym", desc="brain", suffix="mask", extension=".nii.gz"),
        boldref=out("func", space="MNI152NLin2009cAsym", suffix="boldref", extension=".nii.gz"),
        coreg=work("func", desc="coreg", suffix="xfm", extension=".mat"),
    params:
        metadata=lambda wc: run_of(wc).bold.metadata,
        ref_time=FMRI["slice_time_ref"],
        backend=FMRI["backend"],
        bold_to_t1w=FMRI["bold_to_t1w"],
        registration_resolution=FMRI["registration_resolution"],
        resolution=FMRI["output_resolution"],
        seed=config["seed"],
        sources=lambda wc: [f"bids:raw:{run_of(wc).bold.path}"],
    log:
        f"{LOGS}/fmri_resample_bold_to_template/{{sdir}}/{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/fmri_resample_bold_to_template/{{sdir}}/{{run}}.tsv"
    threads: 1
    resources:
        **measured("fmri_resample_bold_to_template"),
    conda:
        ENV
    container:
        IMAGES["fmri_tools"]
    script:
        "../scripts/fmri_resample_bold_to_template.py"


# The confounds and the QC figures drawn from them are one job: both read the MNI-space series.
rule fmri_compute_confounds:
    input:
        motion=rules.fmri_estimate_head_motion.output.motion,
        bold=rules.fmri_resample_bold_to_template.output.bold,
        mask=rules.fmri_resample_bold_to_template.output.mask,
        boldref=rules.fmri_resample_bold_to_template.output.boldref,
    output:
        tsv=out("func", desc="confounds", suffix="timeseries", extension=".tsv"),
        json=out("func", desc="confounds", suffix="timeseries", extension=".json"),
        motion=report(
            out("figures", desc="motion", suffix="bold", extension=".svg"),
            caption="../report/fmri_motion.rst",
            category="fMRI quality control",
            subcategory="{run}",
            labels={"figure": "head motion"},
        ),
        carpet=report(
            out("figures", desc="carpet", suffix="bold", extension=".png"),
            caption="../report/fmri_carpet.rst",
            category="fMRI quality control",
            subcategory="{run}",
            labels={"figure": "carpet plot"},
        ),
        registration=report(
            out("figures", desc="registration", suffix="bold", extension=".svg"),
            caption="../report/fmri_registration.rst",
            category="fMRI quality control",
            subcategory="{run}",
            labels={"figure": "registration"},
        ),
    params:
        fd_threshold=FMRI["fd_threshold"],
        dvars_threshold=FMRI["dvars_threshold"],
        tr=lambda wc: run_of(wc).bold.repetition_time,
        resolution=FMRI["output_resolution"],
    log:
        f"{LOGS}/fmri_compute_confounds/{{sdir}}/{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/fmri_compute_confounds/{{sdir}}/{{run}}.tsv"
    threads: 1
    resources:
        **measured("fmri_compute_confounds"),
    conda:
        ENV
    script:
        "../scripts/fmri_compute_confounds.py"


FMRI_TARGETS = expand_runs(
    [
        rules.fmri_compute_confounds.output.tsv,
        rules.fmri_compute_confounds.output.carpet,
        rules.fmri_compute_confounds.output.motion,
        rules.fmri_compute_confounds.output.registration,
    ],
    INDEX.bold_runs(),
)
