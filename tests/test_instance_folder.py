"""The apps the tests build keep their instance folder (secret key, signing keys, rate-limit
counters) where they are told: building one leaves the repository's instance/ alone.

Flask's default instance folder is moved here to a folder that does not exist yet, standing
for the repository's instance/: an app that so much as created it would show.
"""

import flask
import pytest
from helpers import register

from api.extensions import db
from coffer import create_app


@pytest.fixture
def default_instance(tmp_path, monkeypatch):
    """Where an app's instance folder is unless it is told otherwise (`instance/` beside `api/`)."""
    folder = tmp_path / "repository" / "instance"
    monkeypatch.setattr(flask.Flask, "auto_find_instance_path", lambda self: str(folder))
    return folder


def test_create_app_puts_the_instance_folder_where_it_is_told(
    database_url, default_instance, tmp_path
):
    folder = tmp_path / "elsewhere"
    config = {"DATABASE_URL": database_url, "TESTING": True, "COFFER_SECRET_KEY": None}
    app = create_app(config, instance_path=str(folder))
    with app.app_context():
        db.engine.dispose()
    assert not default_instance.exists()
    assert app.instance_path == str(folder)
    assert (folder / "secret_key").is_file()  # a development key, generated on first use


def test_the_test_apps_leave_the_default_instance_folder_alone(
    make_app, default_instance, tmp_path
):
    app = make_app(COFFER_SECRET_KEY=None, REDIS_URL="")  # a key file, and counters in a file
    assert register(app.test_client(), "ada@example.com").status_code == 201
    assert not default_instance.exists()
    assert app.instance_path == str(tmp_path)
    assert (tmp_path / "secret_key").is_file() and (tmp_path / "rate-limits").is_dir()
