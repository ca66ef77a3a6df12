"""Where GPT-2's released weights come from: local copies first, the network last.

`locate(size)` returns a folder `load_checkpoint` reads, looking in this order:

  1. the project's cache (`download.model_dir(size)`): OpenAI's files downloaded earlier, or
     the `model.safetensors` made from them on their first load;
  2. the Hugging Face cache (huggingface_hub's own lookup, so $HF_HUB_CACHE and $HF_HOME count):
     `config.json` + `model.safetensors` of the Hub's copy, `HUB_REPOS[size]`. Hugging Face
     Spaces leave files there with `preload_from_hub`, so a Space starts without a download;
  3. a download of those two files from the Hub (unless $HF_HUB_OFFLINE is set);
  4. a download of OpenAI's original TensorFlow files (`download.download_model`).

Nothing touches the network before step 3. Steps 1 and 2 load in seconds with no TensorFlow;
step 4's files need TensorFlow once, on their first load. A source that fails falls through
to the next; if all fail, DownloadError says what was tried and how to fix it.

`source` narrows the search: "hub" (steps 2 and 3) or "openai" (step 4 alone, as before the
Hub copies were used: it reuses its own downloaded files, never the Hugging Face cache).
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .checkpoint import SAFETENSORS_NAME, SHIPPED_MODELS, has_current_safetensors, load_checkpoint
from .config import SIZES
from .download import DownloadError, ProgressCallback, default_base_url, download_model, is_downloaded, model_dir
from .model import GPT2

# Every name `load_pretrained` takes: OpenAI's released sizes, then the models this project trained and ships.
# Each command line's --size offers exactly these.
MODEL_NAMES = (*SIZES, *SHIPPED_MODELS)
SOURCES = ("auto", "hub", "openai")
# The Hub's copies of OpenAI's four sizes (converted by Hugging Face from the same TensorFlow files).
HUB_REPOS = {"124M": "openai-community/gpt2", "355M": "openai-community/gpt2-medium",
             "774M": "openai-community/gpt2-large", "1558M": "openai-community/gpt2-xl"}
HUB_FILES = ("config.json", SAFETENSORS_NAME)  # the small file first: a failure shows in a second
PROBE_TIMEOUT = 5.0
QUICK_TIMEOUT = 3.0  # check_obtainable's limit per server: a command line should not wait longer to learn it is offline


def locate(size: str, cache_dir: str | Path | None = None, *, source: str = "auto",
           on_progress: ProgressCallback | None = None, hub_endpoint: str | None = None,
           **download_options) -> Path:
    """A folder holding GPT-2 `size`'s weights, found or downloaded in the order of the module docstring.

    `download_options` go to `download_model` (OpenAI's files); `hub_endpoint` replaces the
    Hub's address (default: huggingface_hub's, $HF_ENDPOINT). Raises ValueError for an unknown
    size or source and DownloadError when no source has the weights.
    """
    model_dir(size, cache_dir)  # checks the size before it goes near a path or URL
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    tried = []  # (where, why it did not answer), for the message if nothing does
    for name, find in _steps(source):
        try:
            folder = find(size, cache_dir, on_progress=on_progress, hub_endpoint=hub_endpoint, **download_options)
        except DownloadError as err:
            tried.append((name, str(err)))
            continue
        if folder is not None:
            return folder
        tried.append((name, "not there"))
    raise DownloadError(_nothing_found(size, tried))


def available_offline(size: str, cache_dir: str | Path | None = None) -> bool:
    """Whether `size` loads without the network: in the project's cache or the Hugging Face cache."""
    return _in_project_cache(size, cache_dir) or _in_hf_cache(size) is not None


def check_obtainable(size: str, cache_dir: str | Path | None = None, *, source: str = "auto",
                     timeout: float = QUICK_TIMEOUT) -> None:
    """Return when `size` is cached or a server that could send it answers one quick request; else raise
    DownloadError at once, saying what is missing and the command that gets it.

    For command lines: without it an offline `locate` spends its download's retries and their waits
    (about 18 s) finding out that nothing answers. Retries stay for what they are for: a server that
    answered once and then failed.
    """
    if _cached(size, cache_dir, source):
        return
    tried = []
    for where, url in _servers(size, source):
        if url is None:
            tried.append((where, "HF_HUB_OFFLINE is set"))
            continue
        try:
            _probe(url, timeout)
            return
        except DownloadError as err:
            tried.append((where, str(err)))
    cache = model_dir(size, cache_dir).parent
    reasons = "; ".join(f"{where}: {why}" for where, why in tried)
    raise DownloadError(f"GPT-2 {size} is not downloaded and no server answered ({reasons}). On a machine with "
                        f"internet run `python -m gpt2 download {size}` and copy its cache folder ({cache}) here.")


def load_pretrained(size: str = "124M", cache_dir: str | Path | None = None, *, source: str = "auto",
                    **download_options) -> GPT2:
    """OpenAI's released model of this size (found or downloaded by `locate`), or a model this
    project trained and ships, by its name in SHIPPED_MODELS (no network).

    The shape comes from the files found (hparams.json or config.json), not from the size's preset.
    """
    if size in SHIPPED_MODELS:
        return load_checkpoint(SHIPPED_MODELS[size])
    return load_checkpoint(locate(size, cache_dir, source=source, **download_options))


