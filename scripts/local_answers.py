"""How usable a local model's answers are, through the real answer path (`rag ask` with ``gguf:``).

    python scripts/local_answers.py MODEL.gguf --index INDEX [--corpus corpus] [--limit 12] [--text]

Asks evenly spread answerable questions of the `report` split of eval/qa.jsonl and prints, per
answer and in total: the protocol used (claims / text), sentences, the share carrying a valid
``[n]``, repeated sentences, sentences the check flags as unsupported, time to first token and
to the whole answer. ``--text`` measures the text protocol (``answer.structured = false``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from rag.answer.citations import cited_numbers  # noqa: E402 -- after the path set-up above
from rag.answer.generate import answer_sentences  # noqa: E402
from rag.contract import AskRequest  # noqa: E402
from rag.service import Notes  # noqa: E402
from rag.settings import Settings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model", type=Path)
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--limit", type=int, default=12)
    parser.add_argument("--text", action="store_true", help="the text protocol instead of JSON claims")
    args = parser.parse_args()
    rows = [json.loads(line) for line in (ROOT / "eval" / "qa.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if r.get("split") == "report" and r.get("gold")]
    rows = rows[::max(1, len(rows) // args.limit)][:args.limit]
    settings = Settings().updated({"index.path": args.index, "index.corpus": args.corpus,
                                   "llm.model": f"gguf:{args.model}", "answer.structured": not args.text})
    total = {"sentences": 0, "cited": 0, "repeats": 0, "unsupported": 0, "answers": 0, "refused": 0, "fell_back": 0}
    firsts: list[float] = []
    with Notes(settings) as notes:
        notes.model.answer_settings()  # load the model before the clock starts
        for row in rows:
            started, first = time.monotonic(), None
            stream = notes.ask(AskRequest(question=row["question"]))
            while True:
                try:
                    next(stream)
                except StopIteration as done:
                    answer = done.value
                    break
                first = first or time.monotonic() - started
            elapsed = time.monotonic() - started
            if answer.refused or answer.mode != "llm":
                total["refused" if answer.refused else "fell_back"] += 1
                print(f"{row['id']}: {'refused' if answer.refused else 'fell back'} ({answer.mode}, {answer.notice})")
                continue
            said = answer_sentences(answer.text)
            known = {c.n for c in answer.citations}
            valid = [s for s in said if set(cited_numbers(s)) & known]
            repeats = len(said) - len(set(said))
            total["answers"] += 1
            total["sentences"] += len(said)
            total["cited"] += len(valid)
            total["repeats"] += repeats
            total["unsupported"] += len(answer.unsupported)
            if first is not None:
                firsts.append(first)
            print(f"{row['id']}: {answer.format}, {len(said)} sentences, {len(valid)} cited, {repeats} repeats, "
                  f"{len(answer.unsupported)} unsupported, first text {first or 0:.1f} s, all {elapsed:.1f} s "
                  f"| {answer.text[:120]!r}")
    firsts.sort()
    p50 = firsts[len(firsts) // 2] if firsts else float("nan")
    share = total["cited"] / total["sentences"] if total["sentences"] else float("nan")
    print(json.dumps({**total, "cited_share": round(share, 3), "first_text_p50_s": round(p50, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
