"""The offline answer's quoting budgets, reproducible: keywords and citation precision on ``tune``
of the three canned collections for each variant of :data:`rag.answer.intent.BUDGETS`.

Each variant is a JSON object of intent → [sentences, per_entry, other_entry_ratio, keep_ratio,
rank_decay]; unnamed intents keep their committed budget. Run ``rag index`` first (and ``rag eval
--collection eval/other --collection eval/third`` once, which builds their .index folders). The budgets
in intent.py were chosen with this grid (eval/README.md, "Issue 23: offline answers").

Usage: python scripts/answer_grid.py '[{}, {"list": [5, 2, 0.7, 0.6, 0.0]}]' [--split tune]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag.answer import intent
from rag.answer.answer import answer_question
from rag.eval.metrics import citation_precision, keyword_coverage
from rag.eval.qa import Span, load_split
from rag.service import Notes
from rag.settings import Settings

COLLECTIONS = (("bundled", "corpus", "index", "eval/qa.jsonl"),
               ("other", "eval/other/notes", "eval/other/.index", "eval/other/qa.jsonl"),
               ("third", "eval/third/notes", "eval/third/.index", "eval/third/qa.jsonl"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", help="a JSON list of budget overrides")
    parser.add_argument("--split", default="tune", choices=("tune", "report", "all"))
    args = parser.parse_args()
    committed = dict(intent.BUDGETS)
    sets = []
    for label, corpus, index, qa in COLLECTIONS:
        settings = Settings().updated({"index.path": Path(index), "index.corpus": Path(corpus)})
        questions = [q for q in load_split(Path(qa), args.split).questions if q.covered]
        sets.append((label, settings, Notes(settings).searcher(), questions))
    for variant in json.loads(args.variants):
        intent.BUDGETS.clear()
        intent.BUDGETS.update(committed)
        intent.BUDGETS.update({intent.Intent(name): intent.Budget(*values) for name, values in variant.items()})
        scores = []
        for label, settings, searcher, questions in sets:
            keywords, precision = [], []
            for q in questions:
                answer = answer_question(q.question, searcher, settings, use_llm=False)
                if (k := keyword_coverage(answer.text, q.answer_keywords)) is not None:
                    keywords.append(k)
                cited = [Span.of(c.hit.entry) for c in answer.citations]
                if (p := citation_precision(cited, q.gold)) is not None:
                    precision.append(p)
            scores.append(f"{label} keywords {sum(keywords) / len(keywords):.3f} "
                          f"precision {sum(precision) / len(precision):.3f}")
        print(json.dumps(variant), "|", " | ".join(scores), flush=True)


if __name__ == "__main__":
    main()
