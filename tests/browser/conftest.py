"""Fixtures for the browser test: the built book on a local HTTP server, and Chromium.

The book must be built first (``make test`` builds it before running these tests). The
browser is Debian's Chromium at /usr/bin/chromium, driven by Playwright; Playwright never
downloads a browser of its own here.
"""

from __future__ import annotations

import functools
import http.server
import pathlib
import re
import shutil
import threading

import pytest
from playwright.sync_api import sync_playwright

BUILD = pathlib.Path(__file__).resolve().parents[2] / "_build" / "html"

HTML = sorted(
    p.relative_to(BUILD).as_posix()
    for p in BUILD.rglob("*.html")
    if "_static" not in p.parts  # theme fragments, not pages
)
REDIRECT = re.compile(r'http-equiv="Refresh" content="0; url=([^"]+)"')
REDIRECTS = [p for p in HTML if REDIRECT.search((BUILD / p).read_text())]
PAGES = [p for p in HTML if p not in REDIRECTS]
CHAPTERS = {nb.stem for nb in (BUILD.parents[1] / "book").glob("*.ipynb")}
SLIDER_PAGES = [p for p in PAGES if 'type="range"' in (BUILD / p).read_text()]


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


#: Window sizes a reader uses: a laptop, a tablet, a phone (CSS pixels).
DESKTOP, TABLET, PHONE = (1280, 900), (800, 1000), (390, 844)


def open_page(browser, base_url: str, path: str, size=DESKTOP, scale: int = 1):
    """Load a page in a window of ``size``; collect console errors and off-server requests.

    Returns the page and a list of problems that the caller asserts empty at the end.
    """
    width, height = size
    page = browser.new_page(
        viewport={"width": width, "height": height}, device_scale_factor=scale
    )
    problems: list[str] = []

    def route(r):
        if r.request.url.startswith(base_url) or r.request.url.startswith("data:"):
            r.continue_()
        else:
            problems.append(f"request off the book's server: {r.request.url}")
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "response",
        lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"),
    )
    page.goto(base_url + path, wait_until="load")
    return page, problems


def typeset(page) -> None:
    """Wait until MathJax has typeset the page (a no-op on pages without math)."""
    page.evaluate("async () => { if (window.MathJax) await MathJax.startup.promise }")
