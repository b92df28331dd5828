"""One ``costline up`` per data directory, enforced with an advisory file lock."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from services.core.errors import ConfigurationError


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "costline.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise ConfigurationError(
                f"another `costline up` (pid {holder}) is already using data directory "
                f"{self.path.parent}; stop it first, or set COSTLINE_DATA_DIR to another directory"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
