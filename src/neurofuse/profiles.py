"""``neurofuse profiles install``: make ``snakemake --profile gcp`` work from any folder.

Snakemake looks a profile name up in the working directory, then in its user config
folder (``~/.config/snakemake`` on Linux) and its site config folder. The repository's
profiles live in ``profiles/<name>/``, so from the repository root ``--profile
profiles/gcp`` works as it is; this command copies them into the user folder so that
the bare name works everywhere. A profile already installed there is left alone when it
is identical, and replaced only with ``--force`` when it differs (it may hold local edits).
"""

from __future__ import annotations

import filecmp
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from neurofuse.config import REPO_ROOT
from neurofuse.errors import NeuroFuseError

PROFILES_DIR = REPO_ROOT / "profiles"

__all__ = ["available_profiles", "install_profiles", "user_profile_dir"]


def user_profile_dir() -> Path:
    """Snakemake's user config folder, where it looks profile names up."""
    from snakemake.common import get_appdirs

    return Path(get_appdirs().user_config_dir)


def available_profiles() -> list[str]:
    return sorted(p.name for p in PROFILES_DIR.iterdir() if p.is_dir() and any(p.glob("config*.yaml")))


def _same_tree(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files_a)


def install_profiles(names: Sequence[str] = (), *, dest: str | os.PathLike | None = None,
                     force: bool = False) -> list[str]:
    """Copy profiles into ``dest`` (default :func:`user_profile_dir`); one line per profile."""
    available = available_profiles()
    names = list(names) or available
    unknown = [n for n in names if n not in available]
    if unknown:
        raise NeuroFuseError(f"no such profile: {', '.join(unknown)}", PROFILES_DIR,
                             f"choose from {', '.join(available)}")
    target_root = Path(dest).expanduser() if dest else user_profile_dir()
    conflicts = [n for n in names if (target_root / n).exists() and not _same_tree(PROFILES_DIR / n, target_root / n)]
    if conflicts and not force:
        raise NeuroFuseError(f"installed profile(s) differ from the repository's: {', '.join(conflicts)}",
                             target_root, "compare them (they may hold your edits), then use --force to replace")
    lines = []
    for name in names:
        src, dst = PROFILES_DIR / name, target_root / name
        if dst.exists() and _same_tree(src, dst):
            lines.append(f"{name}: already installed in {dst}")
            continue
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst)
        lines.append(f"{name}: installed in {dst} (use: snakemake --profile {name})")
    return lines
