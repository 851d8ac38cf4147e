"""Flask commands: `flask --app wsgi create-admin EMAIL`, …"""

from flask import Flask


def init_app(app: Flask) -> None:
    pass
