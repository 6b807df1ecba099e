"""The live path: a chapter run in JupyterLab, its explorer dragged to a new value.

JupyterLab (the pinned version) serves a copy of one chapter; Debian's Chromium, driven by
Playwright, opens it, runs every cell, drags the explorer's slider with the mouse to a
value that is not among the frames of the HTML book, and checks that the kernel
recomputed the figure (a new image) and the label. The chapter is elbo, the quickest to
run; the mechanism is the same for every chapter (vbtutor.widgets.Explorer).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import BUILD
from playwright.sync_api import expect

CHAPTER = "elbo"
SHIFT_FRAMES = {0.0, 1.0, 2.0}  # the HTML frames of the explorer's shift control


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a copy of the chapter; yields its base URL and token."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(BUILD.parents[1] / "book" / f"{CHAPTER}.ipynb", root)
    port, token = free_port(), "vbtutor-test"
    env = dict(os.environ, VBTUTOR_PROGRESS="off", VBTUTOR_DEVICE="cpu")
    jupyter = pathlib.Path(sys.executable).with_name("jupyter")
    server = subprocess.Popen(
        [
            str(jupyter),
            "lab",
            "--no-browser",
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            "--ServerApp.disable_check_xsrf=True",
            "--allow-root",  # CI and these machines run as root
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.terminate()
        pytest.fail("JupyterLab did not start")
    yield url, token
    server.terminate()
    server.wait(timeout=30)


def wait_until_idle(url: str, token: str, quiet: float = 2.0, timeout: float = 300):
    """Wait until the kernel has been idle for ``quiet`` seconds (Run All is done)."""
    idle_since, start = None, time.monotonic()
    while time.monotonic() - start < timeout:
        with urllib.request.urlopen(f"{url}/api/kernels?token={token}") as reply:
            states = [k["execution_state"] for k in json.load(reply)]
        if states and all(s == "idle" for s in states):
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= quiet:
                return
        else:
            idle_since = None
        time.sleep(0.25)
    pytest.fail("the chapter did not finish running")


def test_dragging_the_explorer_recomputes_the_figure_in_a_live_kernel(browser, lab):
    url, token = lab
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/lab/tree/{CHAPTER}.ipynb?token={token}")
    page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
    page.get_by_text("| Idle").wait_for(timeout=60_000)  # the kernel has started
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    # The explorer's live view: its sliders, the image and the caption under it.
    explorer = page.locator(".widget-vbox").filter(has=page.locator(".widget-image"))
    explorer.first.wait_for(timeout=120_000)
    slider = explorer.first.locator(".widget-slider").filter(has_text="shift")
    image = explorer.first.locator(".widget-image")
    caption = explorer.first.locator(".widget-html-content").first
    expect(caption).to_have_text("scale s = 1, shift = 0.0", timeout=60_000)
    wait_until_idle(url, token)  # Run All scrolls the notebook while it runs
    src_before = image.get_attribute("src")
    # Drag the handle with the mouse from its place to 28 % of the track.
    handle = slider.locator(".noUi-handle")
    handle.hover()  # scrolls it into view and waits until it stands still
    page.mouse.down()
    track = slider.locator(".noUi-target").bounding_box()
    page.mouse.move(track["x"] + 0.28 * track["width"], track["y"] + 2, steps=8)
    page.mouse.up()
    value = float(handle.get_attribute("aria-valuenow"))
    assert value not in SHIFT_FRAMES and -2 <= value <= 2
    expect(caption).to_have_text(f"scale s = 1, shift = {value:.1f}", timeout=30_000)
    assert image.get_attribute("src") != src_before
    errors = page.locator(".jp-OutputArea-output[data-mime-type*='error']")
    assert errors.count() == 0
    page.close()
