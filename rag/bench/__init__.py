"""`rag bench`: speed and scale. :func:`rag.bench.run.run_bench` runs it; the parts are harness,
notes, search, baseline, synth, proxy, scale and report."""
