"""Rate limits: sliding-window counters kept by the `limits` library, in Redis when REDIS_URL
is set (shared by every worker and host), else in a file shared by every worker of the
instance (api/counters.py).

- Registration, log-in and refresh: COFFER_RATE_LIMIT_AUTH per client IP, each route on its
  own counter (api/http/limits.py `auth_limit`). Log-in also per account, and every
  password confirmation counts on that same per-account counter.
- Every authenticated route: one COFFER_RATE_LIMIT_API counter per user, counted once the
  request's session is known to be live (a revoked token never spends it). Reads of public
  collections without a token: the same limit per client IP.
- Mail to an address (verification, password reset, e-mail change): COFFER_RATE_LIMIT_MAIL per
  target address, one counter that every mail-sending route shares. Those routes also count
  under COFFER_RATE_LIMIT_AUTH per client IP, on one shared counter, and the two that confirm
  a mailed link or code each on its own.

A spent limit raises RateLimited (429 with Retry-After); the HTTP layer shows the tightest
window of a request in X-RateLimit-Limit, -Remaining and -Reset.

A storage that fails is passed over for a growing back-off (1 s, doubling up to 32 s) in
favour of the next one: Redis, then the instance's file, then,
should the file fail too (a read-only or full disk), the worker's memory. A request never
fails because of its counters.

The limits are parsed once per app. Calling `limits` directly costs a fraction of what a
per-request extension hook did (bench/README.md).
"""

import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from flask import Flask, current_app
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, RedisStorage, Storage, storage_from_string
from limits.storage.base import SlidingWindowCounterSupport
from sqlalchemy.engine import make_url

from api.counters import FileStorage, counters_path
from api.database import database_url
from api.errors import RateLimited

# The counter of log-ins: per client IP, and per account, which password and second-factor
# confirmations share.
LOG_IN = "log-in"
MAX_BACKOFF = 32  # seconds between attempts to use a failed storage
SWEEP_INTERVAL = 5.0  # seconds between sweeps of expired in-memory counters
_log = logging.getLogger(__name__)

# limits' acquire_sliding_window.lua and sliding_window.lua as one script: the hit and the
# window it leaves, read in the same atomic step, so that two concurrent hits never report
# each other's Remaining. Same keys and arithmetic: times in milliseconds; a current counter
# with less than one window to live becomes the previous one; a hit is allowed while
# floor(previous × its remaining share of the window) + current + amount <= limit.
REDIS_COUNT = """
local limit = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2]) * 1000
local amount = tonumber(ARGV[3])
local allowed = 0
local current_ttl = tonumber(redis.call('pttl', KEYS[2]))
if current_ttl > 0 and current_ttl < expiry then
    redis.call('rename', KEYS[2], KEYS[1])
    redis.call('set', KEYS[2], 0, 'PX', current_ttl + expiry)
end
if amount <= limit then
    local previous_count = tonumber(redis.call('get', KEYS[1])) or 0
    local previous_ttl = math.max(tonumber(redis.call('pttl', KEYS[1])) or 0, 0)
    local current_count = tonumber(redis.call('get', KEYS[2])) or 0
    local weighted = math.floor(previous_count * previous_ttl / expiry) + current_count
    if weighted + amount <= limit then
        allowed = 1
        if redis.call('exists', KEYS[2]) == 1 then
            redis.call('incrby', KEYS[2], amount)
        else
            redis.call('set', KEYS[2], amount, 'PX', expiry * 2)
        end
    end
end
return {allowed, redis.call('get', KEYS[1]), redis.call('pttl', KEYS[1]),
        redis.call('get', KEYS[2]), redis.call('pttl', KEYS[2])}
"""


