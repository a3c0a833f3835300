"""Load and validate NeuroFuse configuration outside Snakemake.

The Snakefile validates with ``snakemake.utils.validate``; the command line and the
tests use :func:`load_config`, which applies the same schema
(``workflow/schemas/config.schema.yaml``) and fills in the same defaults.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

from neurofuse.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT_CONFIG_PATH = REPO_ROOT / "config" / "config.yaml"


def load_schema(path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _with_defaults(validator_class):
    check_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from check_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def validate_config(config: Mapping[str, Any], schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return a copy of ``config`` with defaults filled in; raise :class:`ConfigError` if invalid."""
    schema = load_schema() if schema is None else schema
    resolved = copy.deepcopy(dict(config))
    validator = _with_defaults(Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(resolved), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "(top level)"
        raise ConfigError(
            f"config key '{where}' is invalid: {first.message}",
            hint="see config/README.md for every key, its type and default",
        )
    return resolved


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read a config YAML (default: ``config/config.yaml``), apply overrides, validate."""
    path = Path(path) if path else DEFAULT_CONFIG_PATH
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise ConfigError("config file not found", path, "pass an existing YAML file") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file is not valid YAML ({err.__class__.__name__})", path) from None
    data.update(overrides or {})
    return validate_config(data)


def iter_keys(schema: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of every key the schema defines (``pairing.unpaired_eeg`` …)."""
    keys = []
    for name, sub in schema.get("properties", {}).items():
        dotted = f"{prefix}{name}"
        keys.append(dotted)
        if "properties" in sub:
            keys.extend(iter_keys(sub, dotted + "."))
    return keys


def bands_by_frequency(bands: Mapping[str, Sequence[float]]) -> dict[str, tuple[float, float]]:
    """Frequency bands ordered by their edges.

    Outputs never depend on the order a config lists its bands in -- nor on a config
    round-tripped through sorted JSON, as ``neurofuse audit --rerun`` does.
    """
    ordered = sorted(bands.items(), key=lambda item: (item[1][0], item[1][1], item[0]))
    return {name: (float(low), float(high)) for name, (low, high) in ordered}
