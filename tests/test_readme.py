"""The README's curl walkthroughs, run as written against a live server, twice, checking every
output that the README shows.

A walkthrough is the README's fenced blocks between two HTML comments, invisible on the rendered
page: WALKTHROUGH and END_OF_WALKTHROUGH for the first, RESET_WALKTHROUGH and
END_OF_RESET_WALKTHROUGH for the password reset, which reads the mail's code out of the log of a
real gunicorn in development (`make run 2>&1 | tee coffer.log`). Each `sh` block is a step; they
run in order as one bash script. A `json` block right after a step is what the step prints,
abbreviated: `"…"` stands for any value, `…` inside a string for any text, and a bare `…` in an
object or an array for members or items left out. Without a bare `…`, an object must have
exactly the keys shown and an array exactly the items shown. A step without a `json` block must
print nothing.
"""

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from gunicorn_run import coffer_env, free_port, migrate, start_gunicorn, stop_gunicorn

from api.config import SETTINGS

README = Path(__file__).resolve().parent.parent / "README.md"
WALKTHROUGH = "<!-- walkthrough"
END_OF_WALKTHROUGH = "<!-- end of walkthrough -->"
RESET_WALKTHROUGH = "<!-- reset walkthrough"
END_OF_RESET_WALKTHROUGH = "<!-- end of reset walkthrough -->"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
ELLIPSIS = "…"
MORE = "<more>"  # what a bare … becomes: members or items left out
STEP = "@@ walkthrough step {} @@"
STEP_LINE = re.compile(r"^@@ walkthrough step \d+ @@$", re.M)
WHITESPACE = re.compile(r"\s*")


def walkthrough(
    text: str, begin: str = WALKTHROUGH, end: str = END_OF_WALKTHROUGH
) -> list[tuple[str, str | None]]:
    """The README's steps: (the commands, the output shown after them or None)."""
    section = text[text.index(begin) : text.index(end)]
    steps: list[list] = []
    for language, content in FENCE.findall(section):
        if language == "sh":
            steps.append([content, None])
        elif language == "json" and steps and steps[-1][1] is None:
            steps[-1][1] = content
        else:
            raise AssertionError(
                f"the walkthrough takes sh blocks, each followed by at most one json block, "
                f"not this ```{language} block: {content[:80]!r}"
            )
    return [(command, shown) for command, shown in steps]


