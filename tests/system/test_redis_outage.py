"""Redis goes away: authentication and data keep working, readiness says so, limits go local."""

import shutil

import pytest
from harness import METRICS, free_port, wait_for
from throwaway import ThrowawayRedis
from traffic import log_in, sign_up

pytestmark = [
    pytest.mark.system,
    pytest.mark.xdist_group("system"),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
]


@pytest.fixture
def redis():
    server = ThrowawayRedis()
    try:
        yield server.start()
    finally:
        server.kill()


def test_redis_outage_keeps_log_in_and_data_working_and_fails_readiness(redis, fleet, shared_env):
    instance = fleet.start(("redis-outage", {**shared_env, "REDIS_URL": redis.url}))
    account = sign_up(instance)
    redis.kill()

    for _round in range(3):  # both workers, each with a pooled connection to the dead Redis
        session = log_in(instance, account.email)
        assert session.status == 201, session.body
        tokens = session.json()
        me = instance.call("GET", "/api/v1/users/me", token=tokens["access_token"])
        assert me.status == 200
        refreshed = instance.call(
            "POST", "/api/v1/sessions/refresh", json_body={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status == 200, refreshed.body
        created = instance.call(
            "POST",
            "/api/v1/data/notes",
            json_body={"data": {"redis": "down"}},
            token=refreshed.json()["access_token"],
        )
        assert created.status == 201

    ready = instance.call("GET", "/readyz")
    assert ready.status == 503
    assert ready.media_type == "application/problem+json"
    assert "redis" in ready.json()["detail"]
    assert int(ready.headers["retry-after"]) > 0
    assert instance.call("GET", "/healthz").status == 200

    redis.start_again()
    assert wait_for(lambda: instance.call("GET", "/readyz").status == 200, timeout=15)
    assert instance.crashes() == []


def test_without_redis_rate_limits_fall_back_to_the_instance_counters(fleet, shared_env):
    # Nothing listens on this port: Redis is configured but down from the start.
    env = {
        **shared_env,
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "COFFER_RATE_LIMIT_AUTH": "3/minute",
    }
    instance = fleet.start(("redis-never", env), ready="/healthz")
    assert instance.call("GET", "/readyz").status == 503
    account = sign_up(instance)  # registration: its own route, its own counter

    # Log-in #1 was sign_up's. The two workers share the instance's counters, so exactly 3 of
    # these 9 attempts succeed, whichever worker takes which.
    statuses = [log_in(instance, account.email).status for _ in range(8)]
    assert statuses == [201] * 2 + [429] * 6, statuses
    METRICS.append(
        "Redis down, 2 workers, limit 3/minute: 3 of 9 log-ins allowed "
        "(the workers share the instance's counters)"
    )
    assert instance.crashes() == []
