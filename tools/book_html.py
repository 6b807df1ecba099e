"""Sphinx extension: small fixes to the HTML pages of the book.

sphinx-thebe 0.3.1 registers its inline configuration script once per read phase, and
a jupyter-book build has more than one, so each page declared ``const THEBE_JS_URL``
twice and the browser reported a SyntaxError. Dropping exact duplicate scripts (same
file, same inline body, same attributes) fixes it without touching any other script.
"""

from __future__ import annotations


def drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {})
        name = getattr(script, "filename", script) or ""  # None and "" both mean inline
        key = (str(name), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app):
    app.connect("html-page-context", drop_duplicate_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