def run(steps: list[tuple[str, str | None]], api: str, **env: str) -> list[str]:
    """Run every step in one bash process; what each step printed."""
    script = "".join(f"printf '\\n{STEP.format(n)}\\n'\n{cmd}" for n, (cmd, _) in enumerate(steps))
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        env={"API": api, "PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"the walkthrough failed:\n{result.stderr}\n{result.stdout}"
    return [printed.strip() for printed in STEP_LINE.split(result.stdout)[1:]]


def _bare_ellipses_as_json(shown: str) -> str:
    """The README's abbreviation as JSON: a bare … becomes a member `"<more>": "…"` in an
    object, an item `"<more>"` in an array; a … inside a string stays."""
    out, brackets, in_string, escaped = [], [], False, False
    for char in shown:
        if in_string:
            in_string = escaped or char != '"'
            escaped = not escaped and char == "\\"
        elif char == '"':
            in_string = True
        elif char in "{[":
            brackets.append(char)
        elif char in "}]":
            brackets.pop()
        elif char == ELLIPSIS:
            char = f'"{MORE}": "…"' if brackets[-1:] == ["{"] else f'"{MORE}"'
        out.append(char)
    return "".join(out)


def json_values(text: str) -> list:
    """The JSON values printed one after another (objects, strings, numbers)."""
    decoder, values, position = json.JSONDecoder(), [], 0
    text = text.strip()
    while position < len(text):
        value, position = decoder.raw_decode(text, position)
        values.append(value)
        position = WHITESPACE.match(text, position).end()
    return values


def _first(problems) -> str | None:
    return next(filter(None, problems), None)


def mismatch(shown, actual, where: str = "the output") -> str | None:
    """Where `actual` differs from what the README shows of it, or None."""
    if shown == ELLIPSIS:
        return None
    if isinstance(shown, dict) and isinstance(actual, dict):
        keys = shown.keys() - {MORE}
        if missing := keys - actual.keys():
            return f"{where} has no {sorted(missing)}: {actual}"
        if (extra := actual.keys() - keys) and MORE not in shown:
            return f"{where} also has {sorted(extra)}; show them, or add a bare … for the rest"
        return _first(mismatch(shown[key], actual[key], f"{where}.{key}") for key in keys)
    if isinstance(shown, list) and isinstance(actual, list):
        items = [item for item in shown if item != MORE]
        if len(actual) < len(items) or (len(actual) > len(items) and MORE not in shown):
            return f"{where} has {len(actual)} items, the README shows {len(items)}: {actual}"
        pairs = zip(items, actual[: len(items)], strict=True)
        return _first(mismatch(s, a, f"{where}[{i}]") for i, (s, a) in enumerate(pairs))
    if isinstance(shown, str) and ELLIPSIS in shown:
        pattern = ".*".join(re.escape(part) for part in shown.split(ELLIPSIS))
        equal = isinstance(actual, str) and re.fullmatch(pattern, actual, re.S) is not None
    else:
        equal = type(shown) is type(actual) and shown == actual
    return None if equal else f"{where} is {actual!r}, the README shows {shown!r}"


def step_mismatch(shown: str | None, printed: str) -> str | None:
    """How what a step printed differs from the README's output block, or None."""
    if shown is None:
        return f"it printed {printed!r}, which the README does not show" if printed else None
    expected = json_values(_bare_ellipses_as_json(shown))
    try:
        actual = json_values(printed)
    except json.JSONDecodeError:
        return f"it printed something other than JSON values: {printed!r}"
    if len(actual) != len(expected):
        return f"it printed {len(actual)} JSON values, the README shows {len(expected)}: {printed}"
    pairs = enumerate(zip(expected, actual, strict=True), start=1)
    return _first(mismatch(s, a, f"value {i}") for i, (s, a) in pairs)


needs_curl_and_jq = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("jq")),
    reason="the README walkthrough needs curl and jq on PATH (apt-get install curl jq)",
)


def check_twice(steps: list[tuple[str, str | None]], api: str, **env: str) -> None:
    """Run the steps twice; each time, every step prints what the README shows."""
    for attempt in ("first", "second"):
        printed = run(steps, api, **env)
        assert len(printed) == len(steps)
        for number, ((command, shown), output) in enumerate(zip(steps, printed, strict=True), 1):
            problem = step_mismatch(shown, output)
            assert problem is None, (
                f"{attempt} run, step {number} ({command.splitlines()[0]}): {problem}"
            )


@needs_curl_and_jq
def test_the_walkthrough_runs_twice_and_prints_what_the_readme_shows(make_app, serve):
    # `make run`'s rate limits rather than the suite's generous ones: a second run must fit too.
    limits = ("COFFER_RATE_LIMIT_AUTH", "COFFER_RATE_LIMIT_API")
    api = serve(make_app(**{name: SETTINGS[name][1] for name in limits}))
    steps = walkthrough(README.read_text())
    assert len(steps) >= 8, "the README's walkthrough went missing"
    check_twice(steps, api)


@pytest.fixture
def make_run(tmp_path):
    """What `make run 2>&1 | tee coffer.log` starts: gunicorn with gunicorn.conf.py, in
    development, with every setting at its default (but for cheap hashing and a database of
    the test's own), its output in one file. Yields (its URL, the log's path)."""
    port, log_path = free_port(), tmp_path / "coffer.log"
    env = coffer_env(
        COFFER_ENV="development",
        COFFER_LOG_LEVEL="INFO",
        COFFER_BIND=f"127.0.0.1:{port}",
        DATABASE_URL=f"sqlite:///{tmp_path / 'coffer.db'}",
        WEB_CONCURRENCY="2",
        XDG_RUNTIME_DIR=str(tmp_path),
    )
    migrate(env)
    with open(log_path, "wb") as log:
        server = start_gunicorn(env, log)
    try:
        wait_until_it_answers(port, server, log_path)
        yield f"http://127.0.0.1:{port}", log_path
    finally:
        stop_gunicorn(server)


