"""Choose the answer prompt by measurement: `rag eval` on a subset of the tune split, per prompt variant.

    python scripts/compare_prompts.py --index IDX --llm-model gguf:MODEL.gguf [--covered 8] [--uncovered 2]
        [--variant plain|one-shot] [--out /tmp/prompts]

Variants: ``one-shot`` is :func:`rag.answer.prompts.build_messages` as shipped (the worked example turn
before the question); ``plain`` leaves that turn out. Each variant writes its own eval output
(``OUT/VARIANT/metrics.json``, ``report.md``); the subset is the first covered and uncovered
questions of an even spread over the tune split, written to ``OUT/subset.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from rag.answer import prompts  # noqa: E402 -- after the path set-up above
from rag.eval.qa import load_split  # noqa: E402
from rag.eval.runner import run_eval, spread  # noqa: E402
from rag.settings import load_settings  # noqa: E402

VARIANTS = ("plain", "one-shot")


def subset(qa: Path, covered: int, uncovered: int, out: Path) -> Path:
    """``covered`` + ``uncovered`` tune questions, each an even spread over its kind, as a JSONL file."""
    questions = load_split(qa, "tune").questions
    chosen = {q.id for q in spread([q for q in questions if q.covered], covered)}
    chosen |= {q.id for q in spread([q for q in questions if not q.covered], uncovered)}
    rows = [line for line in qa.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line)["id"] in chosen]
    path = out / "subset.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--llm-model", required=True)
    parser.add_argument("--qa", type=Path, default=ROOT / "eval" / "qa.jsonl")
    parser.add_argument("--covered", type=int, default=8)
    parser.add_argument("--uncovered", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=200, help="answer.max_answer_tokens")
    parser.add_argument("--variant", choices=VARIANTS, action="append")
    parser.add_argument("--out", type=Path, default=Path("/tmp/prompts"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    qa = subset(args.qa, args.covered, args.uncovered, args.out)
    settings = load_settings(env=os.environ, flags={"index.path": args.index, "index.corpus": ROOT / "corpus",
                                                    "llm.model": args.llm_model})
    settings = settings.updated({"answer.max_answer_tokens": args.max_tokens})
    for variant in args.variant or VARIANTS:
        if variant == "plain":
            prompts.example_turns = lambda lang: []  # the shipped prompt minus its worked example
        metrics = run_eval(settings, qa, args.out / variant, configs=["hybrid"], split="tune")
        a = metrics["answers"]
        print(json.dumps({"variant": variant, **{k: a[k] for k in (
            "citation_precision", "citation_recall", "keyword_coverage", "uncovered_refused", "answerable_refused",
            "uncited_rate", "ttft_ms", "latency_ms", "tokens_per_s")}}))


if __name__ == "__main__":
    main()