# ---------------------------------------------------------------------------------------------
# The four steps. Each returns a folder, None when its source does not have the size, or raises
# DownloadError saying why its source failed.


def _from_project_cache(size, cache_dir, **_) -> Path | None:
    return model_dir(size, cache_dir) if _in_project_cache(size, cache_dir) else None


def _from_hf_cache(size, cache_dir, **_) -> Path | None:
    return _in_hf_cache(size)


def _from_hub(size, cache_dir, *, on_progress=None, hub_endpoint=None, **_) -> Path:
    from huggingface_hub import constants, hf_hub_download

    if constants.is_offline_mode():
        raise DownloadError("HF_HUB_OFFLINE is set")
    endpoint = hub_endpoint or constants.ENDPOINT
    # huggingface_hub retries a refused connection several times with waits between; one quick look saves
    # that wait offline.
    _probe(f"{endpoint.rstrip('/')}/{HUB_REPOS[size]}/resolve/main/{HUB_FILES[0]}")
    try:
        paths = [hf_hub_download(HUB_REPOS[size], name, endpoint=hub_endpoint,
                                 tqdm_class=_progress_class(name, on_progress)) for name in HUB_FILES]
    except Exception as err:  # huggingface_hub's errors (HTTP, offline, disk) share no narrower base class
        raise DownloadError(f"{type(err).__name__}: {err}") from err
    return Path(paths[0]).parent


def _from_openai(size, cache_dir, *, on_progress=None, hub_endpoint=None, **download_options) -> Path:
    return download_model(size, cache_dir, on_progress=on_progress, **download_options)


def _steps(source: str) -> list[tuple[str, Callable[..., Path | None]]]:
    hub = [("the Hugging Face cache", _from_hf_cache), ("the Hugging Face Hub", _from_hub)]
    openai = [("OpenAI's storage", _from_openai)]
    if source == "hub":
        return hub
    if source == "openai":
        return openai
    return [("the project's cache", _from_project_cache), *hub, *openai]


def _cached(size: str, cache_dir: str | Path | None, source: str) -> bool:
    """Whether `source`'s own lookups find `size` without the network (the same places `locate` looks first)."""
    if source == "openai":
        return is_downloaded(size, cache_dir)
    if source == "hub":
        return _in_hf_cache(size) is not None
    return available_offline(size, cache_dir)


def _servers(size: str, source: str) -> list[tuple[str, str | None]]:
    """(where, a small file's URL) for each server `source` downloads from; None where it may not be asked."""
    from huggingface_hub import constants

    hub = f"{constants.ENDPOINT.rstrip('/')}/{HUB_REPOS[size]}/resolve/main/{HUB_FILES[0]}"
    servers = {"hub": ("the Hugging Face Hub", None if constants.is_offline_mode() else hub),
               "openai": ("OpenAI's storage", f"{default_base_url().rstrip('/')}/{size}/hparams.json")}
    return [servers[name] for name in ("hub", "openai") if source in ("auto", name)]


def _in_project_cache(size: str, cache_dir: str | Path | None) -> bool:
    """OpenAI's files complete, or a safetensors copy made from them (still current) with their hparams.json."""
    return is_downloaded(size, cache_dir) or has_current_safetensors(model_dir(size, cache_dir))


def _in_hf_cache(size: str) -> Path | None:
    """The snapshot folder of the Hub's copy of `size` in the Hugging Face cache, if it holds both files."""
    from huggingface_hub import try_to_load_from_cache

    found = [try_to_load_from_cache(HUB_REPOS[size], name) for name in HUB_FILES]
    if all(isinstance(path, str) for path in found) and len({Path(path).parent for path in found}) == 1:
        return Path(found[0]).parent
    return None


def _probe(url: str, timeout: float = PROBE_TIMEOUT) -> None:
    """One request, no retries: any HTTP answer means the server is reachable; no answer is a DownloadError."""
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        pass  # it answered; hf_hub_download will say what the answer means
    except (OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(f"could not connect to {urllib.parse.urlsplit(url).hostname} ({reason})") from None


def _progress_class(name: str, on_progress: ProgressCallback | None):
    """A tqdm class for hf_hub_download that reports to `on_progress(file name, done, total)` as bytes arrive."""
    from tqdm.auto import tqdm

    if on_progress is None:
        return None

    class Reporter(tqdm):
        def update(self, n=1):
            shown = super().update(n)
            if self.disable:  # a hidden bar stops counting, but the caller still wants to know
                self.n += n
            on_progress(name, int(self.n), int(self.total) if self.total else None)
            return shown

    return Reporter


def _nothing_found(size: str, tried: list[tuple[str, str]]) -> str:
    lines = "; ".join(f"{where}: {why}" for where, why in tried)
    return (f"Could not find or download GPT-2 {size} (tried {lines}). Connect to the internet and run again, "
            f"or on a machine with internet run `python -m gpt2 download {size}` (or "
            f"`hf download {HUB_REPOS[size]} {' '.join(HUB_FILES)}`) and copy its cache folder here.")
