"""Fail early, in one line, when a port we are about to listen on is taken."""

from __future__ import annotations

import socket

from services.core.errors import ConfigurationError


def ensure_port_free(host: str, port: int, *, setting: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigurationError(
                f"port {port} on {host} is already in use ({exc.strerror}); "
                f"set {setting} to a free port"
            ) from None
