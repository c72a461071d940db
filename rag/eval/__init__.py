"""Evaluation: the canned set (qa), metrics, configurations, runner, LLM judge and report.
`rag eval` runs :func:`rag.eval.runner.run_eval`."""
