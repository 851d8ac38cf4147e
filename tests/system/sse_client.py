"""A change stream over a real socket: the request, the response head, then one block at a
time, each with a deadline. Standard library only; the parsing is tests/sse.py's."""

from __future__ import annotations

import socket
import time

from sse import parse_block


class StreamClient:
    """GET a stream path on 127.0.0.1:`port` and read its blocks (chunked transfer decoded)."""

    def __init__(self, port: int, path: str, headers: dict[str, str] | None = None) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buffer = b""
        self.text = ""
        self.ended = False
        head = self._until(b"\r\n\r\n", deadline=time.monotonic() + 10)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines)
        }
        self.chunked = self.headers.get("transfer-encoding") == "chunked"

    def _recv(self, deadline: float) -> bool:
        self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        if not data:
            self.ended = True
            return False
        self.buffer += data
        return True

    def _until(self, marker: bytes, deadline: float) -> bytes:
        while marker not in self.buffer:
            if not self._recv(deadline):
                raise TimeoutError(f"no {marker!r} in time; have {self.buffer[:200]!r}")
        found, _, self.buffer = self.buffer.partition(marker)
        return found

    def _chunk(self, deadline: float) -> str | None:
        """The next chunk of the body; None at its end (the zero-length chunk)."""
        if not self.chunked:
            self._recv(deadline)
            data, self.buffer = self.buffer, b""
            return data.decode()
        size = int(self._until(b"\r\n", deadline).split(b";")[0], 16)
        if size == 0:
            return None
        while len(self.buffer) < size + 2:
            if not self._recv(deadline):
                raise TimeoutError("a chunk did not arrive in time")
        data, self.buffer = self.buffer[:size], self.buffer[size + 2 :]
        return data.decode()

    def block(self, timeout: float) -> dict | None:
        """The next block within `timeout` seconds; None once the stream has ended cleanly."""
        deadline = time.monotonic() + timeout
        while "\n\n" not in self.text:
            chunk = self._chunk(deadline)
            if chunk is None:
                return None
            self.text += chunk
        block, _, self.text = self.text.partition("\n\n")
        return parse_block(block)

    def event(self, timeout: float) -> dict:
        """The next event (comments and retry skipped) within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            block = self.block(max(deadline - time.monotonic(), 0.01))
            assert block is not None, "the stream ended"
            if "event" in block:
                return block

    def close(self) -> None:
        self.sock.close()
