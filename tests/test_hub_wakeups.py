"""When a commit wakes its process's hub (api/feed/hub.py): only when the hub has something
to do — publish a wake-up to the other processes, or catch this process's streams up."""

import pytest

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
