"""The library examples (examples/ and docs/saga-engine.md): where they are, what they must print."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "saga-engine.md"
TRIP = ROOT / "examples" / "trip" / "trip.py"


def documented(marker: str, language: str) -> str:
    """The fenced block of `language` that follows ``<!-- marker -->`` in docs/saga-engine.md."""
    found = re.search(rf"<!-- {marker} -->\s*```{language}\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert found is not None, f"no ```{language} block after <!-- {marker} --> in {DOC}"
    return found.group(1)


def run_python(python: str | Path, script: Path, *args: str, timeout: float = 60) -> str:
    """Run `script` with the interpreter `python`; return its output (it must succeed)."""
    run = subprocess.run(
        [str(python), str(script), *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert run.returncode == 0, run.stderr
    return run.stdout
