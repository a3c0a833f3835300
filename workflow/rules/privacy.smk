# The privacy gate (neurofuse.privacy.gate): no data leave this machine while the scan
# finds identifying data, unless the config records the decision (privacy.*).
# Runs in the main process at parse time (so `snakemake -n` stops too, before any job)
# and again on start, when the executor is known.
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
    localrule: True
    threads: 1
    resources:
        mem_mb=200,
        runtime=2,
    conda:
        ENV
    script:
        "../scripts/privacy_write_findings.py"
