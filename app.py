"""`python app.py`: the notes-rag web app on 127.0.0.1:7860 (same as `rag serve`)."""

import sys

from rag.app.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
