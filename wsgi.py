"""The WSGI entry point for gunicorn and the flask CLI: the app of the environment's settings,
its instance folder included (COFFER_INSTANCE_PATH, else `instance/` beside `api/`)."""

from coffer import create_app

app = create_app()
