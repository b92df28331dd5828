"""Class-level patching of the installed provider clients, idempotent and reversible."""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

from costline._internal.calls import wrap_async, wrap_sync
from costline._internal.guard import logger
from costline._internal.importhook import forget_all, when_imported

_patches: list[tuple[type, str, Any]] = []  # (class, method name, original)
_lock = threading.RLock()


def instrument(*, openai: bool, anthropic: bool) -> None:
    if openai:
        _instrument_openai()
    if anthropic:
        _instrument_anthropic()


def uninstrument() -> None:
    from costline._internal import anthropic_, openai_

    with _lock:
        openai_.SWITCH.on = False
        anthropic_.SWITCH.on = False
        forget_all()
        while _patches:
            cls, name, original = _patches.pop()
            current = cls.__dict__.get(name)
            if getattr(current, "__costline_original__", None) is original:
                setattr(cls, name, original)


def _instrument_openai() -> None:
    from costline._internal import openai_

    openai_.SWITCH.on = True
    for module, cls_name, method, spec, is_async in openai_.TARGETS:
        wrap = wrap_async if is_async else wrap_sync
        _patch_when_imported(module, cls_name, method, lambda o, s=spec, w=wrap: w(o, s))


def _instrument_anthropic() -> None:
    from costline._internal import anthropic_

    anthropic_.SWITCH.on = True
    for module, cls_name, method, spec, kind in anthropic_.TARGETS:
        if kind == "sync":
            _patch_when_imported(module, cls_name, method, lambda o, s=spec: wrap_sync(o, s))
        elif kind == "async":
            _patch_when_imported(module, cls_name, method, lambda o, s=spec: wrap_async(o, s))
        else:
            is_async = kind == "astream"
            _patch_when_imported(
                module,
                cls_name,
                method,
                lambda o, s=spec, a=is_async: anthropic_.wrap_stream_helper(o, s, a),
            )


def _patch_when_imported(module_name: str, cls_name: str, method: str, make_wrapper: Any) -> None:
    """Patch now if the module is imported, else right after the application imports it."""
    if not _installed(module_name.partition(".")[0]):
        return
    when_imported(module_name, lambda module: _patch(module, cls_name, method, make_wrapper))


def _installed(top_level: str) -> bool:
    if top_level in sys.modules:
        return True
    try:
        return importlib.util.find_spec(top_level) is not None
    except (ImportError, ValueError):
        return False


def _patch(module: ModuleType, cls_name: str, method: str, make_wrapper: Any) -> None:
    cls = getattr(module, cls_name, None)  # may import a submodule: not under the lock
    if not isinstance(cls, type) or method not in cls.__dict__:
        logger.debug("costline: %s.%s.%s not found", module.__name__, cls_name, method)
        return
    with _lock:
        original = cls.__dict__[method]
        if getattr(original, "__costline_original__", None) is not None:
            return  # already wrapped: instrument() twice does not double-wrap
        setattr(cls, method, make_wrapper(original))
        _patches.append((cls, method, original))


def is_instrumented(cls: type, method: str) -> bool:
    return getattr(cls.__dict__.get(method), "__costline_original__", None) is not None
