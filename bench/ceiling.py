"""The ceiling: a bare Flask app whose only route returns {"ok": true}."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def ok():
    return {"ok": True}
