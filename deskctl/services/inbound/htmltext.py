"""HTML → plain text for agents' terminals and transcripts (stdlib `html.parser` only).

What must survive: paragraphs and line breaks, lists, links (`text <url>`), tables
(one line per row, cells separated by ` | `), preformatted text, images' alt text.
Scripts, styles and the document head are dropped; entities are decoded.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCKS = {"p", "div", "section", "article", "header", "footer", "main", "aside", "nav", "blockquote",
           "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "dt", "dd", "table", "form", "fieldset",
           "address", "figure", "figcaption", "hr", "center"}
_SKIP = {"script", "style", "head", "title", "template", "noscript"}
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0]+")


class _Renderer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.skip = 0
        self.pre = 0
        self.lists: list[list] = []  # [kind, counter]
        self.quote = 0
        self.links: list[str | None] = []
        self.link_text: list[int] = []
        self.table: list[list[list[str]]] = []  # stack of tables: rows of cells
        self.cell: list[str] | None = None  # parts of the open cell, while in a table
        self.marker = ""  # a list item's bullet and indent, for the line being built

    # -- output helpers ------------------------------------------------------------
    def _out(self, text: str) -> None:
        if self.cell is not None:
            self.cell.append(text)
        else:
            self.current.append(text)

    def _newline(self, blank: bool = False) -> None:
        if self.cell is not None:
            self.cell.append(" ")
            return
        line = "".join(self.current).rstrip() if self.pre else "".join(self.current).strip(" ")
        self.current = []
        prefix = "> " * self.quote + self.marker
        self.marker = ""
        if line:
            self.lines.append((prefix + line).rstrip())
        if blank and self.lines and self.lines[-1] != "":
            self.lines.append("")

    # -- parser callbacks ----------------------------------------------------------
    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in _SKIP:
            self.skip += 1
            return
        if self.skip:
            return
        if tag == "br":
            self._newline()
        elif tag == "pre":
            self._newline(blank=True)
            self.pre += 1
        elif tag == "blockquote":
            self._newline(blank=True)
            self.quote += 1
        elif tag in ("ul", "ol"):
            self._newline()
            self.lists.append([tag, 0])
        elif tag == "li":
            self._newline()
            depth = max(len(self.lists) - 1, 0)
            if self.lists and self.lists[-1][0] == "ol":
                self.lists[-1][1] += 1
                self.marker = "  " * depth + f"{self.lists[-1][1]}. "
            else:
                self.marker = "  " * depth + "- "
        elif tag == "a":
            self.links.append(attrs.get("href"))
            self.link_text.append(len(self._text_so_far()))
        elif tag == "img":
            alt = (attrs.get("alt") or "").strip()
            if alt:
                self._out(f"[{alt}]")
        elif tag == "table":
            self._newline(blank=True)
            self.table.append([])
        elif tag == "tr" and self.table:
            self.table[-1].append([])
        elif tag in ("td", "th") and self.table:
            if not self.table[-1]:
                self.table[-1].append([])
            self.cell = []
        elif tag == "hr":
            self._newline()
            self._out("-" * 20)
            self._newline()
        elif tag in _BLOCKS:
            self._newline(blank=tag.startswith("h") or tag == "p")

    def handle_endtag(self, tag):
        if tag in _SKIP:
            self.skip = max(self.skip - 1, 0)
            return
        if self.skip:
            return
        if tag == "pre":
            self._newline()
            self.pre = max(self.pre - 1, 0)
            self._newline(blank=True)
        elif tag == "blockquote":
            self._newline(blank=True)
            self.quote = max(self.quote - 1, 0)
        elif tag in ("ul", "ol"):
            if self.lists:
                self.lists.pop()
            self._newline(blank=not self.lists)
        elif tag == "a":
            href = self.links.pop() if self.links else None
            start = self.link_text.pop() if self.link_text else 0
            text = self._text_so_far()[start:].strip()
            if href and not href.startswith(("#", "javascript:")):
                target = href[7:] if href.startswith("mailto:") else href
                if target and target != text:
                    self._out(f" <{target}>")
        elif tag in ("td", "th") and self.table and self.cell is not None:
            text = _SPACES.sub(" ", "".join(self.cell)).strip()
            self.table[-1][-1].append(text)
            self.cell = None
        elif tag == "table" and self.table:
            rows = [r for r in self.table.pop() if any(c for c in r)]
            self._flush_table(rows)
        elif tag in _BLOCKS or tag == "li":
            self._newline(blank=tag.startswith("h") or tag == "p")

    def handle_data(self, data):
        if self.skip:
            return
        if self.pre:
            parts = data.split("\n")
            for i, part in enumerate(parts):
                if i:
                    self._newline()
                self._out(part)
            return
        text = _SPACES.sub(" ", data)
        if not text.strip() and not "".join(self.current).strip() and self.cell is None:
            return
        self._out(text)

    # -- helpers -------------------------------------------------------------------
    def _text_so_far(self) -> str:
        return "".join(self.cell if self.cell is not None else self.current)

    def _flush_table(self, rows: list[list[str]]) -> None:
        if not rows:
            return
        saved, self.cell = self.cell, None
        self._newline()
        widths: dict[int, int] = {}
        for row in rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths.get(i, 0), len(cell))
        for row in rows:
            cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
            self._out(" | ".join(cells).rstrip())
            self._newline()
        self._newline(blank=True)
        self.cell = saved

    def text(self) -> str:
        if self.cell:
            self.current.extend(self.cell)
            self.cell = None
        self._newline()
        while self.lines and self.lines[-1] == "":
            self.lines.pop()
        out: list[str] = []
        for line in self.lines:  # at most one blank line in a row
            if line == "" and out and out[-1] == "":
                continue
            out.append(line.rstrip())
        return "\n".join(out) + ("\n" if out else "")


def html_to_text(html: str) -> str:
    """A readable plain-text rendering of an HTML body."""
    renderer = _Renderer()
    renderer.feed(html or "")
    renderer.close()
    return renderer.text()
