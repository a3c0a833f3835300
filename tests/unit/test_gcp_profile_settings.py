"""Every Google Batch setting the gcp profile, its README and the rules use is one the installed
plugin reads: a misspelt ``googlebatch-*`` option or ``googlebatch_*`` resource (say a
disk-key setting the plugin does not have) would be ignored without a word. The dry run of
the profile itself is tests/workflow/test_profiles.py::test_gcp_profile."""

import dataclasses
import re

import yaml
from snakemake_executor_plugin_googlebatch import ExecutorSettings

from neurofuse.config import REPO_ROOT
from neurofuse.resources import ResourceModel

GCP = REPO_ROOT / "profiles" / "gcp"
FIELDS = {field.name for field in dataclasses.fields(ExecutorSettings)}


def test_profile_options_and_resources_are_plugin_settings():
    profile = yaml.safe_load((GCP / "config.v8+.yaml").read_text())
    options = {key.removeprefix("googlebatch-").replace("-", "_") for key in profile if key.startswith("googlebatch-")}
    resources = set(profile.get("default-resources", {}))
    for per_rule in profile.get("set-resources", {}).values():
        resources |= set(per_rule)
    model = ResourceModel({"rules": {"r": [{"input_mb": 1, "cpu_seconds": 1, "max_rss_mb": 1}]}})
    resources |= set(model.snakemake_resources("r", google_batch=True))
    batch = {key.removeprefix("googlebatch_") for key in resources if key.startswith("googlebatch_")}
    assert options and batch
    assert options <= FIELDS, options - FIELDS
    assert batch <= FIELDS, batch - FIELDS
    # The environment variables the profile and README tell users to export exist for these settings.
    text = (GCP / "config.v8+.yaml").read_text() + (GCP / "README.md").read_text()
    for name in set(re.findall(r"SNAKEMAKE_GOOGLEBATCH_([A-Z_]+)", text)):
        assert name.lower() in FIELDS, name
        field = next(f for f in dataclasses.fields(ExecutorSettings) if f.name == name.lower())
        assert field.metadata.get("env_var"), name


def test_readme_lists_the_plugin_settings_exactly():
    readme = (GCP / "README.md").read_text()
    listed = re.search(r"its settings are (.*?)\(and the Docker login\)", readme, flags=re.S).group(1)
    names = set(re.findall(r"`(\w+)`", listed)) | {"docker_username", "docker_password"}
    assert names == FIELDS  # the claim "no setting for a disk key" rests on this list
    assert not {name for name in FIELDS if "kms" in name or "encrypt" in name}
    documented = set(re.findall(r"`googlebatch[-_]([a-z_-]+)`", readme))
    assert {name.replace("-", "_") for name in documented} <= FIELDS, documented
