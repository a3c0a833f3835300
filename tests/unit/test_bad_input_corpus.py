"""A corpus of broken datasets: each gets ONE clear line (file, what is wrong, what to do).

One subject of the simulator's small preset, copied under a path with non-ASCII letters and
spaces, with one thing broken per case. Dataset-level problems are caught by
``neurofuse index`` (the same index the Snakefile builds before any job); data-level problems
(truncated or NaN data, a full disk) by the workflow scripts themselves, run here in-process
exactly as Snakemake runs them (a ``snakemake`` object, ``run_logged``). Single-file
problems on tiny skeletons are in test_bids_errors.py; this corpus covers real files and
every stage's entry point. Snakemake-level cases (read-only output folder, a symlinked
dataset) are in tests/workflow/test_bad_input_workflow.py.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

import neurofuse.io
from neurofuse.cli import main as cli_main
from neurofuse.errors import NeuroFuseError

from bad_input import (BOLD, BOLD_JSON, DATASET_DIR, EEG_JSON, EEGDATA, RUN, SUB, T1W, VHDR, VMRK, copy_subject,
                       cut, drop_volume_markers, edit_json, gzip_of, put_in_eeg, read_only_dir, rewrite_bold,
                       run_script, snakemake_object)


@pytest.fixture
def ds(small_dataset: Path, tmp_path: Path) -> Path:
    return copy_subject(small_dataset, tmp_path / DATASET_DIR)


def one_line_error(text: str) -> str:
    """The single error line of a command's stderr; never a traceback."""
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("warning:")]
    assert len(lines) == 1, text
    assert " -> " in lines[0], lines[0]  # what to do
    return lines[0]


def index_error(root: Path, capsys, *args: str) -> str:
    assert cli_main(["index", str(root), *args]) == 2
    return one_line_error(capsys.readouterr().err)


# --------------------------------------------------------------------------- the index


def _bold_complex(root):
    img = nib.load(root / BOLD)
    data = np.asarray(img.dataobj).astype(np.complex64)
    nib.save(nib.Nifti1Image(data, img.affine), root / BOLD)


def _bold_annex(root):
    (root / BOLD).unlink()
    (root / BOLD).symlink_to("../../.git/annex/objects/XX/SHA256E-s1--0.nii.gz")


def _eeg_binary_format(root):
    text = (root / VHDR).read_text(encoding="utf-8")
    (root / VHDR).write_text(text.replace("BinaryFormat=IEEE_FLOAT_32", "BinaryFormat=IEEE_FLOAT_64"), encoding="utf-8")


def _duplicate_run(root):
    nib.save(nib.load(root / BOLD), root / BOLD.replace(".nii.gz", ".nii"))


def _no_tr_anywhere(root):
    edit_json(root / "task-rest_bold.json", RepetitionTime=None)
    data = (root / "task-rest_bold.json").read_text().replace('"RepetitionTime": null, ', "")
    data = data.replace(', "RepetitionTime": null', "")
    (root / "task-rest_bold.json").write_text(data)


def _bold_nan_affine(root):
    img = nib.load(root / BOLD)
    affine = img.affine.copy()
    affine[0, 3] = np.nan
    out = nib.Nifti1Image(np.asarray(img.dataobj), affine, img.header)
    out.header.set_qform(None, code=0)
    nib.save(out, root / BOLD)


def _bold_5d(root):
    img = nib.load(root / BOLD)
    data = np.asarray(img.dataobj)
    nib.save(nib.Nifti1Image(np.stack([data, data], axis=-1), img.affine), root / BOLD)


