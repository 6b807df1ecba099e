"""Fixtures for the browser test: the built book on a local HTTP server, and Chromium.

The book must be built first (``make test`` builds it before running these tests). The
browser is Debian's Chromium at /usr/bin/chromium, driven by Playwright; Playwright never
downloads a browser of its own here.
"""

from __future__ import annotations

import functools
import http.server
import pathlib
import shutil
import threading

import pytest
from playwright.sync_api import sync_playwright

BUILD = pathlib.Path(__file__).resolve().parents[2] / "_build" / "html"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output readable
        pass


@pytest.fixture(scope="session")
def base_url():
    """Serve _build/html on a free localhost port for the whole session."""
    if not (BUILD / "index.html").exists():
        pytest.fail(f"no built book at {BUILD}: run `make book` first")
    handler = functools.partial(_QuietHandler, directory=str(BUILD))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="session")
def browser():
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable)
        yield chromium
        chromium.close()
