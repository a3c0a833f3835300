# Reports. For now: the dataset summary that every later stage extends.


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
        mem_mb=500,
        runtime=5,
    conda:
        ENV
    script:
        "../scripts/report_summarize_dataset.py"
