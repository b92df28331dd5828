"""Webhook URLs are bearer secrets: show where they point, never the secret part."""

from __future__ import annotations

from urllib.parse import urlsplit


def mask_url(url: str) -> str:
    """``https://hooks.slack.com/…x9Qz``: the host and the last four characters only."""
    parts = urlsplit(url)
    tail = url[-4:] if len(url) > 24 else ""
    return f"{parts.scheme}://{parts.hostname or ''}/…{tail}"
