# EEG preprocessing, per EEG run: gradient and BCG artifact removal for runs recorded in
# the scanner, then filtering, bad channels and ICA, then band power on the fMRI grid.
EEG = config["eeg"]


rule eeg_remove_gradient_artifact:
    input:
        eeg=eeg_raw_file,
        companions=eeg_companions,
    output:
        eeg=work("eeg", desc="gradient", suffix="eeg", extension=".fif"),
        log=work("eeg", desc="gradient", suffix="log", extension=".json"),
        qc=report(
            out("figures", desc="gradient", suffix="eeg", extension=".png"),
            caption="../report/eeg_gradient.rst",
            category="EEG quality control",
            subcategory="{run}",
            labels={"figure": "gradient artifact removal"},
        ),
    params:
        volume_marker=EEG["volume_marker"],
        sfreq_out=EEG["sfreq"],
        window=EEG["aas_window"],
        obs_components=EEG["obs_components"],
        obs_highpass=EEG["obs_highpass"],
        timing=bold_timing,
    log:
        f"{LOGS}/eeg_remove_gradient_artifact/{{sdir}}/{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/eeg_remove_gradient_artifact/{{sdir}}/{{run}}.tsv"
    threads: 1
    resources:
        **measured("eeg_remove_gradient_artifact"),
    conda:
        ENV
    script:
        "../scripts/eeg_remove_gradient_artifact.py"


rule eeg_remove_bcg_artifact:
    input:
        eeg=rules.eeg_remove_gradient_artifact.output.eeg,
    output:
        eeg=work("eeg", desc="bcg", suffix="eeg", extension=".fif"),
        rpeaks=out("eeg", desc="rpeaks", suffix="events", extension=".tsv"),
        log=work("eeg", desc="bcg", suffix="log", extension=".json"),
        qc=report(
            out("figures", desc="bcg", suffix="eeg", extension=".png"),
            caption="../report/eeg_bcg.rst",
            category="EEG quality control",
            subcategory="{run}",
            labels={"figure": "BCG removal"},
        ),
        rpeaks_qc=report(
            out("figures", desc="rpeaks", suffix="eeg", extension=".png"),
            caption="../report/eeg_rpeaks.rst",
            category="EEG quality control",
            subcategory="{run}",
            labels={"figure": "R-peaks"},
        ),
    params:
        method=EEG["bcg_method"],
        ecg_channel=EEG["ecg_channel"],
        missing_ecg=EEG["missing_ecg"],
    log:
        f"{LOGS}/eeg_remove_bcg_artifact/{{sdir}}/{{run}}.log",
    threads: 1
    resources:
        **measured("eeg_remove_bcg_artifact"),
    conda:
        ENV
    script:
        "../scripts/eeg_remove_bcg_artifact.py"


rule eeg_clean_signal:
    input:
        eeg=eeg_clean_input,
        companions=eeg_clean_companions,
    output:
        eeg=out("eeg", desc="clean", suffix="eeg", extension=".fif"),
        log=out("eeg", desc="clean", suffix="log", extension=".json"),
        qc=report(
            out("figures", desc="clean", suffix="eeg", extension=".png"),
            caption="../report/eeg_clean.rst",
            category="EEG quality control",
            subcategory="{run}",
            labels={"figure": "cleaning"},
        ),
        ica=report(
            out("figures", desc="ica", suffix="eeg", extension=".png"),
            caption="../report/eeg_ica.rst",
            category="EEG quality control",
            subcategory="{run}",
            labels={"figure": "ICA components removed"},
        ),
    params:
        l_freq=EEG["l_freq"],
        h_freq=EEG["h_freq"],
        ica_method=EEG["ica_method"],
        line_freq=eeg_line_freq,
        seed=config["seed"],
    log:
        f"{LOGS}/eeg_clean_signal/{{sdir}}/{{run}}.log",
    benchmark:
        f"{OUT}/benchmarks/eeg_clean_signal/{{sdir}}/{{run}}.tsv"
    threads: 1
    resources:
        **measured("eeg_clean_signal"),
    conda:
        ENV
    script:
        "../scripts/eeg_clean_signal.py"


rule eeg_compute_band_power:
    input:
        eeg=rules.eeg_clean_signal.output.eeg,
    output:
        tsv=out("eeg", desc="eegbands", suffix="timeseries", extension=".tsv"),
        json=out("eeg", desc="eegbands", suffix="timeseries", extension=".json"),
    params:
        bands=EEG["bands"],
        volume_marker=lambda wc: EEG["volume_marker"] if eeg_in_scanner(run_of(wc)) else None,
        window_s=EEG["window_s"],
        dummy_scans=EEG["dummy_scans"],
        timing=bold_timing,
    log:
        f"{LOGS}/eeg_compute_band_power/{{sdir}}/{{run}}.log",
    threads: 1
    resources:
        **measured("eeg_compute_band_power"),
    conda:
        ENV
    script:
        "../scripts/eeg_compute_band_power.py"


EEG_TARGETS = expand_runs(
    [rules.eeg_compute_band_power.output.tsv, rules.eeg_clean_signal.output.ica],
    INDEX.eeg_runs(),
) + expand_runs(
    [rules.eeg_remove_bcg_artifact.output.rpeaks_qc, rules.eeg_remove_gradient_artifact.output.qc],
    [run for run in INDEX.eeg_runs() if eeg_in_scanner(run)],
)
