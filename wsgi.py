"""The WSGI entry point for gunicorn and the flask CLI."""

from coffer import create_app

app = create_app()
