"""Serve this folder for development, as a single-page app: paths that are no file (the mail
links /reset-password and /verify-email) get index.html, as `try_files $uri /index.html`
would in nginx.

    python3 serve.py [PORT]   (default 5500, on 127.0.0.1)
"""

import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
APP_ROUTES = ("/reset-password", "/verify-email")


class SinglePageApp(SimpleHTTPRequestHandler):
    """Static files, with the app's own routes answered by index.html."""

    def send_head(self):
        if self.path.split("?", 1)[0] in APP_ROUTES:
            self.path = "/index.html"
        return super().send_head()

    def log_message(self, format, *args):
        pass


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5500
    server = ThreadingHTTPServer(("127.0.0.1", port), partial(SinglePageApp, directory=HERE))
    print(f"Coffer notes on http://127.0.0.1:{port}/")
    server.serve_forever()


if __name__ == "__main__":
    main()