class _SweptMemoryStorage(MemoryStorage):
    """limits' in-memory storage, with expired counters swept inline every SWEEP_INTERVAL.

    The stock storage starts a new timer thread 10 ms after any count whenever none is
    running: under steady traffic, about a hundred thread starts a second per worker, each
    one stalling the request that started it. Reads already drop expired counters; the sweep
    only bounds the memory of counters that are never read again. (Overrides the storage's
    private scheduling hook: limits is pinned to 5.x, and tests/test_rate_limits.py checks
    that no thread is started.)
    """

    def __init__(self) -> None:
        super().__init__()
        self._next_sweep = time.monotonic() + SWEEP_INTERVAL

    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_INTERVAL
            self._MemoryStorage__expire_events()


@dataclass(frozen=True, slots=True)
class Window:
    """Where one counter stands after a request was counted."""

    limit: RateLimitItem
    allowed: bool
    remaining: int
    reset: float  # Unix time at which the window has room again


class _Counted:
    """Tells its receivers each window a request was counted in: what blinker's signal did
    here, minus senders and weak references, at a tenth of its cost per count."""

    def __init__(self) -> None:
        self.receivers: list[Callable[[Window], None]] = []

    def connect(self, receiver: Callable[[Window], None]) -> None:
        if receiver not in self.receivers:  # once, however many apps connect it
            self.receivers.append(receiver)

    def send(self, window: Window) -> None:
        for receiver in self.receivers:
            receiver(window)


counted = _Counted()


class Tier:
    """One storage of the fallback chain, and when to try it again after it failed."""

    def __init__(self, name: str, storage: Storage) -> None:
        self.name = name
        if not isinstance(storage, SlidingWindowCounterSupport):
            raise TypeError(f"{type(storage).__name__} does not keep sliding-window counters")
        self.storage = storage
        self.down_until = 0.0  # time.monotonic() before which it is passed over
        self.backoff = 1

    def count(self, limit: RateLimitItem, identifiers: tuple[str, ...]) -> Window:
        """The hit and the window stats of limits' SlidingWindowCounterRateLimiter (`hit`, then
        `get_window_stats`), with its arithmetic, in one atomic step in the file or in Redis
        (in memory, the worker's lock-free dictionary: two calls)."""
        key, storage, expiry = limit.key_for(*identifiers), self.storage, limit.get_expiry()
        if isinstance(storage, FileStorage):
            allowed, window = storage.count(key, limit.amount, expiry)
        elif isinstance(storage, RedisStorage):
            allowed, window = _redis_count(storage, key, limit.amount, expiry)
        else:
            allowed = storage.acquire_sliding_window_entry(key, limit.amount, expiry, 1)
            window = storage.get_sliding_window(key, expiry)
        self.backoff = 1
        return Window(limit, allowed, *_stats(limit.amount, expiry, *window))

    def failed(self, error: Exception) -> None:
        _log.warning(
            "rate-limit storage %s failed (%r); the next one counts for %s s",
            self.name,
            error,
            self.backoff,
        )
        self.down_until = time.monotonic() + self.backoff
        self.backoff = min(self.backoff * 2, MAX_BACKOFF)


class Counters:
    """One app's limits and its storages, the first that works counting each request."""

    def __init__(self, app: Flask) -> None:
        self.prefix = app.config.get("COFFER_RATE_LIMIT_PREFIX", "coffer")
        self.auth = parse(app.config["COFFER_RATE_LIMIT_AUTH"])
        self.api = parse(app.config["COFFER_RATE_LIMIT_API"])
        self.mail = parse(app.config["COFFER_RATE_LIMIT_MAIL"])
        self.tiers = [
            Tier("the instance's file", FileStorage(functools.partial(_counters_path, app))),
            Tier("this process's memory", _SweptMemoryStorage()),
        ]
        if url := app.config.get("REDIS_URL"):
            storage = storage_from_string(url, socket_connect_timeout=1, socket_timeout=1)
            self.tiers.insert(0, Tier("Redis", storage))

    def hit(self, limit: RateLimitItem, scope: str, key: str) -> Window:
        """Count one request against `scope`/`key` in the first storage that is not down."""
        identifiers = (self.prefix, scope, key)
        now = time.monotonic()
        *fallible, last_resort = self.tiers
        for tier in fallible:
            if now >= tier.down_until:
                try:
                    return tier.count(limit, identifiers)
                except Exception as error:  # the request must not fail because of a storage
                    tier.failed(error)
        return last_resort.count(limit, identifiers)


