"""The outbox reaches every channel exactly once, in order, through failures and kills."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from services.alerts.outbox import deliver_pending
from services.channels import senders
from services.channels.senders import OutgoingMessage, SendResult
from services.models import Channel, Delivery
from tests.alerts.fake_slack import FakeSlack
from tests.alerts.helpers import FakeClock, WorkerKilled, make_alert, make_channel
from tests.factories import make_project

SLACK_PATH = "/services/T1/B1/aaaaaaaaaaaaaaaaaaaaaaaa"
OTHER_PATH = "/services/T1/B2/bbbbbbbbbbbbbbbbbbbbbbbb"


def _arrange(session_factory: sessionmaker[Session], fake: FakeSlack, clock: FakeClock,
             *, alerts: int = 1, paths: tuple[str, ...] = (SLACK_PATH,),
             kind: str = "slack") -> None:
    with session_factory.begin() as session:
        project = make_project(session)
        channels = [make_channel(session, project=project, url=fake.url(p), name=p, kind=kind)
                    for p in paths]
        for i in range(alerts):
            make_alert(session, project=project, channels=channels, key=f"k{i}", now=clock())
            clock.advance(seconds=1)


def _titles(fake: FakeSlack, path: str) -> list[str]:
    return [p.body["blocks"][0]["text"]["text"] for p in fake.accepted(path)]


def test_every_alert_reaches_every_channel_once_in_order(
    session_factory: sessionmaker[Session], fake_slack: FakeSlack
) -> None:
    clock = FakeClock()
    _arrange(session_factory, fake_slack, clock, alerts=3, paths=(SLACK_PATH, OTHER_PATH))

    report = deliver_pending(session_factory, clock=clock)
    deliver_pending(session_factory, clock=clock)  # nothing left: a second run sends nothing

    assert report.delivered == 6
    for path in (SLACK_PATH, OTHER_PATH):
        assert _titles(fake_slack, path) == ["alert k0", "alert k1", "alert k2"]
    assert len(fake_slack.posts) == 6


def test_429_waits_for_retry_after_then_delivers_in_order(
    session_factory: sessionmaker[Session], fake_slack: FakeSlack
) -> None:
    clock = FakeClock()
    _arrange(session_factory, fake_slack, clock, alerts=2)
    fake_slack.answer(SLACK_PATH, 429, "rate_limited", headers={"Retry-After": "30"})

    deliver_pending(session_factory, clock=clock)
    assert fake_slack.accepted() == [] and len(fake_slack.posts) == 1

    clock.advance(seconds=20)  # still inside Retry-After: no attempt at all
    deliver_pending(session_factory, clock=clock)
    assert len(fake_slack.posts) == 1

    clock.advance(seconds=11)
    deliver_pending(session_factory, clock=clock)
    assert _titles(fake_slack, SLACK_PATH) == ["alert k0", "alert k1"]


def test_500s_back_off_then_succeed_once(
    session_factory: sessionmaker[Session], fake_slack: FakeSlack, db: Session
) -> None:
    clock = FakeClock()
    _arrange(session_factory, fake_slack, clock)
    fake_slack.answer(SLACK_PATH, 500, "server_error", times=3)

    for _ in range(12):
        deliver_pending(session_factory, clock=clock)
        clock.advance(minutes=1)

    assert _titles(fake_slack, SLACK_PATH) == ["alert k0"]
    delivery = db.scalars(select(Delivery)).one()
    assert delivery.attempts == 4 and delivery.delivered_at is not None


def _killing(at: str, fake: FakeSlack) -> Callable[[str, str, OutgoingMessage], SendResult]:
    def send(kind: str, url: str, message: OutgoingMessage) -> SendResult:
        if at == "before_post":
            raise WorkerKilled
        result = senders.send(kind, url, message)
        if at == "after_post":
            raise WorkerKilled
        return result

    return send


def _run_killed(session_factory: sessionmaker[Session], clock: FakeClock, at: str,
                fake: FakeSlack) -> None:
    try:
        deliver_pending(session_factory, clock=clock, send=_killing(at, fake))
    except WorkerKilled:
        pass
    else:
        raise AssertionError("the worker should have died")


def test_worker_killed_after_claim_before_post_delivers_once(
    session_factory: sessionmaker[Session], fake_slack: FakeSlack
) -> None:
    clock = FakeClock()
    _arrange(session_factory, fake_slack, clock, alerts=2)

    _run_killed(session_factory, clock, "before_post", fake_slack)
    assert fake_slack.posts == []
    deliver_pending(session_factory, clock=clock)

    assert _titles(fake_slack, SLACK_PATH) == ["alert k0", "alert k1"]


def test_worker_killed_between_post_and_commit_resends_marked_as_the_same_alert(
    session_factory: sessionmaker[Session], fake_slack: FakeSlack, db: Session
) -> None:
    # The documented choice: an in-doubt post is sent again (never lost), saying it is a
    # re-send of the same ref, so the person sees one alert.
    clock = FakeClock()
    _arrange(session_factory, fake_slack, clock, alerts=2)

    _run_killed(session_factory, clock, "after_post", fake_slack)
    deliver_pending(session_factory, clock=clock)

    posts = fake_slack.accepted(SLACK_PATH)
    assert [p.body["blocks"][0]["text"]["text"] for p in posts] == [
        "alert k0", "alert k0", "alert k1"]
    assert posts[0].ref == posts[1].ref
    assert "Re-sent after an interrupted attempt" in posts[1].all_text
    assert "Re-sent" not in posts[2].all_text
    assert [d.resends for d in db.scalars(select(Delivery).order_by(Delivery.id))] == [1, 0]


def test_webhook_in_doubt_resend_carries_the_same_idempotency_key(
    session_factory: sessionmaker[Session], fake_slack: FakeSlack
) -> None:
    clock = FakeClock()
    _arrange(session_factory, fake_slack, clock, alerts=1, paths=("/hook",), kind="webhook")

    _run_killed(session_factory, clock, "after_post", fake_slack)
    deliver_pending(session_factory, clock=clock)

    keys = [p.headers["idempotency-key"] for p in fake_slack.accepted("/hook")]
    assert len(keys) == 2 and len(set(keys)) == 1  # a receiver honouring it sees one
    assert fake_slack.accepted("/hook")[0].body["alert"]["title"] == "alert k0"


def test_worker_killed_after_the_outcome_commit_loses_and_repeats_nothing(
    session_factory: sessionmaker[Session], fake_slack: FakeSlack
) -> None:
    clock = FakeClock()
    _arrange(session_factory, fake_slack, clock, alerts=3)
    sent = 0

    def die_on_second(kind: str, url: str, message: OutgoingMessage) -> SendResult:
        nonlocal sent
        sent += 1
        if sent == 2:  # the first delivery's outcome is committed by now
            raise WorkerKilled
        return senders.send(kind, url, message)

    with contextlib.suppress(WorkerKilled):
        deliver_pending(session_factory, clock=clock, send=die_on_second)
    deliver_pending(session_factory, clock=clock)

    assert _titles(fake_slack, SLACK_PATH) == ["alert k0", "alert k1", "alert k2"]


def test_two_workers_deliver_each_alert_once_per_channel_in_order(
    session_factory: sessionmaker[Session], fake_slack: FakeSlack
) -> None:
    clock = FakeClock()
    paths = (SLACK_PATH, OTHER_PATH, "/services/T1/B3/cccccccccccccccccccccccc")
    _arrange(session_factory, fake_slack, clock, alerts=8, paths=paths)
    fake_slack.delay_s = 0.01  # posts overlap between the workers
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(3):
                deliver_pending(session_factory, clock=clock)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    for path in paths:
        assert _titles(fake_slack, path) == [f"alert k{i}" for i in range(8)]
    assert len(fake_slack.posts) == 24


def test_permanent_error_marks_the_channel_broken_and_holds_its_messages(
    session_factory: sessionmaker[Session], fake_slack: FakeSlack, db: Session
) -> None:
    clock = FakeClock()
    _arrange(session_factory, fake_slack, clock, alerts=2, paths=(SLACK_PATH, OTHER_PATH))
    fake_slack.answer(SLACK_PATH, 403, "invalid_token")

    report = deliver_pending(session_factory, clock=clock)
    clock.advance(hours=1)
    deliver_pending(session_factory, clock=clock)

    assert report.broken_channels == [db.scalar(select(Channel.id).where(
        Channel.name == SLACK_PATH))]
    broken = db.scalars(select(Channel).where(Channel.broken_at.is_not(None))).one()
    assert broken.broken_reason == "invalid_token"
    assert len(fake_slack.posts_to(SLACK_PATH)) == 1  # no hammering a dead webhook
    assert _titles(fake_slack, OTHER_PATH) == ["alert k0", "alert k1"]
