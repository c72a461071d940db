"""The wheel holds every package: built with `pip wheel`, installed without -e in a fresh venv
(its dependencies seen through a .pth, nothing downloaded), `rag search`, `rag eval` and `rag bench`
run from it, and the code they run is the wheel's, not this checkout's."""

from __future__ import annotations

import io
import json
import site
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_wheel_installed_without_editable_runs_search_eval_and_bench(tmp_path: Path, make_corpus) -> None:
    source = tmp_path / "src"
    source.mkdir()
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(source, filter="data")
    built = _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", ".",
                 "-w", tmp_path / "wheels", cwd=source)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "wheels").glob("notes_rag-*.whl"))
    venv = tmp_path / "venv"
    assert _run(sys.executable, "-m", "venv", venv, cwd=tmp_path).returncode == 0
    pure = next((venv / "lib").glob("python3*/site-packages"))
    (pure / "deps.pth").write_text(site.getsitepackages()[0] + "\n", encoding="utf-8")
    installed = _run(venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", wheel, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    rag = venv / "bin" / "rag"

    code = "import rag.eval.runner, rag.bench.run; print(rag.eval.runner.__file__)"
    where = _run(venv / "bin" / "python", "-c", code, cwd=tmp_path)
    assert where.returncode == 0 and where.stdout.startswith(str(pure)), where.stderr
    settings = make_corpus({"moe.md": "## OmniMoE\n原子专家 路由\n\n## HySparse\nKV Cache 显存直降 80%\n"})
    flags = ["--corpus", settings.index.corpus, "--index", settings.index.path, "--embedders", "hash"]
    assert _run(rag, "index", *flags, cwd=tmp_path).returncode == 0
    found = _run(rag, "search", "KV Cache 80%", "--json", *flags, cwd=tmp_path)
    assert found.returncode == 0 and json.loads(found.stdout)["hits"][0]["title"] == "HySparse"
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "q", "question": "原子专家", "gold": [
        {"file": "moe.md", "line_start": 1, "line_end": 2}], "answer_keywords": ["OmniMoE"], "lang": "zh",
        "type": "which-paper"}, ensure_ascii=False) + "\n", encoding="utf-8")
    evaluated = _run(rag, "eval", "--qa", qa, "--out", tmp_path / "eval", "--split", "all", *flags, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert (tmp_path / "eval" / "metrics.json").is_file()
    bench = _run(rag, "bench", "--help", cwd=tmp_path)
    assert bench.returncode == 0 and "usage: rag bench" in bench.stdout
