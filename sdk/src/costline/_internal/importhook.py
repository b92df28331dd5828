"""Run a callback when a module is imported, or now if it already is.

instrument() uses it so that it never imports a provider module the application has not
imported itself (openai loads its resource modules lazily; importing them all up front
costs a second of start-up).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from costline._internal.guard import internal_error

Callback = Callable[[ModuleType], None]

_callbacks: dict[str, list[Callback]] = {}
_lock = threading.Lock()


def when_imported(module_name: str, callback: Callback) -> None:
    module = sys.modules.get(module_name)
    if module is not None and getattr(getattr(module, "__spec__", None), "_initializing", False):
        module = None  # still executing: wait for the end of its import
    if module is not None:
        callback(module)
        return
    with _lock:
        _callbacks.setdefault(module_name, []).append(callback)
        if _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)


def forget_all() -> None:
    with _lock:
        _callbacks.clear()
        if _FINDER in sys.meta_path:
            sys.meta_path.remove(_FINDER)


def _run_callbacks(module: ModuleType) -> None:
    with _lock:
        callbacks = _callbacks.pop(module.__name__, [])
        if not _callbacks and _FINDER in sys.meta_path:
            sys.meta_path.remove(_FINDER)
    for callback in callbacks:
        try:
            callback(module)
        except Exception:
            internal_error("import hook")


class _Finder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the real loader of a watched module to run callbacks."""

    def __init__(self) -> None:
        self._resolving = threading.local()

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _callbacks or getattr(self._resolving, "name", None) == fullname:
            return None
        self._resolving.name = fullname
        try:
            spec = importlib.util.find_spec(fullname)
        except Exception:
            return None
        finally:
            self._resolving.name = None
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _CallbackLoader(spec.loader)
        return spec


class _CallbackLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        # Put the real loader back first, so the module looks as it would without costline.
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _run_callbacks(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


_FINDER = _Finder()