INDEX_CASES = {
    # id: (break the dataset, file the message names, what it says, what to do)
    "bold truncated": (lambda r: cut(r / BOLD, 4000), BOLD, "image is truncated", "copy it again from the source"),
    "bold gzip complete but image short": (
        lambda r: (r / BOLD).write_bytes(gzip_of(__import__("gzip").decompress((r / BOLD).read_bytes())[:-5000])),
        BOLD, "image is truncated: it decompresses to", "copy it again"),
    "bold empty file": (lambda r: (r / BOLD).write_bytes(b""), BOLD, "cannot read the NIfTI header (the file is empty",
                        "copy the file again"),
    "bold not a nifti": (lambda r: (r / BOLD).write_bytes(gzip_of(b"<html>404 Not Found</html>" * 40)), BOLD,
                         "cannot read the NIfTI header", "not a NIfTI image"),
    "bold complex voxels": (_bold_complex, BOLD, "unsupported voxel data type complex64", "float32"),
    "bold 5D (two echoes in one file)": (_bold_5d, BOLD, "a _bold image must be 4D (x, y, z, time), this one is 5D "
                                         "with shape 28x34x30x32x2", "split the extra dimension"),
    "slice direction not an axis": (lambda r: edit_json(r / BOLD_JSON, SliceEncodingDirection="z"), BOLD_JSON,
                                    "SliceEncodingDirection must be one of i, j, k, i-, j-, k-, got 'z' (a string)",
                                    "the voxel axis"),
    "bold orientation NaN": (_bold_nan_affine, BOLD, "the header has no usable voxel size or orientation (voxel "
                             "size 6 x 6 x 6 mm, affine finite: False)", "convert the DICOMs again"),
    "bold annex symlink not fetched": (_bold_annex, BOLD, "cannot read the NIfTI header", "datalad get"),
    "t1w truncated": (lambda r: cut(r / T1W, 3000), T1W, "image is truncated", "copy it again"),
    "eeg data truncated mid-sample": (lambda r: cut(r / EEGDATA, 6), EEGDATA,
                                      "is truncated or does not match its header", "copy it again from the source"),
    "eeg data truncated, markers past its end": (
        lambda r: cut(r / EEGDATA, (r / EEGDATA).stat().st_size // 2 // 136 * 136), VHDR,
        "markers lie after the end of the recording", "the data file is incomplete"),
    "eeg data file missing": (lambda r: (r / EEGDATA).unlink(), VHDR, "named in DataFile= does not exist",
                              "copy the .eeg file beside its .vhdr"),
    "eeg data file empty": (lambda r: (r / EEGDATA).write_bytes(b""), VHDR, "is empty", "copy the recording again"),
    "eeg header garbage": (lambda r: (r / VHDR).write_text("PK\x03\x04 zip file"), VHDR,
                           "not a BrainVision header", "export the recording again"),
    "eeg wrong binary format": (_eeg_binary_format, VHDR, "unsupported BinaryFormat 'IEEE_FLOAT_64'",
                                "INT_16, INT_32 or IEEE_FLOAT_32"),
    "eeg marker file garbage": (lambda r: (r / VMRK).write_text("garbage\n"), VHDR, "cannot read the BrainVision",
                                "complete BrainVision files"),
    "TR as a string": (lambda r: edit_json(r / BOLD_JSON, RepetitionTime="1.5"), BOLD_JSON,
                       "RepetitionTime must be a positive number of seconds, got '1.5' (a string)", "without quotes"),
    "TR in milliseconds": (lambda r: edit_json(r / BOLD_JSON, RepetitionTime=1500), BOLD_JSON,
                           "RepetitionTime = 1500 s is implausibly long", "milliseconds? write 1.5"),
    "TR missing (no sidecar sets it)": (_no_tr_anywhere, BOLD, "RepetitionTime is missing",
                                        'add "RepetitionTime": <seconds>'),
    "SliceTiming as text": (lambda r: edit_json(r / BOLD_JSON, SliceTiming="0 0.75 0.05"), BOLD_JSON,
                            "SliceTiming must be a list of numbers", "one onset per slice"),
    "sampling frequency as a string": (lambda r: edit_json(r / EEG_JSON, SamplingFrequency="2000 Hz"), EEG_JSON,
                                       "SamplingFrequency must be a positive number (Hz), got '2000 Hz'",
                                       "without quotes"),
    "line frequency as a string": (lambda r: edit_json(r / EEG_JSON, PowerLineFrequency="50Hz"), EEG_JSON,
                                   "PowerLineFrequency must be a positive number (Hz) or \"n/a\"", "e.g."),
    "sidecar invalid JSON": (lambda r: (r / BOLD_JSON).write_text('{"EchoTime": 0.03,}'), BOLD_JSON,
                             "invalid JSON at line 1", "fix the JSON syntax"),
    "sidecar not UTF-8": (lambda r: (r / BOLD_JSON).write_bytes('{"Manufacturer": "Société"}'.encode("latin-1")),
                          BOLD_JSON, "sidecar is not UTF-8 text", "save the JSON file as UTF-8"),
    "duplicated run (.nii and .nii.gz)": (_duplicate_run, BOLD,
                                          "two BOLD files for the same run", "keep one of them"),
    "markers imply another TR": (lambda r: drop_volume_markers(r / VMRK, keep_every=2), VMRK,
                                 "markers imply TR = 3 s but RepetitionTime of sub-01_task-rest_bold.nii.gz is 1.5 s",
                                 "one marker per volume"),
    "dataset_description missing": (lambda r: (r / "dataset_description.json").unlink(), "",
                                    "not a BIDS dataset: dataset_description.json is missing",
                                    "point bids_dir at the dataset root"),
    "file in another subject's folder": (
        lambda r: (r / BOLD).rename(r / BOLD.replace("func/sub-01_", "func/sub-02_")),
        BOLD.replace("func/sub-01_", "func/sub-02_"), "does not match its folder", "rename the file"),
}


@pytest.mark.parametrize("case", list(INDEX_CASES))
def test_index_reports_broken_dataset(case, ds, capsys):
    breaker, rel, problem, hint = INDEX_CASES[case]
    breaker(ds)
    line = index_error(ds, capsys)
    assert line.startswith(f"neurofuse: error: {ds / rel}: " if rel else f"neurofuse: error: {ds}: "), line
    assert problem in line
    assert hint is None or hint in line.split(" -> ", 1)[1]


def test_index_warns_on_volume_count_mismatch(ds, capsys):
    """Fewer volume markers than BOLD volumes (EEG stopped early): indexed, with a warning naming both counts."""
    drop_volume_markers(ds / VMRK, drop_last=5)
    assert cli_main(["index", str(ds)]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert (f"warning: {ds / VMRK}: 27 'Response/R128' volume markers but sub-01_task-rest_bold.nii.gz has 32 "
            "volumes (difference -5) -> dummy scans or an EEG recording that stopped early") in err


def test_index_warns_on_subject_folder_with_invalid_label(ds, capsys):
    shutil.copytree(ds / SUB, ds / "sub-02 copie")
    assert cli_main(["index", str(ds)]) == 0
    err = capsys.readouterr().err
    assert (f"warning: {ds / 'sub-02 copie'}: subject folder with an invalid label (BIDS labels are letters and "
            "digits only); skipped -> rename it, e.g. to sub-02copie") in err


def test_index_safety_net_for_the_unanticipated(ds, capsys, monkeypatch):
    """A dataset that trips something nobody anticipated: one line, the traceback kept in a file."""
    import neurofuse.bids.index as index_module

    def surprise(path):
        raise KeyError("NumberOfChannels")

    monkeypatch.setattr(index_module, "read_vhdr", surprise)
    line = index_error(ds, capsys)
    assert line.startswith(f"neurofuse: error: {ds}: indexing failed on something this dataset has that NeuroFuse "
                           "does not expect (KeyError: 'NumberOfChannels') -> the traceback is in ")
    log = Path(line.split("the traceback is in ", 1)[1].split(":", 1)[0])
    assert "in surprise" in log.read_text() and "check_brainvision" in log.read_text()
    log.unlink()


def test_scans_tsv_not_utf8(ds, capsys):
    (ds / SUB / f"{SUB}_scans.tsv").write_bytes("filename\tacq_time\nfunc/é.nii\t2020-01-01T10:00:00\n"
                                                .encode("latin-1"))
    (ds / VHDR).rename(ds / VHDR.replace("task-rest_", "task-rest_acq-x_"))  # no longer paired by name
    line = index_error(ds, capsys)
    assert line.startswith(f"neurofuse: error: {ds / SUB / (SUB + '_scans.tsv')}: scans.tsv is not UTF-8 text")


def test_index_of_symlinked_dataset_with_unicode_and_spaces(ds, tmp_path, capsys):
    link = tmp_path / "lien vers l'étude"
    link.symlink_to(ds, target_is_directory=True)
    assert cli_main(["index", str(link), "--json", str(tmp_path / "résultats" / "index.json")]) == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"{ds}: 1 subjects, 1 BOLD runs, 1 EEG runs, 1 EEG-BOLD pairs")
    assert "Traceback" not in out.err


def test_index_json_into_read_only_folder(ds, tmp_path, capsys):
    with read_only_dir(tmp_path / "locked") as locked:
        line = index_error(ds, capsys, "--json", str(locked / "neurofuse" / "index.json"))
    assert line.startswith(f"neurofuse: error: {locked}/neurofuse/index.json: cannot write in the output folder "
                           f"{locked} (")
    assert "make " in line and "writable" in line


# --------------------------------------------------------------------------- the steps


def job_for(rule: str, ds: Path, out: Path, **overrides):
    """The snakemake object of one step of sub-01's run, with the Snakefile's inputs and outputs."""
    work = out / "work" / SUB
    jobs = {
        "fmri_estimate_head_motion": dict(
            input={"bold": str(ds / BOLD)},
            output={"motion": str(work / "func" / f"{RUN}_desc-hmc_motion.tsv"),
                    "boldref": str(work / "func" / f"{RUN}_desc-hmc_boldref.nii.gz")},
            params={"backend": "native", "reference": "median", "min_volumes": 10},
            wildcards={"sdir": SUB, "run": RUN}),
        "anat_register_t1w_to_template": dict(
            input={"t1w": str(ds / T1W)},
            output={"affine": str(work / "anat" / f"{SUB}_desc-T1wToMNI152NLin2009cAsym_xfm.mat"),
                    "warp": str(work / "anat" / f"{SUB}_desc-T1wToMNI152NLin2009cAsym_warp.nii.gz")},
            params={"resolution": 2.0, "seed": 42},
            wildcards={"adir": SUB, "anat": SUB}),
        "eeg_remove_gradient_artifact": dict(
            input={"eeg": str(ds / VHDR), "companions": str(ds / EEGDATA)},
            output={"eeg": str(work / "eeg" / f"{RUN}_desc-gradient_eeg.fif"),
                    "log": str(work / "eeg" / f"{RUN}_desc-gradient_log.json"),
                    "qc": str(out / SUB / "figures" / f"{RUN}_desc-gradient_eeg.png")},
            params={"volume_marker": "Response/R128", "sfreq_out": 250.0, "window": 30, "obs_components": 0,
                    "obs_highpass": 70.0, "timing": {"tr": 1.5, "n_volumes": 32, "slice_times": None}},
            wildcards={"sdir": SUB, "run": RUN}),
        "eeg_clean_signal": dict(
            input={"eeg": str(ds / VHDR), "companions": str(ds / EEGDATA)},
            output={"eeg": str(work / "eeg" / f"{RUN}_desc-clean_eeg.fif"),
                    "log": str(work / "eeg" / f"{RUN}_desc-clean_log.json"),
                    "qc": str(out / SUB / "figures" / f"{RUN}_desc-clean_eeg.png"),
                    "ica": str(out / SUB / "figures" / f"{RUN}_desc-ica_eeg.png")},
            params={"l_freq": 1.0, "h_freq": 70.0, "line_freq": 50.0, "ica_method": "picard", "seed": 42},
            wildcards={"sdir": SUB, "run": RUN}),
    }
    spec = jobs[rule]
    log = str(out / "logs" / rule / SUB / f"{spec['wildcards'].get('run', SUB)}.log")
    config = {"bids_dir": str(ds), "output_dir": str(out), "resources": {"memory_limit": "off"}}
    return snakemake_object(rule, log=log, config=config, **{**spec, **overrides})


def run_step(rule: str, ds: Path, tmp_path: Path, capsys, **overrides) -> tuple[str, object]:
    job = job_for(rule, ds, tmp_path / "résultats", **overrides)
    assert run_script(rule, job) == 1
    line = one_line_error(capsys.readouterr().err)
    assert line.removeprefix("NeuroFuse: ") in Path(job.log[0]).read_text(encoding="utf-8")  # and in the log
    for path in job.output:  # nothing half-written at an output path
        assert not Path(path).exists(), path
    return line, job


STEP_CASES = {
    # id: (rule, break the dataset, file named, what it says)
    "fmri: BOLD truncated after indexing": ("fmri_estimate_head_motion", lambda r: cut(r / BOLD, 4000), BOLD,
                                            "image is truncated"),
    "fmri: complex voxels": ("fmri_estimate_head_motion", lambda r: rewrite_bold(r / BOLD, dtype=np.complex64), BOLD,
                             "unsupported voxel data type complex64"),
    "anat: T1w truncated": ("anat_register_t1w_to_template", lambda r: cut(r / T1W, 3000), T1W, "image is truncated"),
    "eeg gradient: NaN samples": ("eeg_remove_gradient_artifact",
                                  lambda r: put_in_eeg(r / EEGDATA, channel=2, second=10.0, value=np.nan), VHDR,
                                  "the EEG holds NaN or infinite samples in F3, the first at 10.000 s"),
    "eeg gradient: .eeg truncated mid-sample": ("eeg_remove_gradient_artifact", lambda r: cut(r / EEGDATA, 10),
                                                EEGDATA, "is truncated or does not match its header"),
    "eeg clean: Inf samples": ("eeg_clean_signal",
                               lambda r: put_in_eeg(r / EEGDATA, channel=0, second=3.5, value=np.inf), VHDR,
                               "NaN or infinite samples in Fp1, the first at 3.500 s"),
}


def test_nan_voxels_are_a_warning_and_set_to_zero(ds, tmp_path, capsys):
    """SPM writes NaN outside the brain on purpose: NaN/Inf voxels are named in a warning and
    every step sets them to 0 (an entirely empty volume is an error: test_fmri_odd_inputs)."""
    rewrite_bold(ds / BOLD, nan_volume=7)
    job = job_for("fmri_estimate_head_motion", ds, tmp_path / "out")
    assert run_script("fmri_estimate_head_motion", job) == 0, capsys.readouterr().err
    assert f"{ds / BOLD}: 17 voxel value(s) are NaN or infinite (first in volume 7" in Path(job.log[0]).read_text()
    motion = pd.read_csv(job.output.motion, sep="\t")
    assert len(motion) == 32 and np.isfinite(motion.to_numpy()).all()


@pytest.mark.parametrize("case", list(STEP_CASES))
def test_step_reports_broken_data(case, ds, tmp_path, capsys):
    rule, breaker, rel, problem = STEP_CASES[case]
    breaker(ds)
    line, job = run_step(rule, ds, tmp_path, capsys)
    who = "subject 01 (run=sub-01_task-rest)" if "run" in job.wildcards.keys() else "subject 01 (anat=sub-01)"
    assert line.startswith(f"NeuroFuse: rule {rule} for {who}: {ds / rel}: "), line
    assert problem in line


@pytest.mark.parametrize("bids_dir, output_dir, inputs, raw", [
    ("/d/ds", "/d/ds/derivatives/nf", ["/d/ds/sub-01/a.nii.gz", "/d/ds/derivatives/nf/work/b.nii.gz", "/t/c.nii"],
     ["/d/ds/sub-01/a.nii.gz"]),
    ("gs://bkt/ds", "gs://bkt/out", [".snakemake/storage/gcs/bkt/ds/sub-01/a.nii.gz",
                                     ".snakemake/storage/gcs/bkt/out/work/b.nii.gz"],
     [".snakemake/storage/gcs/bkt/ds/sub-01/a.nii.gz"]),
])
def test_only_the_raw_dataset_inputs_are_checked(bids_dir, output_dir, inputs, raw):
    """Derivatives (also inside the dataset, or downloaded from a bucket) are not read twice."""
    from neurofuse.workflow import JobContext

    assert JobContext(inputs=inputs, bids_dir=bids_dir, output_dir=output_dir).raw_inputs() == raw


def test_full_disk_leaves_nothing_at_the_output(ds, tmp_path, capsys, monkeypatch):
    """A real ENOSPC from the kernel: the atomic writer's temporary file is /dev/full."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    real_mkstemp, real_chmod = tempfile.mkstemp, os.chmod

    def mkstemp_on_full_disk(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        os.unlink(name)
        os.symlink("/dev/full", name)  # every write to it fails with ENOSPC
        return fd, name

    monkeypatch.setattr(neurofuse.io.tempfile, "mkstemp", mkstemp_on_full_disk)
    monkeypatch.setattr(neurofuse.io.os, "chmod", lambda p, m: None if os.path.islink(p) else real_chmod(p, m))
    line, job = run_step("fmri_estimate_head_motion", ds, tmp_path, capsys)
    assert line.startswith("NeuroFuse: rule fmri_estimate_head_motion for subject 01 (run=sub-01_task-rest): "), line
    assert "cannot write this output: the disk is full (No space left on device); nothing was left at the path" in line
    assert "free space on the disk of" in line and "df -h" in line
    named = line.split("): ", 1)[1].split(": cannot", 1)[0]
    assert named in list(job.output), (named, list(job.output))  # the output being written is named
    folder = Path(named).parent
    assert sorted(os.listdir(folder)) == []  # no partial or temporary file beside it either


def test_unexpected_error_is_one_line_with_the_log(tmp_path, capsys):
    """A failure nobody anticipated: one line with rule, subject and the log holding the traceback."""
    from neurofuse.workflow import run_logged

    log = tmp_path / "logs" / "x.log"
    snakemake = snakemake_object("fusion_fit_glm", input={}, output={}, params={}, log=str(log),  # noqa: F841
                                 wildcards={"sdir": "sub-07", "run": "sub-07_task-rest"}, config={})

    def step():
        return {"a": 1}["b"]

    with pytest.raises(SystemExit) as info:
        run_logged(str(log), step)
    assert info.value.code == 1
    line = one_line_error(capsys.readouterr().err)
    assert line == (f"NeuroFuse: rule fusion_fit_glm for subject 07 (run=sub-07_task-rest) failed: KeyError: 'b' -> "
                    f"this is not a known input problem; the full traceback is in {log}: check the inputs it names, "
                    "or report it with that log")
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "return {\"a\": 1}[\"b\"]" in text


def test_memory_error_names_rule_subject_and_limit(tmp_path, capsys):
    from neurofuse.workflow import run_logged

    log = tmp_path / "x.log"
    snakemake = snakemake_object("fusion_train_model", input={}, output={}, params={}, log=str(log),  # noqa: F841
                                 wildcards={"task": "rest"}, config={"resources": {"memory_limit": "off"}},
                                 mem_mb=1500)
    with pytest.raises(SystemExit):
        run_logged(str(log), lambda: np.ones(2**62, dtype=np.uint8))
    line = one_line_error(capsys.readouterr().err)
    assert line.startswith("NeuroFuse: rule fusion_train_model (task=rest) ran out of memory (mem_mb=1500 MB, ")
    assert "_ArrayMemoryError: Unable to allocate" in line or "MemoryError" in line
    assert "--set-resources fusion_train_model:mem_mb=3000" in line and "--retries" in line


# --------------------------------------------------------------------------- memory limit in a real job process

_MEMORY_JOB = """
import pickle, sys
sys.path.insert(0, {tests!r})
from bad_input import run_script, snakemake_object
job = snakemake_object("fmri_estimate_head_motion", input={{"bold": {bold!r}}},
                       output={{"motion": {out!r} + "/m.tsv", "boldref": {out!r} + "/ref.nii.gz"}},
                       params={{"backend": "native", "reference": "median", "min_volumes": 10}},
                       wildcards={{"sdir": "sub-01", "run": "sub-01_task-rest"}}, log={out!r} + "/job.log",
                       config={{"output_dir": {out!r}, "resources": {{"memory_limit": {policy!r}}}}}, mem_mb={mem})
sys.exit(run_script("fmri_estimate_head_motion", job))
"""


@pytest.mark.parametrize("policy", ["enforce", "warn"])
def test_job_over_its_memory_is_stopped_or_warned(policy, ds, tmp_path):
    """A real job process with mem_mb far below what Python + numpy need (RSS ~100 MB)."""
    out = tmp_path / "out"
    code = _MEMORY_JOB.format(tests=str(Path(__file__).parent), bold=str(ds / BOLD), out=str(out), policy=policy,
                              mem=40)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert "Traceback" not in result.stderr, result.stderr
    if policy == "enforce":
        assert result.returncode == 1
        line = one_line_error(result.stderr)
        assert line.startswith("NeuroFuse: rule fmri_estimate_head_motion for subject 01 (run=sub-01_task-rest) "
                               "exceeded its memory limit: "), line
        assert "MB resident, the rule was given mem_mb=40 MB; the job was stopped" in line
        assert "--set-resources fmri_estimate_head_motion:mem_mb=" in line
        assert not (out / "m.tsv").exists() and not (out / "ref.nii.gz").exists()
    else:
        assert result.returncode == 0, result.stderr
        assert ("NeuroFuse: warning: rule fmri_estimate_head_motion for subject 01 (run=sub-01_task-rest) exceeded "
                "its memory limit:") in result.stderr
        assert (out / "m.tsv").exists()
        assert "peak resident memory" in (out / "job.log").read_text()
