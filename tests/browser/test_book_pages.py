"""Open every page of the built book in headless Chromium and check what a reader sees.

On each page: every network request stays on the book's own server (the HTML works
offline), all math is typeset by MathJax without error nodes and every display equation
fits the text column at a 1280 px window, every image has loaded,
every internal link points at a page and anchor that exist, and there is no JavaScript
error. On each page with an explorer, moving each of its sliders shows another
frame.
"""

from __future__ import annotations

import html.parser
import pathlib
import urllib.parse

import pytest
from conftest import (
    BUILD,
    CHAPTERS,
    DESKTOP,
    PAGES,
    PHONE,
    REDIRECT,
    REDIRECTS,
    SLIDER_PAGES,
    open_page,
)


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.ids.update(v for k, v in attrs if k in ("id", "name") and v)


@pytest.fixture(scope="module")
def page_ids():
    """Anchor ids of each built page, parsed once from the files."""
    cache: dict[pathlib.Path, set[str]] = {}

    def ids(path: pathlib.Path) -> set[str]:
        if path not in cache:
            parser = _Ids()
            parser.feed(path.read_text())
            cache[path] = parser.ids
        return cache[path]

    return ids


TYPESET = """async () => {
  if (!window.MathJax) return null;
  await MathJax.startup.promise;
  const math = [...document.querySelectorAll('.math')];
  return {
    total: math.length,
    untypeset: math.filter(m => !m.querySelector('mjx-container')).length,
    errors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
    too_wide: [...document.querySelectorAll('div.math mjx-container')]
      .filter(m => m.scrollWidth > m.clientWidth + 2)
      .map(m => m.closest('div.math').id),
  };
}"""


@pytest.mark.parametrize("path", REDIRECTS)
def test_redirect_lands_on_a_page(browser, base_url, path):
    target = REDIRECT.search((BUILD / path).read_text()).group(1)
    assert target in PAGES
    page, problems = open_page(browser, base_url, path)
    page.wait_for_url(base_url + target)
    page.close()
    assert problems == []


@pytest.mark.parametrize("path", PAGES)
def test_page_renders_offline(browser, base_url, page_ids, path):
    page, problems = open_page(browser, base_url, path)
    math = page.evaluate(TYPESET)
    if pathlib.Path(path).stem in CHAPTERS:
        assert math and math["total"] > 0, "a chapter page without typeset math"
    if math is None:
        assert page.locator(".math").count() == 0, "math on the page but no MathJax"
    else:
        assert math["untypeset"] == 0 and math["errors"] == 0, math
        # at a 1280 px window every display equation fits its column (no hidden part)
        assert math["too_wide"] == [], (
            f"equations wider than the text: {math['too_wide']}"
        )
    broken = page.evaluate(
        "[...document.images].filter(i => !i.complete || i.naturalWidth === 0)"
        ".map(i => i.src.slice(0, 80))"
    )
    assert broken == [], f"images that did not load: {broken}"
    hrefs = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
    for href in hrefs:
        url = urllib.parse.urlsplit(href)
        if not href.startswith(base_url):
            continue
        target = BUILD / urllib.parse.unquote(url.path).lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        assert target.is_file(), f"broken link {href}"
        if url.fragment and target.suffix == ".html":
            fragment = urllib.parse.unquote(url.fragment)
            assert fragment in page_ids(target), f"missing anchor {href}"
    page.close()
    assert problems == []


def test_every_chapter_has_an_explorer():
    """The page lists found every chapter, and every chapter page holds an explorer."""
    assert CHAPTERS and CHAPTERS <= {pathlib.Path(p).stem for p in PAGES}
    assert CHAPTERS == {pathlib.Path(p).stem for p in SLIDER_PAGES}


#: Whether an explorer's value (an <output>) shows all of its text, in its row.
FITS = """o => o.scrollWidth <= o.clientWidth
    && o.parentElement.scrollWidth <= o.parentElement.clientWidth"""


@pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
@pytest.mark.parametrize("path", SLIDER_PAGES)
def test_explorer_sliders_change_the_figure(browser, base_url, path, size):
    """Each slider of each explorer, moved as a reader would, shows another frame; its
    value is never cut off, and its track keeps its length."""
    page, problems = open_page(browser, base_url, path, size=size)
    explorers = page.locator(".vbtutor-explorer")
    assert explorers.count() >= 1
    for i in range(explorers.count()):
        explorer = explorers.nth(i)
        sliders = explorer.locator('input[type="range"]')
        assert sliders.count() >= 1
        for j in range(sliders.count()):
            explorer.scroll_into_view_if_needed()
            visible = explorer.locator("img:visible")
            assert visible.count() == 1
            before = visible.get_attribute("src")
            box_before = explorer.bounding_box()
            handle = sliders.nth(j)
            label = explorer.locator("output").nth(j)
            label_before = label.inner_text()
            at_end = handle.input_value() == handle.get_attribute("max")
            track_before = handle.bounding_box()["width"]
            assert label.evaluate(FITS), f"value cut off: {label_before!r}"
            handle.focus()
            page.keyboard.press("Home" if at_end else "End")  # as a reader would
            assert visible.count() == 1
            assert visible.get_attribute("src") != before, "the figure did not change"
            assert label.inner_text() != label_before
            assert label.evaluate(FITS), f"value cut off: {label.inner_text()!r}"
            assert handle.bounding_box()["width"] == track_before, "the track moved"
            assert visible.evaluate("i => i.complete && i.naturalWidth > 0")
            box_after = explorer.bounding_box()  # frames share one size: no jitter
            assert (box_after["width"], box_after["height"]) == (
                box_before["width"],
                box_before["height"],
            )
    page.close()
    assert problems == []
