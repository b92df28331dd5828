"""``costline alerts``: check that a channel receives messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from services.channels.masking import mask_url
from services.channels.senders import OutgoingMessage, send
from services.core.db import make_engine, make_session_factory, transaction
from services.core.errors import CostlineError
from services.core.runtime import runtime
from services.core.settings import get_settings
from services.models import Channel

alerts_app = typer.Typer(no_args_is_help=True, help="Alert channels: send a test message.")


@alerts_app.callback()
def _group() -> None:
    """Alert channels: send a test message."""  # keeps `alerts test` a subcommand


def _test_message(channel: Channel, now: datetime) -> OutgoingMessage:
    text = f"costline test message for channel {channel.name!r}: alerts will arrive here."
    ref = f"costline-test-{channel.id}-{int(now.timestamp())}"
    return OutgoingMessage(
        text=text,
        blocks=[
            {"type": "header", "text": {"type": "plain_text", "text": "costline test message"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": (
                f":white_check_mark: Channel *{channel.name}* ({channel.kind}) is connected. "
                "Budget, forecast and anomaly alerts will arrive here.")}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": (
                f"Sent {now:%Y-%m-%d %H:%M} UTC · More: `GET /v1/channels/{channel.id}` "
                f"· ref {ref}")}]},
        ],
        payload={"event": "test", "idempotency_key": ref, "text": text,
                 "channel": {"id": channel.id, "name": channel.name}},
        idempotency_key=ref,
    )


@alerts_app.command("test")
def test_channel(
    channel: Annotated[int, typer.Option("--channel", help="Channel id (GET /v1/channels).")],
) -> None:
    """Send a test message to a channel now, and say what the receiver answered."""
    settings = get_settings()
    try:
        with runtime(settings, need_broker=False) as rt:
            engine = make_engine(rt.database_url, pool_size=1)
            try:
                factory = make_session_factory(engine)
                now = datetime.now(UTC)
                with transaction(factory) as session:
                    row = session.get(Channel, channel)
                    if row is None:
                        raise typer.BadParameter(f"no channel with id {channel}",
                                                 param_hint="--channel")
                    kind, url, message = row.kind, row.url, _test_message(row, now)
                result = send(kind, url, message)
                if result.outcome == "broken":
                    with transaction(factory) as session:
                        row = session.get(Channel, channel)
                        if row is not None:
                            row.broken_at, row.broken_reason = now, result.error
            finally:
                engine.dispose()
    except CostlineError as exc:
        typer.echo(f"costline: {exc.message}", err=True)
        raise typer.Exit(2) from None
    target = mask_url(url)
    if result.outcome == "delivered":
        typer.echo(f"sent a test message to channel {channel} ({kind}, {target})")
        return
    verdict = "marked broken" if result.outcome == "broken" else "try again later"
    typer.echo(f"costline: channel {channel} ({target}) answered {result.error}; {verdict}",
               err=True)
    raise typer.Exit(1)
