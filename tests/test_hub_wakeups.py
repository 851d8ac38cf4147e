"""When a commit wakes its process's hub (api/feed/hub.py): only when the hub has something
to do — publish a wake-up to the other processes, or catch this process's streams up."""

import threading
import time

import pytest
from helpers import create, watch

from api import feed
from api.feed.fanout import LOCAL, POSTGRES, REDIS, Fanout
from api.feed.hub import Hub


@pytest.fixture
def hub(app):
    """A hub whose thread never runs, so that nothing but `wake` touches its wake-up."""
    with app.app_context():
        made = Hub(feed.current(), engine=None)
    yield made


def given(hub: Hub, kind: str) -> Hub:
    hub.fanout = Fanout(kind, "coffer_test", None, None)
    return hub


def test_a_commit_on_sqlite_without_redis_and_without_streams_wakes_nobody(hub):
    given(hub, LOCAL).wake(publish=True)
    assert not hub._woken.is_set() and not hub._publish


def test_a_commit_wakes_the_hub_of_a_process_with_a_stream(hub):
    given(hub, LOCAL).streams.add(object())
    hub.wake(publish=True)
    assert hub._woken.is_set() and not hub._publish  # nobody to publish to: they poll


@pytest.mark.parametrize("kind", [REDIS, POSTGRES])
def test_a_commit_wakes_the_hub_to_publish_to_the_other_processes(hub, kind):
    given(hub, kind).wake(publish=True)
    assert hub._woken.is_set() and hub._publish


def test_the_hubs_own_wake_ups_without_publishing_need_streams(hub):
    given(hub, REDIS).wake()  # a wake-up from another process: nothing here to catch up
    assert not hub._woken.is_set()
    hub.streams.add(object())
    hub.wake()
    assert hub._woken.is_set() and not hub._publish


class CountedWakeUps(threading.Event):
    """A hub's wake-up that counts how often it was set."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def set(self) -> None:
        self.count += 1
        super().set()


def test_a_change_that_woke_nobody_reaches_a_stream_opened_after_it_by_the_hubs_poll(
    app, client, user
):
    """On SQLite without Redis, a commit in a process with no open stream wakes nobody. A
    client that reconnects right after, from before that change, still gets it: its hub reads
    the log every LOCAL_POLL_SECONDS once it has a stream, without any further commit or
    wake-up (well within a keep-alive interval of 5 s)."""
    coffer_feed = app.extensions["coffer_feed"]
    if coffer_feed.fanout != LOCAL:
        pytest.skip("only SQLite without Redis leaves a commit's wake-up to the hubs' polls")
    with app.app_context():
        hub = coffer_feed.hub()
    first = watch(client, user, "notes")
    create(client, user, {"n": 0}, "notes")
    last = first.event()["id"]
    first.close()
    assert not hub.streams and hub.head == int(last)

    hub._woken = wake_ups = CountedWakeUps()
    missed = create(client, user, {"n": 1}, "notes")
    assert wake_ups.count == 0 and hub.head == int(last)

    coffer_feed.heartbeat = 5.0
    resumed = watch(client, user, "notes", headers={"Last-Event-ID": last})
    try:
        start = time.monotonic()
        event = resumed.event()
        elapsed = time.monotonic() - start
        woken = wake_ups.count
    finally:
        resumed.close()
        coffer_feed.stop()
    assert event["event"] == "created" and event["data"]["record"]["id"] == missed["id"]
    assert int(event["id"]) > int(last) and elapsed < 5.0
    assert woken == 0
