# Fusion of EEG and fMRI, for runs that have both: the EEG-informed GLM per run and per
# group, and the deep fusion model per task (trained with held-out subjects).
MNI = "MNI152NLin2009cAsym"
GLM = FUSION["glm"]


rule fusion_fit_glm:
    input:
        bold=rules.fmri_resample_bold_to_template.output.bold,
        mask=rules.fmri_resample_bold_to_template.output.mask,
        bands=rules.eeg_compute_band_power.output.tsv,
        confounds=rules.fmri_compute_confounds.output.tsv,
    output:
        zmaps=[out("func", space=MNI, desc=b, stat="z", suffix="statmap", extension=".nii.gz") for b in FUSION_BANDS],
        effects=[work("func", desc=b, stat="effect", suffix="statmap", extension=".nii.gz") for b in FUSION_BANDS],
        variances=[work("func", desc=b, stat="variance", suffix="statmap", extension=".nii.gz") for b in FUSION_BANDS],
        design=work("func", desc="glm", suffix="design", extension=".tsv"),
        figure=report(
            out("figures", desc="glm", suffix="statmap", extension=".png"),
            caption="../report/fusion_glm.rst",
            category="Fusion",
            subcategory="{run}",
            labels={"figure": "EEG-informed GLM"},
        ),
    params:
        bands=FUSION_BANDS,
        glm=GLM,
        confounds=FUSION["confounds"],
        tr=lambda wc: run_of(wc).bold.repetition_time,
        sources=lambda wc: [f"bids:raw:{run_of(wc).bold.path}", f"bids:raw:{run_of(wc).eeg.path}"],
    log:
        f"{LOGS}/fusion_fit_glm/{{sdir}}/{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/fusion_fit_glm/{{sdir}}/{{run}}.tsv"
    threads: 1
    resources:
        **measured("fusion_fit_glm"),
    conda:
        ENV
    script:
        "../scripts/fusion_fit_glm.py"


rule fusion_combine_glm:
    input:
        effects=lambda wc: [p for paths in fusion_glm_maps(wc, "effect").values() for p in paths],
        variances=lambda wc: [p for paths in fusion_glm_maps(wc, "variance").values() for p in paths],
        masks=lambda wc: fusion_run_inputs(wc)["mask"],
        designs=lambda wc: expand_runs([rules.fusion_fit_glm.output.design], fusion_runs(wc.task)),
    output:
        zmaps=[f"{GROUP}/task-{{task}}_space-{MNI}_desc-{b}_stat-z_statmap.nii.gz" for b in FUSION_BANDS],
        thresholded=[
            f"{GROUP}/task-{{task}}_space-{MNI}_desc-{b}thresholded_stat-z_statmap.nii.gz" for b in FUSION_BANDS
        ],
        figure=report(
            f"{GROUP}/figures/task-{{task}}_desc-glm_statmap.png",
            caption="../report/fusion_glm_group.rst",
            category="Fusion",
            subcategory="group",
            labels={"figure": "group GLM", "task": "{task}"},
        ),
    params:
        bands=FUSION_BANDS,
        glm=GLM,
        subjects=lambda wc: [run.subject for run in fusion_runs(wc.task)],
    log:
        f"{LOGS}/fusion_combine_glm/task-{{task}}.log",
    wildcard_constraints:
        task=r"[A-Za-z0-9]+",
    threads: 1
    resources:
        **measured("fusion_combine_glm"),
    conda:
        ENV
    script:
        "../scripts/fusion_combine_glm.py"


rule fusion_train_model:
    input:
        unpack(fusion_run_inputs),
    output:
        maps=[f"{GROUP}/task-{{task}}_space-{MNI}_desc-{n}_statmap.nii.gz" for n in FUSION_MAP_NAMES],
        subject_maps=[f"{GROUP}/task-{{task}}_space-{MNI}_desc-{n}subjects_statmap.nii.gz" for n in FUSION_MAP_NAMES],
        model=f"{GROUP}/model/task-{{task}}_model.pt",
        card_json=f"{GROUP}/model/task-{{task}}_modelcard.json",
        card_md=f"{GROUP}/model/task-{{task}}_modelcard.md",
        history_tsv=f"{GROUP}/model/task-{{task}}_desc-training_history.tsv",
        curves_figure=report(
            f"{GROUP}/figures/task-{{task}}_desc-training_curves.svg",
            caption="../report/fusion_training.rst",
            category="Fusion",
            subcategory="group",
            labels={"figure": "training curves", "task": "{task}"},
        ),
        maps_figure=report(
            f"{GROUP}/figures/task-{{task}}_desc-fusion_statmap.png",
            caption="../report/fusion_heatmap.rst",
            category="Fusion",
            subcategory="group",
            labels={"figure": "deep fusion heatmaps", "task": "{task}"},
        ),
    params:
        runs=lambda wc: [run.id for run in fusion_runs(wc.task)],
        subjects=lambda wc: [run.subject for run in fusion_runs(wc.task)],
        trs=lambda wc: [run.bold.repetition_time for run in fusion_runs(wc.task)],
        bands=FUSION_BANDS,
        model=FUSION["model"],
        confounds=FUSION["confounds"],
        high_pass=GLM["high_pass"],
        seed=config["seed"],
        # Checkpoints of every epoch (not outputs: they survive a killed job, and a re-run resumes).
        checkpoint_dir=f"{WORK}/group/model/task-{{task}}",
        # Outputs in a bucket: a copy there too, so a job retried on a new VM (after a Spot
        # preemption) resumes from the last epoch instead of the first.
        checkpoint_url=f"{LOCATIONS.out_url.join('work/group/model')}/task-{{task}}" if LOCATIONS.on_storage else None,
    log:
        f"{LOGS}/fusion_train_model/task-{{task}}.log",
    benchmark:
        f"{OUT}/benchmarks/fusion_train_model/task-{{task}}.tsv"
    wildcard_constraints:
        task=r"[A-Za-z0-9]+",
    threads: 2
    resources:
        **measured("fusion_train_model"),
        gpu=FUSION["model"]["gpu"],
    conda:
        ENV
    script:
        "../scripts/fusion_train_model.py"


FUSION_TARGETS = expand_runs([rules.fusion_fit_glm.output.figure], INDEX.paired_runs()) + [
    path
    for task in fusion_tasks()
    for path in (
        fill(rules.fusion_combine_glm.output.figure, task=task),
        fill(rules.fusion_train_model.output.card_json, task=task),
        fill(rules.fusion_train_model.output.maps_figure, task=task),
    )
]
