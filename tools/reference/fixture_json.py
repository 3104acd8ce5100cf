"""Shared helpers for the reference scripts in tools/reference/: compact JSON output, float32
values written in their shortest round-trip form, and the provenance block every fixture
carries (library versions and the command that made it).

Not a script: imported by the others.
"""

import json
import platform
import sys
from importlib import metadata
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures"
MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """Where scripts/fetch-model puts the SmolLM2 GGUF."""
    import os

    cache = os.environ.get("BASTION_MODEL_CACHE") or str(Path.home() / ".cache/bastion/models")
    return Path(cache) / MODEL_NAME


def float32_list(values) -> list:
    """Floats as float32, each printed in the shortest text that reads back to the same
    float32 (so the JSON is exact for float32 consumers and not 17 digits long)."""
    import numpy as np

    arr = np.asarray(values, dtype=np.float32).ravel()
    return [float(np.format_float_scientific(v, unique=True, trim="-")) for v in arr]


def provenance(script: str, command: str, packages: list[str]) -> dict:
    versions = {"python": platform.python_version()}
    for name in packages:
        versions[name] = metadata.version(name)
    return {"made_by": script, "command": command, "versions": versions}


def write_json(path: Path, data: dict) -> None:
    """Compact JSON (no indentation), one trailing newline; reports the size written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(REPO_ROOT)} ({path.stat().st_size} bytes)", file=sys.stderr)
