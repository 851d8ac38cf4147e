"""The WSGI entry point for gunicorn and the flask CLI."""

from api import create_app

app = create_app()
