"""`python app.py`: the notes-rag web app on 127.0.0.1:7860 (same as `rag serve`)."""

from rag.ui import main

if __name__ == "__main__":
    main()
