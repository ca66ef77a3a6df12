"""GPT-2 Explorer: start the app (the file Hugging Face Spaces run: `app_file: app.py` in README.md).

    python app.py                       # GPT-2 124M, downloaded on first use; offline: the small model trained here
    python app.py --size tiny           # the small GPT-2 this project trained and ships (no network)
    python app.py --model-dir DIR       # a checkpoint folder: OpenAI's, Hugging Face's or one `gpt2 train` wrote
    python app.py --help                # every flag

The app itself is explorer/app.py, inside the package, so that an installed package starts it too
(the `gpt2-explorer` command); this file only runs it.
"""

# On a ZeroGPU Space, Hugging Face's `spaces` package must be imported before anything touches CUDA, and its
# docs ask for it at the top of the app file: here, before explorer.app imports torch. (explorer/app.py
# imports it first too, for the installed command; a second import does nothing.)
try:
    import spaces  # noqa: F401
except ImportError:  # the library and the app still work without it, just never on ZeroGPU
    spaces = None

from explorer.app import main  # noqa: E402

if __name__ == "__main__":
    main()
