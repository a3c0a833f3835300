"""What counts as identifying: field names, value patterns, dates and how to mask them.

Three severities (:data:`SEVERITIES`):

``high``
    Direct identifiers: names, record numbers and IDs, birth dates, addresses, phone
    numbers, e-mail addresses, raw DICOM/PAR headers, a face in an anatomical image.
``medium``
    Quasi-identifiers that the HIPAA Safe Harbor method (45 CFR 164.514(b)(2)) also
    requires removing: dates more precise than the year (acquisition, study, series),
    ages of 89 and over, device serial numbers, DICOM UIDs (they embed dates and the
    site's root), photos that may show a face.
``low``
    Things to review: free text that may hold anything, the institution and station
    names and addresses (they narrow down where a participant lives), times of day.

Dates at or before :data:`SHIFTED_YEAR_MAX` (1925) are taken as already shifted: the
BIDS specification (Common principles, "Units") recommends shifting dates for
anonymisation to 1925 or earlier so that shifted dates are recognisable, and
``neurofuse deidentify`` does exactly that.

Why our own patterns: no installed library detects identifiers in neuroimaging headers
(Presidio, scrubadub and the like target prose and are not dependencies here); the
field names come from the DICOM confidentiality profile (PS3.15 Annex E) as dcm2niix
spells them in BIDS sidecars, and the value patterns are deliberately narrow
(separated dates, e-mail, phone, US SSN) so that numbers in sidecars do not trip them.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

SEVERITIES = ("low", "medium", "high")
SHIFTED_YEAR_MAX = 1925


def severity_rank(severity: str) -> int:
    """0 for ``low`` ... 2 for ``high``."""
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class Rule:
    """What a field or column of this name holds, how bad it is and what to do."""

    severity: str
    what: str
    action: str = "remove"  # "remove" or "shift" (dates) or "review"


# JSON sidecar keys (dcm2niix spelling of DICOM attributes, plus BIDS free-text fields).
_NAME = Rule("high", "a person's name")
_ID = Rule("high", "a patient or record identifier")
_BIRTH = Rule("high", "a birth date")
_CONTACT = Rule("high", "contact details")
_DATE = Rule("medium", "a date", "shift")
_UID = Rule("medium", "a DICOM UID (embeds the site root and often a date)")
_DEVICE = Rule("medium", "a device serial number")
_SITE = Rule("low", "where the data were recorded")
_TIME = Rule("low", "a time of day")
_FREE = Rule("low", "free text", "review")

SIDECAR_KEYS: dict[str, Rule] = {
    **dict.fromkeys(
        ["PatientName", "OtherPatientNames", "PatientMotherBirthName", "PatientBirthName",
         "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "OperatorName",
         "NameOfPhysiciansReadingStudy", "RequestingPhysician", "PhysiciansOfRecord",
         "ResponsiblePerson", "SubjectName"], _NAME),
    **dict.fromkeys(
        ["PatientID", "OtherPatientIDs", "OtherPatientIDsSequence", "IssuerOfPatientID",
         "AccessionNumber", "MedicalRecordLocator", "PatientInsurancePlanCodeSequence",
         "StudyID", "AdmissionID", "PerformedProcedureStepID", "RequestedProcedureID"], _ID),
    **dict.fromkeys(["PatientBirthDate", "PatientBirthTime", "BirthDate", "DateOfBirth"], _BIRTH),
    **dict.fromkeys(
        ["PatientAddress", "PatientTelephoneNumbers", "ReferringPhysicianAddress",
         "ReferringPhysicianTelephoneNumbers", "CountryOfResidence", "RegionOfResidence"], _CONTACT),
    **dict.fromkeys(
        ["AcquisitionDateTime", "AcquisitionDate", "StudyDate", "SeriesDate", "ContentDate",
         "InstanceCreationDate", "PerformedProcedureStepStartDate", "StudyDateTime",
         "DateOfLastCalibration", "MeasurementDate", "RecordingDate"], _DATE),
    **dict.fromkeys(
        ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
         "ReferencedSOPInstanceUID", "IrradiationEventUID"], _UID),
    **dict.fromkeys(["DeviceSerialNumber", "CapSerialNumber"], _DEVICE),
    **dict.fromkeys(["InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
                     "StationName"], _SITE),
    **dict.fromkeys(["AcquisitionTime", "StudyTime", "SeriesTime", "ContentTime"], _TIME),
    **dict.fromkeys(["ImageComments", "PatientComments", "StudyComments", "AdditionalPatientHistory",
                     "RequestAttributesSequence", "ProcedureStepDescription"], _FREE),
    "PatientAge": Rule("low", "the age at the scan", "review"),
    # Credentials that end up in a dataset by accident (a service-account key, an API token).
    **dict.fromkeys(["private_key", "private_key_id", "client_secret", "access_token", "refresh_token",
                     "aws_secret_access_key", "aws_session_token", "password", "api_key"],
                    Rule("high", "a credential: remove the file and revoke the key")),
}
_SIDECAR_KEYS_LOWER = {key.lower(): rule for key, rule in SIDECAR_KEYS.items()}

#: dataset_description.json keys that are meant to be public (authors, funding ...).
PUBLIC_DESCRIPTION_KEYS = frozenset({
    "Name", "BIDSVersion", "HEDVersion", "DatasetLinks", "DatasetType", "License", "Authors",
    "Acknowledgements", "HowToAcknowledge", "Funding", "EthicsApprovals", "ReferencesAndLinks",
    "DatasetDOI", "GeneratedBy", "SourceDatasets",
})


def sidecar_rule(key: str) -> Rule | None:
    """The rule for a sidecar key (case-insensitive), or ``None`` if the key is harmless."""
    return _SIDECAR_KEYS_LOWER.get(key.lower())


# Columns of participants.tsv / sessions.tsv / scans.tsv, by normalised name.
_COLUMN_RULES: list[tuple[re.Pattern[str], Rule]] = [
    (re.compile(r"^(full_?|first_?|last_?|given_?|family_?|sur|middle_?|maiden_?|patient_?|subject_?|participant_?)?name$"
                r"|^(initials|surname|forename|nickname)$"), _NAME),
    (re.compile(r"^(mrn|medical_?record(_?number)?|patient_?id|hospital_?id|ssn|social_?security(_?number)?"
                r"|national_?id|insurance(_?number)?|passport(_?number)?|nhs(_?number)?|health_?card)$"), _ID),
    (re.compile(r"^(dob|birth_?date|date_?of_?birth|birthday|birth_?day)$"), _BIRTH),
    (re.compile(r"^(address|street|street_?address|home_?address|city|town|zip|zip_?code|post_?code|postal_?code"
                r"|phone|phone_?number|telephone|mobile|cell|e_?mail|email_?address)$"), _CONTACT),
]
_FREE_TEXT_COLUMNS = re.compile(r"^(notes?|comments?|remarks?|description|history|observations?|free_?text|other)$")


def column_rule(name: str) -> Rule | None:
    """The rule for a tabular column name, or ``None``."""
    key = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    for pattern, rule in _COLUMN_RULES:
        if pattern.search(key):
            return rule
    return None


def is_free_text_column(name: str) -> bool:
    return bool(_FREE_TEXT_COLUMNS.match(re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")))


# Value patterns ------------------------------------------------------------------------
_MONTHS = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
_ISO_DATE = re.compile(r"(?<![\d.])(\d{4})-(\d{2})-(\d{2})(?![\d])")
_DOT_DATE = re.compile(r"(?<![\d.])(\d{1,2})[./](\d{1,2})[./](\d{4})(?![\d.])")
_MON_DATE = re.compile(r"(?<![\w])(\d{1,2})[- ]([A-Za-z]{3})[a-z]*[- ,]+(\d{4})(?![\d])")
_COMPACT_DATE = re.compile(r"(?<![\d])(\d{4})(\d{2})(\d{2})(?:\d{6})?(?:\.\d+)?(?![\d])")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
PHONE = re.compile(r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{2,4}[\s.-]\d{2,4}[\s.-]\d{2,5}(?![\w.])")
SSN = re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)")
#: "Name: Jane Doe", "patient id = 448812", "DOB: ..." in free text.
LABELLED = re.compile(r"\b(?:patient|subject|participant)?[ _-]?(?:name|surname|birth[ _-]?date|date of birth|dob|mrn"
                      r"|patient[ _-]?id)\s*[:=]\s*(?!(?:n/?a|none|x|unknown|anonymi[sz]ed)\b)[^\s,;\[]", re.IGNORECASE)


def _valid(year: int, month: int, day: int) -> _dt.date | None:
    if not 1800 <= year <= 2200:
        return None
    try:
        return _dt.date(year, month, day)
    except ValueError:
        return None


def find_dates(text: str, *, compact: bool = False) -> list[_dt.date]:
    """Calendar dates written in ``text`` (ISO, ``dd.mm.yyyy``/``dd/mm/yyyy``, ``02-MAY-1951``).

    ``compact=True`` also accepts ``YYYYMMDD`` (DICOM and BrainVision style); it is off
    for free text, where eight digits are more often an ID or a version number.
    """
    found: list[_dt.date] = []
    for y, m, d in _ISO_DATE.findall(text):
        found.append(_valid(int(y), int(m), int(d)))
    for d, m, y in _DOT_DATE.findall(text):
        found.append(_valid(int(y), int(m), int(d)) or _valid(int(y), int(d), int(m)))
    for d, mon, y in _MON_DATE.findall(text):
        month = _MONTHS.get(mon.lower())
        found.append(_valid(int(y), month, int(d)) if month else None)
    if compact:
        for y, m, d in _COMPACT_DATE.findall(text):
            found.append(_valid(int(y), int(m), int(d)))
    return [date for date in found if date is not None]


def unshifted(dates: Iterable[_dt.date]) -> list[_dt.date]:
    """Dates after :data:`SHIFTED_YEAR_MAX`: real dates, not shifted ones."""
    return [date for date in dates if date.year > SHIFTED_YEAR_MAX]


@dataclass(frozen=True)
class TextHit:
    severity: str
    what: str


def _without_dates(text: str, compact: bool) -> str:
    patterns = [_ISO_DATE, _DOT_DATE, _MON_DATE] + ([_COMPACT_DATE] if compact else [])
    for pattern in patterns:
        text = pattern.sub("[date removed]", text)
    return text


def classify_text(text: str, *, compact_dates: bool = False) -> list[TextHit]:
    """Identifiers found in a piece of free text (strongest first); ``[]`` if none."""
    hits: list[TextHit] = []
    if LABELLED.search(text):
        hits.append(TextHit("high", "a labelled name, ID or birth date"))
    if EMAIL.search(text):
        hits.append(TextHit("high", "an e-mail address"))
    undated = _without_dates(text, compact_dates)  # "1951-05-02" is a date, not a phone number
    if SSN.search(undated):
        hits.append(TextHit("high", "a social security number"))
    elif PHONE.search(undated):
        hits.append(TextHit("high", "a phone number"))
    dates = unshifted(find_dates(text, compact=compact_dates))
    if dates:
        hits.append(TextHit("medium", f"a date ({describe_dates(dates)})"))
    return hits


def redact_text(text: str, *, compact_dates: bool = False) -> str:
    """``text`` with e-mail addresses, phone and social security numbers and dates removed."""
    text = LABELLED.sub(lambda m: m.group(0)[:-1].rstrip(":= ") + ": [removed]", text)
    text = re.sub(r"\[removed\][^\n,;]*", "[removed]", text)  # the rest of the labelled value
    text = _without_dates(EMAIL.sub("[removed]", text), compact_dates)
    return PHONE.sub("[removed]", SSN.sub("[removed]", text))


def describe_dates(dates: Iterable[_dt.date]) -> str:
    """``"2021"`` or ``"2019-2021"``: the years only, so a report never repeats a date."""
    years = sorted({date.year for date in dates})
    return str(years[0]) if len(years) == 1 else f"{years[0]}-{years[-1]}"


def mask(value: object, limit: int = 24) -> str:
    """A masked preview of an identifying value: first letter of each word, then stars.

    Reports must not spread what they find; this shows enough to locate the value
    (``'J*** S****'``) and its length.
    """
    text = str(value).strip()
    if not text:
        return "''"
    dates = find_dates(text, compact=True)
    if dates and len(text) <= 32:
        return f"a date in {describe_dates(dates)}"
    words = re.split(r"(\W+)", text)
    masked = "".join(w[0] + "*" * (len(w) - 1) if w and w[0].isalnum() else w for w in words)
    if len(masked) > limit:
        masked = masked[:limit] + "..."
    return f"'{masked}' ({len(text)} characters)"


def shift_dates(text: str, days: int, *, compact: bool = True) -> str:
    """``text`` with every date moved ``days`` back, each written as it was (ISO, compact, dotted ...)."""
    delta = _dt.timedelta(days=days)

    def iso(m: re.Match) -> str:
        date = _valid(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return (date - delta).isoformat() if date else m.group(0)

    def dotted(m: re.Match) -> str:
        date = _valid(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        if date is None:
            return m.group(0)
        sep = m.group(0)[len(m.group(1))]
        return (date - delta).strftime(f"%d{sep}%m{sep}%Y")

    def month(m: re.Match) -> str:
        number = _MONTHS.get(m.group(2).lower())
        date = _valid(int(m.group(3)), number, int(m.group(1))) if number else None
        return (date - delta).strftime("%d-%b-%Y").upper() if date else m.group(0)

    def packed(m: re.Match) -> str:
        date = _valid(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return (date - delta).strftime("%Y%m%d") + m.group(0)[8:] if date else m.group(0)

    text = _ISO_DATE.sub(iso, text)
    text = _DOT_DATE.sub(dotted, text)
    text = _MON_DATE.sub(month, text)
    return _COMPACT_DATE.sub(packed, text) if compact else text
