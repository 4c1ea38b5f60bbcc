"""Where the real Asterisk AMI captures are (../shared/reference/ami-captures/): tests read
them in place, never copy them into the repository, and skip, saying where they looked,
when there are none."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest


def _captures_folder() -> Path:
    """Where PGCTI_AMI_CAPTURES says, else beside the project root
    (../shared/reference/ami-captures), else beside the local repository this one was
    cloned from: a clean clone in a scratch folder (CI) still reads them in place."""
    if os.environ.get("PGCTI_AMI_CAPTURES"):
        return Path(os.environ["PGCTI_AMI_CAPTURES"])
    root = Path(__file__).resolve().parents[2]
    beside = [root.parent]
    origin = subprocess.run(
        ["git", "-C", str(root), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if origin.startswith("file://"):
        origin = origin[len("file://") :]
    if origin and Path(origin).is_absolute():  # a local path, not a network remote
        beside.append(Path(origin).resolve().parent)
    candidates = [b / "shared" / "reference" / "ami-captures" for b in beside]
    return next((c for c in candidates if c.is_dir()), candidates[0])


CAPTURES = _captures_folder()


def real_captures() -> list[Path]:
    """The real captures' files; the test skips, saying where it looked, when there are none."""
    files = sorted(CAPTURES.glob("*.ami")) if CAPTURES.is_dir() else []
    if not files:
        pytest.skip(
            f"no real AMI captures at {CAPTURES} (reference data beside the project, never "
            "copied into it; set PGCTI_AMI_CAPTURES to their folder)"
        )
    return files
