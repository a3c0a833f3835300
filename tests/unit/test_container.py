"""The project image (resources/containers/Dockerfile) agrees with the repository: the
interpreter and installer of the lock, the lock installed, the start-up pip commands of the
plugins answered offline at pinned versions, and the profiles pointing at it. (The image is
not built here: no Docker daemon; see resources/containers/README.md.)"""

import re
import sys

from neurofuse.config import REPO_ROOT

DOCKERFILE = (REPO_ROOT / "resources" / "containers" / "Dockerfile").read_text()
LOCK = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", (REPO_ROOT / "requirements.lock").read_text(), flags=re.M))


def _arg(name):
    return re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE, flags=re.M).group(1)


def test_base_image_is_the_interpreter_of_the_lock():
    base = _arg("PYTHON_IMAGE")
    version = re.fullmatch(r"python:(\d+\.\d+\.\d+)-slim-bookworm(@sha256:[0-9a-f]{64})?", base)
    assert version, f"base image not pinned to an exact Python release: {base}"
    assert version.group(1) == ".".join(map(str, sys.version_info[:3]))
    assert DOCKERFILE.count("FROM ${PYTHON_IMAGE}") == 2  # build and final stage, same base


def test_installs_the_lock_with_the_makefiles_uv_and_the_package():
    makefile_uv = re.search(r"^UV_VERSION\s*:=\s*(\S+)", (REPO_ROOT / "Makefile").read_text(), flags=re.M).group(1)
    assert _arg("UV_VERSION") == makefile_uv
    assert "--requirements /tmp/requirements.lock" in DOCKERFILE and "COPY pyproject.toml requirements.lock" in DOCKERFILE
    assert "--no-deps --compile-bytecode ." in DOCKERFILE
    assert LOCK["torch"].endswith("+cpu") and _arg("TORCH_VARIANT") == "cpu"


def test_job_start_pip_commands_resolve_offline_at_pinned_versions():
    assert "no-index = true" in DOCKERFILE and "find-links = /opt/wheelhouse" in DOCKERFILE
    plugin = re.search(r'"snakemake-storage-plugin-gcs==(\S+)"', DOCKERFILE).group(1)
    assert plugin == LOCK["snakemake-storage-plugin-gcs"]
    assert "--constraint requirements.lock" in DOCKERFILE  # its dependencies at the lock's versions
    # The Google Batch plugin's own two lines (command.py), pinned with their dependencies.
    from snakemake_executor_plugin_googlebatch import command

    appended = set(re.findall(r"pip install (\S+==\S+)", command.write_entrypoint))
    assert appended == {"boto3==1.33.11", "urllib3==1.26.17"}
    for requirement in appended:
        assert f'"{requirement}"' in DOCKERFILE
    wheel_pins = re.findall(r'"([A-Za-z0-9_.\-]+)==([^"]+)"', DOCKERFILE)
    assert all(version for _, version in wheel_pins)


def test_profiles_reference_the_pinned_images():
    for name in ("gcp", "kubernetes"):
        profile = (REPO_ROOT / "profiles" / name / "config.v8+.yaml").read_text()
        assert re.search(r"^container-image: \$\{NEUROFUSE_IMAGE\}$", profile, flags=re.M), name
    gcp = (REPO_ROOT / "profiles" / "gcp" / "config.v8+.yaml").read_text()
    assert "googlebatch-image-family: batch-cos-stable-official" in gcp  # the image runs as is, nothing installed
    training = gcp.split("fusion_train_model:", 1)[1]
    assert "googlebatch_container: ${NEUROFUSE_GPU_IMAGE}" in training and "nvidia_gpu: 1" in training
