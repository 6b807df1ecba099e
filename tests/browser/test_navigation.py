"""The menus a reader uses to move around: the chapter list and the page contents.

On a phone and a tablet both open as drawers from the buttons in the article header,
and a link followed from either drawer lands where it says. On a laptop the chapter
list is a sidebar that its button hides and shows again.
"""

from __future__ import annotations

import pytest
from conftest import DESKTOP, PHONE, TABLET, open_page

CHAPTER = "book/elbo.html"


@pytest.mark.parametrize("size", [PHONE, TABLET], ids=["phone", "tablet"])
def test_chapter_drawer_opens_and_its_links_work(browser, base_url, size):
    page, problems = open_page(browser, base_url, CHAPTER, size=size)
    drawer = page.locator("#pst-primary-sidebar-modal")
    assert not drawer.is_visible()
    page.locator(".primary-toggle:visible").click()
    drawer.wait_for(state="visible", timeout=5_000)
    link = drawer.locator("nav a[href$='iwae.html']")
    assert link.is_visible()
    link.click()
    page.wait_for_url("**/book/iwae.html", timeout=10_000)
    page.close()
    assert problems == []


@pytest.mark.parametrize("size", [PHONE, TABLET], ids=["phone", "tablet"])
def test_contents_drawer_opens_and_its_links_work(browser, base_url, size):
    page, problems = open_page(browser, base_url, CHAPTER, size=size)
    drawer = page.locator("#pst-secondary-sidebar-modal")
    page.locator(".secondary-toggle:visible").click()
    drawer.wait_for(state="visible", timeout=5_000)
    links = drawer.locator("nav a.nav-link")
    assert links.count() >= 5
    target = links.nth(3)
    anchor = target.get_attribute("href")
    assert anchor.startswith("#")
    target.click()
    page.wait_for_function(f"location.hash === {anchor!r}", timeout=5_000)
    drawer.wait_for(state="hidden", timeout=5_000)  # the page is readable again
    heading = page.locator(f"[id={anchor[1:]!r}]")
    box = heading.bounding_box()
    assert box is not None and 0 <= box["y"] < size[1] / 2, (
        "section not brought to view"
    )
    page.close()
    assert problems == []


def test_chapter_sidebar_hides_and_shows_on_a_laptop(browser, base_url):
    page, problems = open_page(browser, base_url, CHAPTER, size=DESKTOP)
    sidebar = page.locator("#pst-primary-sidebar")
    toggle = page.locator(".primary-toggle:visible")
    assert sidebar.is_visible()
    toggle.click()
    sidebar.wait_for(state="hidden", timeout=5_000)
    toggle.click()
    sidebar.wait_for(state="visible", timeout=5_000)
    page.close()
    assert problems == []
