# Reports: the dataset summary, one HTML report per subject, the methods text (+ CITATION.md)
# and the group report.
# Captions of the figures live in workflow/report/ (shared with `snakemake --report`).
REPORT_CAPTIONS = os.path.join(workflow.basedir, "report")


rule report_summarize_dataset:
    input:
        index=INDEX_FILE,
    output:
        html=f"{OUT}/report/dataset_summary.html",
        tsv=f"{OUT}/report/dataset_summary.tsv",
    log:
        f"{LOGS}/report_summarize_dataset.log",
    threads: 1
    resources:
        **measured("report_summarize_dataset"),
    conda:
        ENV
    script:
        "../scripts/report_summarize_dataset.py"


rule report_build_subject:
    input:
        index=INDEX_FILE,
        files=report_subject_files,
    output:
        html=f"{OUT}/report/sub-{{subject}}.html",
    params:
        captions=REPORT_CAPTIONS,
    log:
        f"{LOGS}/report_build_subject/sub-{{subject}}.log",
    wildcard_constraints:
        subject=r"[A-Za-z0-9]+",
    threads: 1
    resources:
        **measured("report_build_subject"),
    conda:
        ENV
    script:
        "../scripts/report_build_subject.py"


rule report_write_methods:
    input:
        index=INDEX_FILE,
    output:
        methods=report(f"{OUT}/report/methods.md", caption="../report/methods.rst", category="Methods"),
        citation=f"{OUT}/CITATION.md",
    params:
        # The settings the text describes (a change rewrites it); not the locations.
        settings={key: config[key] for key in ("seed", "fmri", "eeg", "fusion")},
    log:
        f"{LOGS}/report_write_methods.log",
    benchmark:
        f"{OUT}/benchmarks/report_write_methods/methods.tsv"
    threads: 1
    resources:
        **measured("report_write_methods"),
    conda:
        ENV
    script:
        "../scripts/report_write_methods.py"


rule report_build_group:
    input:
        methods=rules.report_write_methods.output.methods,
        index=INDEX_FILE,
        subjects=[fill(rules.report_build_subject.output.html, subject=s) for s in INDEX.subjects],
        files=report_group_files,
        maps=report_group_maps,
    output:
        html=f"{OUT}/report/group.html",
        neuroglancer=f"{OUT}/report/neuroglancer.json",
    params:
        captions=REPORT_CAPTIONS,
        # The maps' paths inside output_dir and the bucket folder they are read from (Neuroglancer links).
        map_paths=lambda wc: [os.path.relpath(path, OUT) for path in report_group_maps(wc)],
        maps_url=str(LOCATIONS.out_url) if LOCATIONS.on_storage else None,
    log:
        f"{LOGS}/report_build_group.log",
    threads: 1
    resources:
        **measured("report_build_group"),
    conda:
        ENV
    script:
        "../scripts/report_build_group.py"
