"""How a process's streams read the change log (api/feed/streams.py): a change that wakes many
streams at once reaches every one of them, read by at most LOG_READERS at a time, so that the
streams never take the whole connection pool from requests."""

import threading
import time

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


def test_a_change_that_wakes_many_streams_reaches_all_read_a_few_at_a_time(app, client, user):
    streams = [watch(client, user, "notes") for _ in range(STREAMS)]
    received: list[dict | None] = [None] * STREAMS
    ready = threading.Barrier(STREAMS + 1)

    def wait_for_event(index: int) -> None:
        ready.wait()
        received[index] = streams[index].event()

    threads = [threading.Thread(target=wait_for_event, args=(i,)) for i in range(STREAMS)]
    with app.app_context():
        engine = app.extensions["coffer_feed"].hub().engine
    try:
        for thread in threads:
            thread.start()
        with HeldConnections(engine, {thread.ident for thread in threads}) as held:
            ready.wait()
            time.sleep(0.2)  # every stream waits for a change
            record = create(client, user, {"n": 1}, "notes")
            for thread in threads:
                thread.join(10)
    finally:
        for stream in streams:
            stream.close()
    assert not any(thread.is_alive() for thread in threads)
    assert [got["event"] for got in received] == ["created"] * STREAMS
    assert {got["data"]["record"]["id"] for got in received} == {record["id"]}
    assert held.most == LOG_READERS  # they did overlap, but no more than that
