"""The README's curl walkthrough, run as written against a live server."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def walkthrough() -> str:
    text = README.read_text()
    section = text[text.index("A walkthrough with `curl`") :]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")
def test_the_readme_walkthrough_works_as_written(app, serve):
    live_api = serve(app)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", walkthrough()],
        env={"API": live_api, "PATH": "/usr/local/bin:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '"email":"ada@example.com"' in out
    assert out.count('"collection":"notes"') >= 3
    filtered, _ = json.JSONDecoder().raw_decode(out[out.index('{"items"') :])
    assert [note["data"]["title"] for note in filtered["items"]] == ["Ship it"]
    assert '"done":true' in out
    assert out.rstrip().endswith("401"), "the logged-out token must be refused"
