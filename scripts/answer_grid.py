"""The offline answer's quoting budgets, reproducible: keywords and citation precision on ``tune``
of the canned collections for each variant of :data:`rag.answer.intent.BUDGETS`.

Each variant is a JSON object of intent → [sentences, per_entry, other_entry_ratio, keep_ratio,
rank_decay]; unnamed intents keep their committed budget. Run ``rag eval --split tune --collection
eval/other --collection eval/third --collection eval/fifth --collection eval/sixth --collection
eval/seventh`` once first: it builds their indexes. The budgets in intent.py were chosen with this
grid on the first three (eval/README.md, "Issue 23: offline answers").

Usage: python scripts/answer_grid.py '[{}, {"list": [5, 2, 0.7, 0.6, 0.0]}]' [--split tune]
"""

from __future__ import annotations

import argparse
import json

from rag.answer import intent
from rag.answer.answer import answer_question
from rag.eval.collections import canned_sets
from rag.eval.metrics import citation_precision, keyword_coverage
from rag.eval.qa import Span
from rag.service import Notes
from rag.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", help="a JSON list of budget overrides")
    parser.add_argument("--split", default="tune", choices=("tune", "report", "all"))
    args = parser.parse_args()
    committed = dict(intent.BUDGETS)
    sets = []
    for label, settings, questions in canned_sets(Settings(), args.split):
        sets.append((label, settings, Notes(settings).searcher(), [q for q in questions if q.covered]))
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
