"""Token estimates for streams that end without reporting usage.

With tiktoken installed, its encoding for the model is loaded in a background thread the
first time one is needed (tiktoken may download it); until it is ready, or when tiktoken is
missing or cannot load, the estimate is ceil(characters / 4), OpenAI's rule of thumb for
English text. Either way the span says `costline.usage.estimated = true` and which
estimator was used. Nothing here blocks the caller.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from typing import Any

ROUGH = "chars_div_4"
_PER_MESSAGE_OVERHEAD = 4  # role and separators, as OpenAI documents for chat formats
_DEFAULT_ENCODING = "o200k_base"

_encodings: dict[str, Any] = {}  # model -> tiktoken Encoding, once loaded
_unavailable: set[str] = set()
_loading: set[str] = set()
_lock = threading.Lock()


def count(texts: Iterable[str], model: str | None, *, may_load: bool = True) -> tuple[int, str]:
    """(tokens, estimator name) for the given texts.

    may_load=False (from a finalizer) never starts the loader thread.
    """
    encoding = _encoding_for(model or "", may_load)
    if encoding is not None:
        try:
            tokens = sum(len(encoding.encode(text, disallowed_special=())) for text in texts)
            return tokens, "tiktoken:" + str(getattr(encoding, "name", "?"))
        except Exception:
            pass
    chars = sum(len(text) for text in texts)
    return -(-chars // 4), ROUGH


def count_messages(
    messages: list[list[str]], model: str | None, *, may_load: bool = True
) -> tuple[int, str]:
    """Input estimate: the text of each message plus a small per-message overhead."""
    texts = [text for message in messages for text in message]
    tokens, estimator = count(texts, model, may_load=may_load)
    return tokens + _PER_MESSAGE_OVERHEAD * len(messages), estimator


def _encoding_for(model: str, may_load: bool = True) -> Any:
    encoding = _encodings.get(model)
    if encoding is not None or model in _unavailable:
        return encoding
    # Never start a thread from a finalizer or at interpreter exit: it can hang there.
    if not may_load or sys.is_finalizing():
        return None
    with _lock:
        if model in _loading:
            return None
        _loading.add(model)
    threading.Thread(target=_load, args=(model,), name="costline-tiktoken", daemon=True).start()
    return None


def _load(model: str) -> None:
    try:
        import tiktoken

        try:
            name = tiktoken.encoding_name_for_model(model)
        except Exception:
            name = _DEFAULT_ENCODING
        _encodings[model] = tiktoken.get_encoding(name)
    except Exception:  # not installed, offline, unknown: the rough estimate stays
        _unavailable.add(model)
    finally:
        with _lock:
            _loading.discard(model)


def wait_loaded(model: str, timeout_s: float) -> bool:
    """For tests: wait until the encoding for model is loaded or known unavailable."""
    import time

    deadline = time.monotonic() + timeout_s
    _encoding_for(model)
    while time.monotonic() < deadline:
        if model in _encodings or model in _unavailable:
            return model in _encodings
        time.sleep(0.01)
    return False
