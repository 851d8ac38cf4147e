"""Server-Sent Events (WHATWG HTML §9.2): a stream's events as the lines of a response body."""

from collections.abc import Callable, Iterable, Iterator

import orjson

EVENT_STREAM = "text/event-stream"


def encode(event, dump: Callable) -> bytes:
    """One block: an event's fields, a comment, or both, ended by a blank line. The data,
    `dump(event.data)`, is one line of JSON (orjson never writes a newline inside it)."""
    lines = []
    if event.comment is not None:
        lines.append(f": {event.comment}")
    if event.retry is not None:
        lines.append(f"retry: {event.retry}")
    if event.id is not None:
        lines.append(f"id: {event.id}")
    if event.event is not None:
        lines.append(f"event: {event.event}")
    if event.data is not None:
        lines.append("data: " + orjson.dumps(dump(event.data)).decode())
    return ("\n".join(lines) + "\n\n").encode()


class EventStreamBody:
    """A response body of events, each sent as soon as it is made. Closing the body (the
    server does when the client goes away or the stream ends) closes the events."""

    def __init__(self, events: Iterable, dump: Callable) -> None:
        self.events = events
        self.dump = dump

    def __iter__(self) -> Iterator[bytes]:
        for event in self.events:
            yield encode(event, self.dump)

    def close(self) -> None:
        close = getattr(self.events, "close", None)
        if close is not None:
            close()
