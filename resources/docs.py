"""Interactive API documentation: Swagger UI 5, served from the installed package (no CDN)."""

from flask import current_app, send_from_directory
from flask_restful import Resource
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import NotFound

from api.http.operation import operation, response, undocumented

ASSETS = frozenset(
    {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "favicon-32x32.png",
        "favicon-16x16.png",
    }
)
# Swagger UI sets inline styles; everything else comes from this origin.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Coffer API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/swagger-ui-standalone-preset.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"""
INIT = """window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: false,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout"
});
"""


def _text(body: str, mimetype: str):
    response = current_app.response_class(body, mimetype=mimetype)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


class Docs(Resource):
    tag = "operations"

    @operation("docs")
    @response(None, 200)
    def get(self):
        """Interactive API documentation (HTML)."""
        return _text(PAGE, "text/html")


class DocsInit(Resource):
    @undocumented
    def get(self):
        """The script that points Swagger UI at this API's document."""
        return _text(INIT, "text/javascript")


class DocsAsset(Resource):
    @undocumented
    def get(self, name):
        """One Swagger UI asset, from the installed swagger-ui-bundle package."""
        if name not in ASSETS:
            raise NotFound()
        response = send_from_directory(swagger_ui_path, name, max_age=86400)
        response.headers["Content-Security-Policy"] = CSP
        return response
