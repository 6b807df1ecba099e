"""Sphinx extension: small fixes to the HTML pages of the book.

It serves ``book/_static`` (``vbtutor.css`` and ``vbtutor.js``: code width, phone layout,
sidebar toggles, figure zoom, search snippets; each rule says why) and drops duplicate
scripts and the stored widget state (see :func:`tidy_scripts`).

sphinx-thebe 0.3.1 registers its inline configuration script once per read phase, and
a jupyter-book build has more than one, so each page declared ``const THEBE_JS_URL``
twice and the browser reported a SyntaxError. Dropping exact duplicate scripts (same
file, same inline body, same attributes) fixes it without touching any other script.
"""

from __future__ import annotations

import pathlib

WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def tidy_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop exact duplicate scripts, and the stored ipywidgets state.

    The book loads no widget manager (``nb_ipywidgets_js: {}``): each slider shows its
    own kernel-free fallback, so the widget state myst-nb copies from a notebook's
    metadata (a PNG frame per slider) would only add weight to the page.
    """
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {})
        if attributes.get("type") == WIDGET_STATE:
            continue
        name = getattr(script, "filename", script) or ""  # None and "" both mean inline
        key = (str(name), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


STATIC = pathlib.Path(__file__).resolve().parents[1] / "book" / "_static"


def add_static_path(app) -> None:
    app.config.html_static_path.append(str(STATIC))


def setup(app):
    app.connect("builder-inited", add_static_path)
    app.add_css_file("vbtutor.css")
    app.add_js_file("vbtutor.js", priority=100)  # before the theme's own scripts
    app.connect("html-page-context", tidy_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
