/* vbtutor: small fixes to sphinx-book-theme's behaviour (registered by tools/book_html.py).
   This file is loaded in <head>, before the theme's deferred scripts run. */

/* 1. Sidebar toggles. The page holds two of each toggle button: a hidden one in the
   theme's unused top navbar and the visible one in the article header. The theme binds
   its handlers to the first match of `.primary-toggle` / `.secondary-toggle`, the hidden
   one, so the visible buttons did nothing. Remove the hidden copies once the document is
   parsed, before the deferred theme scripts bind their handlers. */
document.addEventListener("readystatechange", () => {
  if (document.readyState !== "interactive") return;
  document
    .querySelectorAll(".bd-header .sidebar-toggle")
    .forEach((button) => button.remove());
});

document.addEventListener("DOMContentLoaded", () => {
  /* 2. A link followed inside a sidebar drawer closes the drawer, so the reader sees
     the section they asked for rather than the open menu. */
  document.querySelectorAll("dialog").forEach((dialog) => {
    dialog.addEventListener("click", (event) => {
      if (event.target.closest("a[href]") && dialog.open) dialog.close();
    });
  });

  /* 3. Figures never shrink below 3/4 of their natural size. On a laptop they fit the
     column at full size; on a phone a two-panel figure is then wider than the screen
     and scrolls sideways inside its own box, with each panel readable. */
  document.querySelectorAll(".cell_output img, .vbtutor-explorer img").forEach((img) => {
    const natural = parseFloat(img.style.width) || Number(img.getAttribute("width"));
    if (natural) img.style.minWidth = `${Math.round(0.75 * natural)}px`;
  });
});

/* 4. Search result snippets are cut from each page's HTML text, where math is TeX
   source. Replace math by an ellipsis before the snippet is cut. */
document.addEventListener("DOMContentLoaded", () => {
  if (typeof Search === "undefined" || !Search.htmlToText) return;
  const htmlToText = Search.htmlToText;
  Search.htmlToText = (html, anchor) => {
    const doc = new DOMParser().parseFromString(html, "text/html");
    doc.querySelectorAll(".math").forEach((math) => math.replaceWith("…"));
    return htmlToText(doc.documentElement.outerHTML, anchor);
  };
});