def wait_until_it_answers(port: int, server: subprocess.Popen, log_path: Path) -> None:
    for _ in range(300):
        assert server.poll() is None, log_path.read_text()
        done = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/healthz"], check=False
        )
        if done.returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"gunicorn never answered:\n{log_path.read_text()}")


@needs_curl_and_jq
def test_the_reset_walkthrough_reads_the_code_from_the_log_twice(make_run):
    api, log_path = make_run
    steps = walkthrough(README.read_text(), RESET_WALKTHROUGH, END_OF_RESET_WALKTHROUGH)
    assert len(steps) >= 5, "the README's password-reset walkthrough went missing"
    check_twice(steps, api, LOG=str(log_path))


@pytest.mark.parametrize(
    ("shown", "printed"),
    [
        ('{"a": 1, …}', '{"a": 1, "b": 2}'),
        ('{"id": "…", "email": "ada-…@example.com"}', '{"id": 7, "email": "ada-1-2@example.com"}'),
        ('{"items": [{…}], "next_cursor": null}', '{"items": [{"x": 1}], "next_cursor": null}'),
        ('{"items": [{…}, …]}', '{"items": [{}, {}, {}]}'),
        ('"….1"\n204', '"0193-ab.1"\n204\n'),
        ('{"detail": "say \\"…\\" twice"}', '{"detail": "say \\"hi\\" twice"}'),
    ],
)
def test_an_abbreviated_output_matches_what_it_abbreviates(shown, printed):
    assert step_mismatch(shown, printed) is None


@pytest.mark.parametrize(
    ("shown", "printed"),
    [
        ('{"a": 1}', '{"a": 1, "b": 2}'),  # keys left out without a bare …
        ('{"a": 1, …}', '{"a": 2, "b": 2}'),
        ('{"a": 1, "c": 3, …}', '{"a": 1, "b": 2}'),
        ('{"items": [{…}]}', '{"items": []}'),
        ('{"items": [{…}]}', '{"items": [{}, {}]}'),
        ("204", '"204"'),
        ("true", "1"),
        ('"ada-…@example.com"', '"bob@example.com"'),
        ('{"a": 1}\n{"b": 2}', '{"a": 1}'),
        (None, "anything"),
        ('{"a": 1}', "Internal Server Error"),
    ],
)
def test_an_abbreviated_output_refuses_what_differs(shown, printed):
    assert step_mismatch(shown, printed) is not None


def test_the_proxy_settings_it_gives_for_streams_are_those_of_deploy_nginx_conf():
    text = README.read_text()
    section = text[text.index("### Behind a proxy") :]
    section = section[: section.index("\n### ")]
    stated = re.findall(r"`((?:proxy_|gzip)[a-z_]* [^`]+)`", section)
    nginx = (README.parent / "deploy" / "nginx.conf").read_text()
    block = nginx[nginx.index("location ~ ^/api/v1/(changes") :]
    block = block[: block.index("}")]
    directives = {" ".join(line.strip().rstrip(";").split()) for line in block.splitlines()}
    assert len(stated) >= 6, stated
    assert [setting for setting in stated if setting not in directives] == []


def test_the_layout_names_every_top_level_folder():
    """A newcomer reads the README's Layout to find their way: a folder it leaves out is one
    they cannot place."""
    section = re.search(r"^## Layout\n\n```\n(.*?)^```", README.read_text(), re.M | re.S)
    assert section, 'the README has no "## Layout" section'
    named = {line.split()[0].rstrip("/") for line in section[1].splitlines() if line[:1].strip()}
    # Made by running (the .gitignore's folders), never committed.
    ignored = {"instance", "__pycache__", "build", "dist", "artifacts", "htmlcov"}
    folders = {
        entry.name
        for entry in README.parent.iterdir()
        if entry.is_dir()
        and not entry.name.startswith(".")
        and entry.name not in ignored
        and not entry.name.endswith(".egg-info")
    }
    assert folders <= named, f"the README's Layout leaves out {sorted(folders - named)}"
