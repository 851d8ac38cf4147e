"""Reading a change stream in tests: the blocks of a text/event-stream body, parsed as an
EventSource parses them (WHATWG HTML §9.2.6)."""

import time

import orjson


def parse_block(text: str) -> dict:
    """One block's fields: id, event, data (JSON, parsed), retry, and its comments."""
    block: dict = {"comments": []}
    for line in text.split("\n"):
        if not line:
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "":
            block["comments"].append(value)
        elif name == "data":
            block["data"] = orjson.loads(value)
        else:
            block[name] = value
    return block


class Stream:
    """A streamed response of the test client (`buffered=False`), read block by block."""

    def __init__(self, response) -> None:
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.mimetype == "text/event-stream"
        self.response = response
        self.chunks = iter(response.response)
        self.first = self.block()
        assert self.first.get("retry") == "2000"

    def block(self) -> dict:
        chunk = next(self.chunks)
        text = chunk.decode() if isinstance(chunk, bytes) else chunk
        assert text.endswith("\n\n"), text
        return parse_block(text)

    def event(self) -> dict:
        """The next event (comments skipped); fails at a keep-alive: no event came before it
        (15 s, unless the test set the feed's heartbeat)."""
        while True:
            block = self.block()
            if "event" in block:
                return block
            assert block["comments"] != ["keep-alive"], "no event before a keep-alive"

    def events(self, count: int) -> list[dict]:
        return [self.event() for _ in range(count)]

    def end_within(self, seconds: float) -> float:
        """Read until the stream ends; how long that took (fails past `seconds`)."""
        start = time.monotonic()
        for chunk in self.chunks:
            assert time.monotonic() - start < seconds, f"still open after {seconds} s: {chunk!r}"
        elapsed = time.monotonic() - start
        assert elapsed < seconds, f"ended only after {elapsed:.1f} s"
        return elapsed

    def close(self) -> None:
        self.response.close()
