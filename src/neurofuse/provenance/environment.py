"""The software a run used: Python, platform, packages, external tools, code versions."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neurofuse.provenance.hashing import sha256_file, sha256_tree

#: Environment variables that change numbers or identify the software image. Their
#: values are recorded (others are not: they may hold secrets).
RECORDED_ENV_VARS: tuple[str, ...] = (
    "PYTHONHASHSEED",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
    "ANTS_RANDOM_SEED",
    "NEUROFUSE_CONTAINER",
    "NEUROFUSE_CONTAINER_DIGEST",
)

#: Paths listed when a git work tree is dirty (more are counted, not listed).
MAX_LISTED_CHANGES = 200


def package_versions() -> dict[str, str]:
    """``{distribution name (lower case): version}`` of every installed Python package."""
    versions: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions[name.lower().replace("_", "-")] = dist.version
    return dict(sorted(versions.items()))


def tool_versions() -> dict[str, dict[str, str]]:
    """External (non-Python) tools the workflow uses and how they were obtained.

    ANTs runs inside ANTsPy (``antspyx``), which bundles its own ANTs and ITK build; the
    antspyx version pins both. Read from package metadata, without importing ANTsPy.
    """
    tools: dict[str, dict[str, str]] = {}
    try:
        tools["ANTs"] = {"via": "antspyx", "version": importlib.metadata.version("antspyx")}
    except importlib.metadata.PackageNotFoundError:
        pass
    return tools


def python_environment(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Python, platform, package and tool versions, and the recorded environment variables."""
    env = os.environ if env is None else env
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable_prefix": sys.prefix,
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "platform": platform.platform(),
        },
        "packages": package_versions(),
        "tools": tool_versions(),
        "env": {name: env[name] for name in RECORDED_ENV_VARS if name in env},
    }


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        result = subprocess.run(
            ["git", "--no-optional-locks", *args], cwd=cwd, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def git_state(path: str | os.PathLike) -> dict[str, Any] | None:
    """Commit and dirty flag of the git work tree holding ``path`` (None: not in git).

    ``dirty`` counts modified, staged and untracked files (untracked code changes
    results as much as modified code); ignored files (e.g. ``results/``) do not count.
    """
    cwd = Path(path)
    if not cwd.is_dir():
        cwd = cwd.parent
    commit = _git(["rev-parse", "HEAD"], cwd)
    if commit is None:
        return None
    status = _git(["status", "--porcelain", "--untracked-files=all"], cwd) or ""
    changes = sorted(line[3:] for line in status.splitlines() if len(line) > 3)
    return {
        "commit": commit.strip(),
        "dirty": bool(changes),
        "n_changes": len(changes),
        "changes": changes[:MAX_LISTED_CHANGES],
    }


def tree_hashes(root: str | os.PathLike, patterns: tuple[str, ...]) -> dict[str, str]:
    """``{relative path: sha256}`` of the files under ``root`` matching ``patterns``."""
    root = Path(root)
    files: dict[str, str] = {}
    for pattern in patterns:
        for path in root.rglob(pattern):
            if path.is_file() and "__pycache__" not in path.parts and ".snakemake" not in path.parts:
                files[path.relative_to(root).as_posix()] = sha256_file(path)
    return dict(sorted(files.items()))


def workflow_code(workflow_dir: str | os.PathLike) -> dict[str, Any]:
    """Hashes of the workflow (Snakefile, rules, scripts, schemas, envs) and of the library.

    The git commit says which version was checked out; these hashes say what was
    actually run, also from a dirty tree or an installed copy without git.
    """
    import neurofuse

    workflow_files = tree_hashes(workflow_dir, ("Snakefile", "*.smk", "*.py", "*.yaml", "*.yml", "*.rst"))
    library_dir = Path(neurofuse.__file__).parent
    library_files = tree_hashes(library_dir, ("*.py",))
    return {
        "workflow_files": workflow_files,
        "library_sha256": sha256_tree(library_files.items()),
        "library_n_files": len(library_files),
    }
