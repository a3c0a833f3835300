# The privacy gate (neurofuse.privacy.gate): no data leave this machine while the scan
# finds identifying data, unless the config records the decision (privacy.*).
# Runs in the main process at parse time (so `snakemake -n` stops too, before any job)
# and again on start, when the executor is known.
if workflow.is_main_process:
    privacy_gate()


onstart:
    privacy_gate(executor=workflow.executor_plugin.name if workflow.executor_plugin else None)


rule privacy_write_findings:
    input:
        gate=local(PRIVACY_GATE),  # written by the main process, never on remote storage
    output:
        tsv=f"{OUT}/report/privacy_findings.tsv",
    log:
        f"{LOGS}/privacy_write_findings.log",
    benchmark:
        f"{OUT}/benchmarks/privacy_write_findings/findings.tsv"
    localrule: True
    threads: 1
    resources:
        **measured("privacy_write_findings"),
    conda:
        ENV
    script:
        "../scripts/privacy_write_findings.py"
