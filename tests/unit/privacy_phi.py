"""Inject identifying data into a copy of the simulated dataset, in every place the scan covers.

``seed_phi(root)`` returns the (file, field) pairs that the scan must report. Values use
the name "Jane Doe", birth date 1951-05-02 and recording dates in 2021.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

NIBABEL_DATA = Path(nib.__file__).parent / "tests" / "data"


def write_edf(path: Path, *, patient: str, recording: str, startdate: str, n_records: int = 2,
              sfreq: int = 100) -> Path:
    """A minimal EDF(+) file with two signals (EDF spec: 256-byte header + 256 per signal)."""
    labels = ["EEG Fz", "EEG Cz"]
    ns = len(labels)
    fields = [
        b"0".ljust(8), patient.encode().ljust(80), recording.encode().ljust(80), startdate.encode(),
        b"10.00.00", str(256 * (ns + 1)).encode().ljust(8), b"EDF+C".ljust(44),
        str(n_records).encode().ljust(8), b"1".ljust(8), str(ns).encode().ljust(4),
    ]
    per_signal = [
        [label.encode().ljust(16) for label in labels], [b"AgAgCl".ljust(80)] * ns, [b"uV".ljust(8)] * ns,
        [b"-3200".ljust(8)] * ns, [b"3200".ljust(8)] * ns, [b"-32768".ljust(8)] * ns, [b"32767".ljust(8)] * ns,
        [b"HP:0.1Hz".ljust(80)] * ns, [str(sfreq).encode().ljust(8)] * ns, [b"".ljust(32)] * ns,
    ]
    header = b"".join(fields) + b"".join(b"".join(column) for column in per_signal)
    assert len(header) == 256 * (ns + 1)
    rng = np.random.default_rng(0)
    data = rng.integers(-1000, 1000, size=(n_records, ns, sfreq)).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + data.tobytes())
    return path


def write_fif(path: Path, *, names: bool = True) -> Path:
    import mne

    info = mne.create_info(["Fz", "Cz", "Pz"], 100.0, "eeg")
    raw = mne.io.RawArray(np.random.default_rng(1).normal(0, 1e-5, (3, 300)), info, verbose="error")
    raw.set_meas_date(dt.datetime(2021, 3, 1, 9, 10, tzinfo=dt.timezone.utc))
    if names:
        with raw.info._unlock():
            raw.info["subject_info"] = {"id": 7, "his_id": "MRN-448812", "first_name": "Jane", "last_name": "Doe",
                                        "birthday": dt.date(1951, 5, 2), "sex": 2}
            raw.info["experimenter"] = "Dr Who"
    path.parent.mkdir(parents=True, exist_ok=True)
    raw.save(path, overwrite=True, verbose="error")
    return path


def set_nifti_fields(path: Path, *, dicom_extension: bool = False, **fields: str) -> None:
    img = nib.load(str(path))
    img = nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine, img.header)
    for name, value in fields.items():
        img.header[name] = value.encode()
    if dicom_extension:
        img.header.extensions.append(nib.nifti1.Nifti1Extension(2, b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100(0010,0010) Doe^Jane"))
    nib.save(img, str(path))


def _edit_json(path: Path, **values) -> None:
    data = json.loads(path.read_text())
    data.update(values)
    path.write_text(json.dumps(data, indent=2))


def seed_phi(root: Path) -> set[tuple[str, str]]:
    """Put identifying data everywhere the scan looks; return the expected (file, field) pairs."""
    expected: set[tuple[str, str]] = set()
    t1w = "sub-01/anat/sub-01_T1w.nii.gz"
    set_nifti_fields(root / t1w, descrip="Jane Doe 1951-05-02", db_name="DOE^JANE", aux_file="MRN 448812",
                     intent_name="jane.doe@example.org")
    expected |= {(t1w, "descrip"), (t1w, "db_name"), (t1w, "aux_file"), (t1w, "intent_name")}
    bold = "sub-02/func/sub-02_task-rest_bold.nii.gz"
    set_nifti_fields(root / bold, dicom_extension=True)
    expected.add((bold, "extension 2 (dicom)"))

    side = "sub-01/func/sub-01_task-rest_bold.json"
    _edit_json(root / side, PatientName="Doe^Jane", PatientID="MRN-448812", PatientBirthDate="19510502",
               InstitutionAddress="1 Hospital Road, Springfield", AcquisitionDateTime="2021-03-01T09:10:00.000000",
               Notes={"Operator": "call 555-201-3344 if the subject moves"})
    expected |= {(side, k) for k in ["PatientName", "PatientID", "PatientBirthDate", "InstitutionAddress",
                                     "AcquisitionDateTime", "Notes.Operator"]}
    eeg_side = "sub-02/eeg/sub-02_task-rest_eeg.json"
    _edit_json(root / eeg_side, SubjectArtefactDescription="Jane moved at 10:15, see notes of 02.03.2021")
    expected.add((eeg_side, "SubjectArtefactDescription"))

    participants = root / "participants.tsv"
    rows = participants.read_text().splitlines()
    extra = {"sub-01": "Jane Doe\t1951-05-02\tslept badly, husband waited outside\t",
             "sub-02": "John Roe\t1940-11-30\tn/a\t"}
    lines = [rows[0].replace("age", "age") + "\tname\tdate_of_birth\tnotes"]
    for row in rows[1:]:
        cells = row.split("\t")
        if cells[0] == "sub-02":
            cells[1] = "92"
        lines.append("\t".join(cells) + "\t" + extra[cells[0]].rstrip("\t"))
    participants.write_text("\n".join(lines) + "\n")
    _edit_json(root / "participants.json", name={"Description": "Full name"})
    expected |= {("participants.tsv", f"column '{c}'") for c in ["name", "date_of_birth", "notes", "age"]}
    expected |= {(f"sub-0{i}/sub-0{i}_scans.tsv", "column 'acq_time'") for i in (1, 2)}

    vmrk = root / "sub-01/eeg/sub-01_task-rest_eeg.vmrk"
    text = vmrk.read_text().replace("Mk1=", "Mk0=New Segment,,1,1,0,20210301091000000000\nMk1=", 1)
    vmrk.write_text(text)
    expected.add(("sub-01/eeg/sub-01_task-rest_eeg.vmrk", "New Segment date"))
    vhdr = root / "sub-01/eeg/sub-01_task-rest_eeg.vhdr"
    vhdr.write_text(vhdr.read_text() + "Recorded by nurse jane.roe@example.org\n")
    expected.add(("sub-01/eeg/sub-01_task-rest_eeg.vhdr", "header text"))

    edf = "sub-03/eeg/sub-03_task-rest_eeg.edf"
    write_edf(root / edf, patient="MCH-0234567 F 02-MAY-1951 Jane_Doe", recording="Startdate 01-MAR-2021 EEG-77 Smith BrainAmp",
              startdate="01.03.21")
    expected |= {(edf, f) for f in ["patient (patient code)", "patient (birth date)", "patient (name)",
                                     "recording (Startdate)", "recording (admin code)", "recording (technician)",
                                     "recording (equipment)", "startdate"]}
    fif = "sub-03/eeg/sub-03_task-outside_eeg.fif"
    write_fif(root / fif)
    expected |= {(fif, f) for f in ["meas_date", "subject_info.first_name", "subject_info.last_name",
                                     "subject_info.his_id", "subject_info.birthday", "experimenter"]}

    # Places the issue does not list.
    source = root / "sourcedata" / "sub-01"
    source.mkdir(parents=True)
    shutil.copy(NIBABEL_DATA / "0.dcm", source / "IM0001")  # a DICOM without extension
    shutil.copy(NIBABEL_DATA / "T1.PAR", source / "T1.PAR")
    expected |= {("sourcedata/sub-01/IM0001", "(file)"), ("sourcedata/sub-01/T1.PAR", "Patient name"),
                 ("sourcedata/sub-01/T1.PAR", "Examination date/time")}
    log = "sourcedata/sub-01/rest_task.log"
    (root / log).write_text("PsychoPy log\nParticipant name: Jane Doe\nStarted 01/03/2021 09:10\ntrial\tonset\n1\t0.5\n")
    expected.add((log, "text"))
    readme = root / "README"
    readme.write_text(readme.read_text() + "\nContact the authors: lab@example.org. Pilot: name = J. Doe, +44 20 7946 0958\n")
    expected.add(("README", "text"))
    nested = "sub-02/func/sub-02_task-rest_bold.json"
    _edit_json(root / nested, Patient={"Name": "Doe^Jane", "Sex": "F"})
    expected.add((nested, "Patient.Name"))
    photo = "sub-01/eeg/sub-01_acq-cap_photo.jpg"
    (root / photo).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    expected.add((photo, "(file)"))
    session = "sub-02/ses-20210301/anat/sub-02_ses-20210301_T2w.json"
    (root / session).parent.mkdir(parents=True)
    (root / session).write_text('{"IntendedFor": "bids::sub-02/ses-20210301/func/x_bold.nii.gz"}')
    expected.add((session, "(file name)"))
    junk = "sub-02/anat/sub-02_T1w.json"
    (root / junk).write_bytes(b"\x00\x9f\x92\x96binary junk\xff")
    expected.add((junk, "(file)"))
    return expected
