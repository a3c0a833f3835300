"""The config schema, config/config.yaml and config/README.md stay in step."""

from pathlib import Path

import pytest
import yaml

from neurofuse.config import (
    DEFAULT_CONFIG_PATH,
    REPO_ROOT,
    iter_keys,
    load_config,
    load_schema,
    validate_config,
)
from neurofuse.errors import ConfigError

SCHEMA = load_schema()
KEYS = iter_keys(SCHEMA)


def _walk(schema, prefix=""):
    for name, sub in schema.get("properties", {}).items():
        yield prefix + name, sub
        if "properties" in sub:
            yield from _walk(sub, prefix + name + ".")


@pytest.mark.parametrize("key,sub", list(_walk(SCHEMA)))
def test_every_key_is_typed_defaulted_described(key, sub):
    assert "type" in sub, f"{key} has no type"
    assert "default" in sub, f"{key} has no default"
    assert len(sub.get("description", "")) > 20, f"{key} has no real description"


def test_every_key_is_documented_in_readme():
    readme = (REPO_ROOT / "config" / "README.md").read_text()
    leaves = [k for k, sub in _walk(SCHEMA) if "properties" not in sub]
    missing = [k for k in leaves if f"`{k}`" not in readme]
    assert not missing, f"undocumented in config/README.md: {missing}"


def test_every_key_is_in_config_yaml():
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    flat = set()

    containers = {k for k, sub in _walk(SCHEMA) if "properties" in sub}

    def walk(d, prefix=""):
        for k, v in d.items():
            flat.add(prefix + k)
            if isinstance(v, dict) and prefix + k in containers:
                walk(v, prefix + k + ".")

    walk(data)
    assert set(KEYS) == flat


def test_every_key_is_used_by_the_workflow_or_library():
    sources = [p.read_text() for p in (REPO_ROOT / "workflow").rglob("*") if p.suffix in {".smk", ".py"}]
    sources.append((REPO_ROOT / "workflow" / "Snakefile").read_text())
    sources += [p.read_text() for p in (REPO_ROOT / "src" / "neurofuse").rglob("*.py")]
    text = "\n".join(sources)
    unused = []
    for key in KEYS:
        # config["fmri"]["fd_threshold"], or FMRI = config["fmri"] ... FMRI["fd_threshold"]
        if not all(f'["{part}"]' in text for part in key.split(".")):
            unused.append(key)
    assert not unused, f"config keys never read as config{'[...]'}: {unused}"


def test_defaults_equal_config_yaml():
    """The shipped config.yaml says what the schema defaults say."""
    assert load_config() == validate_config({})


def test_defaults_fill_nested_keys():
    cfg = validate_config({"pairing": {}})
    assert cfg["pairing"]["unpaired_eeg"] == "warn"
    assert cfg["eeg"]["volume_marker"] == "Response/R128"


@pytest.mark.parametrize(
    "override,needle",
    [
        ({"pairing": {"unpaired_eeg": "maybe"}}, "pairing.unpaired_eeg"),
        ({"participant_label": "01"}, "participant_label"),
        ({"no_such_key": 1}, "no_such_key"),
        ({"index": {"check_images": "yes"}}, "index.check_images"),
    ],
)
def test_invalid_config_names_the_key(override, needle):
    with pytest.raises(ConfigError) as info:
        validate_config(override)
    message = str(info.value)
    assert needle in message and "config/README.md" in message
    assert "\n" not in message


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_schema_is_the_one_snakefile_validates():
    snakefile = (REPO_ROOT / "workflow" / "Snakefile").read_text()
    assert 'validate(config, "schemas/config.schema.yaml")' in snakefile
    assert Path(REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml").is_file()
