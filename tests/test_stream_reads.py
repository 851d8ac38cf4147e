"""How a process's streams read the change log (api/feed/streams.py): a change that wakes many
streams at once reaches every one of them, read by at most LOG_READERS at a time, so that the
streams never take the whole connection pool from requests."""

import threading
import time

import sqlalchemy as sa
from helpers import create, watch
from sqlalchemy import event

from api.feed.hub import LOG_READERS

STREAMS = 8
READ_SECONDS = 0.05  # each stream's read of the log is made this slow, so that they overlap


class HeldConnections:
    """How many pool connections the streams' threads hold at once, at most; each read that
    they run on one is slowed by READ_SECONDS."""

    def __init__(self, engine, threads: set[int]) -> None:
        self.engine, self.threads = engine, threads
        self.lock = threading.Lock()
        self.held = self.most = 0

    def __enter__(self):
        event.listen(self.engine, "checkout", self._checkout)
        event.listen(self.engine, "checkin", self._checkin)
        event.listen(self.engine, "after_cursor_execute", self._slow)
        return self

    def __exit__(self, *_exc) -> None:
        event.remove(self.engine, "checkout", self._checkout)
        event.remove(self.engine, "checkin", self._checkin)
        event.remove(self.engine, "after_cursor_execute", self._slow)

    def _ours(self) -> bool:
        return threading.get_ident() in self.threads

    def _checkout(self, *_args) -> None:
        if self._ours():
            with self.lock:
                self.held += 1
                self.most = max(self.most, self.held)

    def _checkin(self, *_args) -> None:
        if self._ours():
            with self.lock:
                self.held -= 1

    def _slow(self, *_args) -> None:
        if self._ours():
            time.sleep(READ_SECONDS)


class FailedReads:
    """The first `count` statements that the streams' threads run fail, as when the database
    refuses them."""

    def __init__(self, engine, threads: set[int], count: int) -> None:
        self.engine, self.threads, self.left = engine, threads, count
        self.lock = threading.Lock()

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._fail)
        return self

    def __exit__(self, *_exc) -> None:
        event.remove(self.engine, "before_cursor_execute", self._fail)

    def _fail(self, _conn, _cursor, statement, *_args) -> None:
        if threading.get_ident() not in self.threads:
            return
        with self.lock:
            if self.left == 0:
                return
            self.left -= 1
        raise sa.exc.OperationalError(statement, {}, Exception("the database refused it"))


def woken_together(app, client, user, count: int, watching) -> tuple[list, dict]:
    """`count` streams, each waiting for an event in a thread of its own, while `watching`
    (a context manager made from the feed's engine and those threads) is in place, and one
    record created: what each stream received, and the record."""
    streams = [watch(client, user, "notes") for _ in range(count)]
    received: list[dict | None] = [None] * count
    ready = threading.Barrier(count + 1)

    def wait_for_event(index: int) -> None:
        ready.wait()
        received[index] = streams[index].event()

    threads = [threading.Thread(target=wait_for_event, args=(i,)) for i in range(count)]
    with app.app_context():
        engine = app.extensions["coffer_feed"].hub().engine
    try:
        for thread in threads:
            thread.start()
        with watching(engine, {thread.ident for thread in threads}):
            ready.wait()
            time.sleep(0.2)  # every stream waits for a change
            record = create(client, user, {"n": 1}, "notes")
            for thread in threads:
                thread.join(10)
    finally:
        for stream in streams:
            stream.close()
    assert not any(thread.is_alive() for thread in threads), "a stream got no event"
    return received, record


def test_a_change_that_wakes_many_streams_reaches_all_read_a_few_at_a_time(app, client, user):
    held = None

    def watching(engine, threads):
        nonlocal held
        held = HeldConnections(engine, threads)
        return held

    received, record = woken_together(app, client, user, STREAMS, watching)
    assert [got["event"] for got in received] == ["created"] * STREAMS
    assert {got["data"]["record"]["id"] for got in received} == {record["id"]}
    assert held.most == LOG_READERS  # they did overlap, but no more than that


def test_streams_whose_reads_failed_read_again_and_give_their_place_back(app, client, user):
    """More streams than LOG_READERS all fail their first read: each gives its place back,
    retries a second later from its position, and gets the change; none waits forever."""
    count = LOG_READERS + 2
    failed = []

    def watching(engine, threads):
        failed.append(FailedReads(engine, threads, count))
        return failed[0]

    received, record = woken_together(app, client, user, count, watching)
    assert failed[0].left == 0  # every stream's first read failed
    assert [got["event"] for got in received] == ["created"] * count
    assert {got["data"]["record"]["id"] for got in received} == {record["id"]}
