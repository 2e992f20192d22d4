"""Document text extraction and chunking (stdlib only)."""

import re
from html.parser import HTMLParser

CONTENT_TYPES = ("text/plain", "text/markdown", "text/html")
CHUNK_CHARS = 800
OVERLAP_CHARS = 100


class _Text(HTMLParser):
    SKIP = {"script", "style", "head", "noscript"}
    BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self._skip += 1
        elif tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


_MD = [
    (re.compile(r"```[^\n]*\n"), ""),  # fences (code stays as text)
    (re.compile(r"!?\[([^\]]*)\]\([^)]*\)"), r"\1"),  # links and images keep their text
    (re.compile(r"^\s{0,3}(#{1,6}|>|[-*+]|\d+\.)\s+", re.M), ""),  # headings, quotes, lists
    (re.compile(r"(\*\*|__|\*|_|`)"), ""),
]


def extract(content_type: str, raw: str) -> str:
    if content_type == "text/html":
        parser = _Text()
        parser.feed(raw)
        parser.close()
        raw = "".join(parser.parts)
    elif content_type == "text/markdown":
        for pattern, repl in _MD:
            raw = pattern.sub(repl, raw)
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]+", " ", raw)).strip()


def chunk(text: str, size: int = CHUNK_CHARS, overlap: int = OVERLAP_CHARS) -> list[str]:
    """Paragraph-packed chunks of about `size` characters; an over-long paragraph is
    split on word boundaries with `overlap` characters carried over."""
    pieces: list[str] = []
    for para in (p.strip() for p in text.split("\n\n")):
        while len(para) > size:
            cut = para.rfind(" ", overlap, size)
            cut = size if cut <= overlap else cut
            pieces.append(para[:cut])
            para = para[max(cut - overlap, 1) :].lstrip()
        if para:
            pieces.append(para)
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + len(piece) + 2 <= size:
            chunks[-1] += "\n\n" + piece
        else:
            chunks.append(piece)
    return chunks
