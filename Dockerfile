# syntax=docker/dockerfile:1
# Build: dependencies into a virtualenv. Run: a slim image with the source, as a non-root user.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml ./
RUN python -m venv /opt/venv \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
 && /opt/venv/bin/pip install -r requirements.txt

FROM python:3.11-slim
RUN groupadd --system --gid 10001 coffer \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/coffer coffer
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY api api
COPY coffer coffer
COPY resources resources
COPY schemas schemas
COPY migrations migrations
COPY wsgi.py gunicorn.conf.py openapi.yaml ./
RUN mkdir -p /app/instance && chown coffer:coffer /app/instance
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    COFFER_BIND=0.0.0.0:8000
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=3)"]
# Migrations first, then gunicorn replaces the shell so that it receives signals directly.
CMD ["sh", "-c", "flask --app wsgi db upgrade && exec gunicorn --config gunicorn.conf.py wsgi:app"]
