"""Pins, README commands and workflow files agree with each other."""

import re
import tomllib

import yaml

from neurofuse.config import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
CONDA_NAMES = {"matplotlib": "matplotlib-base"}


def _pins(requirements):
    pins = {}
    for req in requirements:
        name, version = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^;\s]+)", req).groups()
        pins[name.lower()] = version
    return pins


def _conda_pins(path):
    env = yaml.safe_load(path.read_text())
    pins = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str) and "=" in dep:
            name, version = dep.split("=", 1)
            pins[name] = version
        elif isinstance(dep, dict):
            for req in dep["pip"]:
                if "==" in req:
                    name, version = req.split("==")
                    pins[name] = version
    return pins


def test_runtime_dependencies_are_exact_pins():
    deps = PYPROJECT["project"]["dependencies"]
    assert all("==" in d for d in deps), deps


def test_environment_yml_has_the_same_pins():
    pins = _pins(PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["test"])
    conda = _conda_pins(REPO_ROOT / "environment.yml")
    for name, version in pins.items():
        conda_name = CONDA_NAMES.get(name, name)
        assert conda.get(conda_name) == version, f"{name}: pyproject {version}, environment.yml {conda.get(conda_name)}"


def test_rule_envs_agree_with_pyproject():
    pins = _pins(PYPROJECT["project"]["dependencies"])
    for env in (REPO_ROOT / "workflow" / "envs").glob("*.yaml"):
        for name, version in _conda_pins(env).items():
            py_name = {v: k for k, v in CONDA_NAMES.items()}.get(name, name)
            if py_name in pins:
                assert pins[py_name] == version, f"{env.name}: {name}={version}, pyproject {pins[py_name]}"


def test_lock_file_contains_the_direct_pins():
    lock = (REPO_ROOT / "requirements.lock").read_text()
    locked = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", lock, flags=re.M))
    # A local build tag (torch's "+cpu" wheel from /opt/wheels) satisfies the public pin (PEP 440).
    locked = {k.lower(): v.split("+")[0] for k, v in locked.items()}
    for name, version in _pins(PYPROJECT["project"]["dependencies"]).items():
        assert locked.get(name) == version, f"requirements.lock has {name}=={locked.get(name)}, pyproject {version}"


def test_readme_has_the_two_commands_and_ci_calls_the_test_one():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()
