"""What a reader sees on a laptop and on a phone, page by page.

Each test names one kind of defect a strict Sphinx build lets through: markup shown as
text, a page that pans sideways on a phone, code or output lines hidden behind a scroll
bar, figures shrunk below their natural size or blurred on a high-density screen, and
search results that show raw TeX.
"""

from __future__ import annotations

import pathlib

import pytest
from conftest import BUILD, CHAPTERS, DESKTOP, PAGES, PHONE, open_page, typeset

CHAPTER_PAGES = [p for p in PAGES if pathlib.Path(p).stem in CHAPTERS]

# Text outside rendered math and code: no TeX or MyST source may show through.
MARKUP = r"""() => {
  const pattern = new RegExp(
    String.raw`\$|\\[A-Za-z]+|\\[()\[\]{}]|\^\{|_\{|:::|` +
    String.raw`\{(?:eq|ref|numref|cite|cite:p|cite:t|doc|math|glue(?::\w+)?)\}`);
  const found = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest('script, style, mjx-container, .cell_input, code, kbd'))
      continue;
    if (el.closest('pre') && !el.closest('.cell_output')) continue;  // code blocks
    const m = n.textContent.match(pattern);
    if (m) found.push(n.textContent.slice(Math.max(0, m.index - 40), m.index + 40));
  }
  return found;
}"""


@pytest.mark.parametrize("path", PAGES)
def test_no_markup_in_visible_text(browser, base_url, path):
    page, problems = open_page(browser, base_url, path)
    typeset(page)
    found = page.evaluate(MARKUP)
    page.close()
    assert found == [], f"TeX or MyST source shown as text: {found}"
    assert problems == []


# Anything wider than the window makes the whole page pan. Wide content may scroll inside
# its own box (display math, code, tables), but no element outside such a box may stick
# out of the window.
OVERFLOW = """() => {
  const clipped = e => { for (let a = e.parentElement; a; a = a.parentElement) {
      const style = getComputedStyle(a);
      if (style.overflowX !== 'visible' || style.position === 'fixed') return true;
    } return false; };
  const out = [...document.querySelectorAll('.bd-article *')]
    .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
    .filter(e => !clipped(e))
    .map(e => `${e.tagName}.${e.className}: ${e.textContent.slice(0, 60)}`);
  return {page: document.documentElement.scrollWidth - window.innerWidth, out};
}"""


@pytest.mark.parametrize("path", PAGES)
def test_phone_page_does_not_pan_sideways(browser, base_url, path):
    page, problems = open_page(browser, base_url, path, size=PHONE)
    typeset(page)
    overflow = page.evaluate(OVERFLOW)
    page.close()
    assert overflow["out"] == [], f"wider than a phone: {overflow['out']}"
    assert overflow["page"] <= 0, f"the page pans {overflow['page']} px sideways"
    assert problems == []


SCROLLING_LINES = """() => [...document.querySelectorAll('.cell_input pre, .cell_output pre')]
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .map(e => e.textContent.split('\\n').reduce((a, b) => a.length > b.length ? a : b))"""


@pytest.mark.parametrize("path", CHAPTER_PAGES)
def test_code_and_output_lines_fit_at_desktop_width(browser, base_url, path):
    page, problems = open_page(browser, base_url, path)
    hidden = page.evaluate(SCROLLING_LINES)
    page.close()
    assert hidden == [], f"lines that scroll sideways at 1280 px: {hidden}"
    assert problems == []


# Figures are stored at twice their CSS size (the ``width`` in the image's style or
# attribute) for sharp text on high-density screens; at 1280 px none may be shrunk below
# 90 % of that size, and on any screen the aspect ratio is kept.
FIGURES = """() => [...document.querySelectorAll('.cell_output img')]
  .filter(i => i.offsetParent !== null)
  .map(i => ({
    src: i.src.slice(-40),
    css: parseFloat(i.style.width) || Number(i.getAttribute('width')) || i.naturalWidth,
    natural: i.naturalWidth, shown: i.clientWidth,
    aspect: (i.clientWidth / i.clientHeight) / (i.naturalWidth / i.naturalHeight),
  }))"""


@pytest.mark.parametrize("path", CHAPTER_PAGES)
def test_figures_are_sharp_and_shown_at_natural_size(browser, base_url, path):
    page, problems = open_page(browser, base_url, path)
    figures = page.evaluate(FIGURES)
    assert figures, "a chapter without a figure"
    for f in figures:
        assert f["natural"] >= 1.9 * f["css"], f"not stored for high density: {f}"
        assert f["shown"] >= 0.9 * f["css"], f"figure shrunk to fit: {f}"
        assert abs(f["aspect"] - 1) < 0.02, f"figure distorted: {f}"
    page.close()
    assert problems == []


@pytest.mark.parametrize("path", CHAPTER_PAGES)
def test_figures_stay_readable_on_a_phone(browser, base_url, path):
    """At least 3/4 of the natural size, undistorted, scrolling inside their own box."""
    page, problems = open_page(browser, base_url, path, size=PHONE)
    for f in page.evaluate(FIGURES):
        assert f["shown"] >= 0.74 * f["css"], f"figure too small on a phone: {f}"
        assert abs(f["aspect"] - 1) < 0.02, f"figure distorted: {f}"
    page.close()
    assert problems == []


def test_search_results_show_no_raw_tex(browser, base_url):
    page, problems = open_page(browser, base_url, "search.html?q=posterior")
    # Sphinx shows the results one by one: wait for five, not for the first (a busy
    # machine once had three when the first was read)
    page.wait_for_function(
        "document.querySelectorAll('#search-results li p.context').length >= 5",
        timeout=30_000,
    )
    snippets = page.locator("#search-results p.context").all_inner_texts()
    page.close()
    assert len(snippets) >= 5
    raw = [s for s in snippets if "\\" in s or "$" in s]
    assert raw == [], f"snippets with TeX source: {raw[:3]}"
    assert problems == []


def test_bibliography_links_every_arxiv_id(browser, base_url):
    page, problems = open_page(browser, base_url, "book/bibliography.html")
    links = page.locator("a[href^='https://arxiv.org/abs/']")
    texts = links.all_inner_texts()
    body = page.locator("[role=main]").inner_text()
    page.close()
    assert len(texts) >= 20 and all(t.startswith("arXiv:") for t in texts)
    assert body.count("arXiv:") == len(texts), "an arXiv id that is not a link"
    assert problems == []


def test_pages_cover_the_book():
    """The page lists above are taken from the build, which must hold every chapter."""
    assert (BUILD / "index.html").exists()
    assert len(CHAPTER_PAGES) == len(CHAPTERS)
    assert DESKTOP[0] >= 1280 and PHONE[0] <= 390
