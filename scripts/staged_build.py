"""Time a first build's staged commits: when each ranking became searchable, and what each commit cost.

    python scripts/staged_build.py [--corpus corpus] [--embedders e5-onnx,use-m3]

Builds ``--corpus`` into a fresh temporary folder index with the real embedders (as `rag index`
would), then prints the build's summary and the seconds each :meth:`IndexStore.commit` took: the
overhead of being searchable early is the sum of all commits but the last.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rag.embed.models import Models, configure_process
from rag.store import GenerationData

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    parser.add_argument("--embedders", default="e5-onnx,use-m3")
    args = parser.parse_args()
    configure_process()
    from rag.build.builder import build_index
    from rag.settings import Settings
    from rag.store import open_store

    with tempfile.TemporaryDirectory(prefix="staged-build-") as tmp:
        settings = Settings().updated({"index.corpus": args.corpus, "index.path": Path(tmp) / "index",
                                       "index.embedders": args.embedders})
        store = open_store(settings)
        commit, spent = store.commit, []

        def timed(data: GenerationData) -> str:
            started = time.perf_counter()
            generation = commit(data)
            spent.append((data.manifest.pending, time.perf_counter() - started))
            return generation

        store.commit = timed  # type: ignore[method-assign]
        print(build_index(settings.index, store, Models()).summary())
    for pending, seconds in spent:
        print(f"commit lacking {', '.join(pending) or 'nothing'}: {seconds:.2f}s")
    print(f"commits before the last: {sum(s for _, s in spent[:-1]):.2f}s")


if __name__ == "__main__":
    main()
