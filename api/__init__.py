"""Coffer's core: services, models, the list language, tokens, passwords and the database.

It knows no HTTP request, Resource or schema (only `api.http` does); `coffer` builds the app.
"""