def _redis_count(
    storage: RedisStorage, key: str, limit: int, expiry: int
) -> tuple[bool, tuple[int, float, int, float]]:
    """acquire_sliding_window_entry, then get_sliding_window, as one script run in Redis: its
    keys are those of limits' RedisStorage, so both read and write the same counters."""
    script = getattr(storage, "coffer_count", None)
    if script is None:
        script = storage.coffer_count = storage.get_connection().register_script(REDIS_COUNT)
    previous_key = storage.prefixed_key(storage._previous_window_key(key))
    current_key = storage.prefixed_key(storage._current_window_key(key))
    allowed, previous, previous_ttl, current, current_ttl = script(
        [previous_key, current_key], [limit, expiry, 1]
    )
    window = (
        int(previous or 0),
        max(0, float(previous_ttl or 0)) / 1000,
        int(current or 0),
        max(0, float(current_ttl or 0)) / 1000,
    )
    return bool(allowed), window


def _stats(
    amount: int, expiry: int, previous: int, previous_ttl: float, current: int, current_ttl: float
) -> tuple[int, float]:
    """Remaining hits and reset time of a window: SlidingWindowCounterRateLimiter's
    get_window_stats, from the counts that get_sliding_window returns."""
    remaining = max(0, amount - math.floor(previous * previous_ttl / expiry + current))
    now = time.time()
    if not (previous or current):
        return remaining, now
    previous_reset_in = previous_ttl % (expiry / previous) if previous else math.inf
    current_reset_in = current_ttl % expiry if current else math.inf
    return remaining, now + min(previous_reset_in, current_reset_in)


def _counters_path(app: Flask) -> str:
    """Where the instance's file is: asked at the first count, since tests move the instance
    folder after create_app(), and a process that counts nothing (the CLI) never opens it."""
    database = make_url(database_url(app)).render_as_string(hide_password=True)
    return counters_path(app.instance_path, database)


def counters() -> Counters:
    return current_app.extensions["coffer_rate_limits"]


def enforce(which: str, scope: str, key: str) -> Window:
    """Count one request against `scope`/`key` under the app's limit `which` ("api", "auth"
    or "mail"); RateLimited when the limit is spent.

    `counted` tells its receivers (the HTTP layer, for the X-RateLimit headers) each window.
    """
    found = counters()
    limit = getattr(found, which)
    window = found.hit(limit, scope, key)
    counted.send(window)
    if not window.allowed:
        retry_after = max(1, math.ceil(window.reset - time.time()))
        raise RateLimited(
            f"Too many requests: the limit is {limit}. Retry in {retry_after} s.",
            retry_after=retry_after,
        )
    return window


def enforce_api_limit(user_id: str) -> None:
    """The per-user limit shared by every authenticated route."""
    enforce("api", "api", user_id)


def enforce_anonymous_api_limit(client: str) -> None:
    """COFFER_RATE_LIMIT_API per client IP, for the reads that need no token (public data)."""
    enforce("api", "api-anonymous", client)


def enforce_auth_limit(scope: str, client: str) -> None:
    """COFFER_RATE_LIMIT_AUTH per client IP, on the counter of one route (`scope`)."""
    enforce("auth", scope, client)


def enforce_account_limit(scope: str, email: str) -> None:
    """COFFER_RATE_LIMIT_AUTH per account (its normalised email) on `scope`'s counter."""
    enforce("auth", f"{scope}-account", email)


def enforce_mail_limit(address: str) -> None:
    """COFFER_RATE_LIMIT_MAIL per target address (normalised), whichever route mails it."""
    enforce("mail", "mail-address", address)


def init_app(app: Flask) -> None:
    app.extensions["coffer_rate_limits"] = Counters(app)
