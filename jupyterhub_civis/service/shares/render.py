"""A shared notebook version as static, sanitised HTML.

nbconvert's HTML exporter renders the notebook (its ``basic`` template: the
cells and outputs, no scripts of its own); nh3 (ammonia) then keeps only an
allow-list of tags, attributes and URL schemes, so no ``<script>``, event
handler, ``javascript:`` URL, inline SVG, form, frame or widget state survives,
whatever the notebook's outputs hold. The result is wrapped in a fixed shell
with a fixed stylesheet and served by ``pages.RenderedNotebook`` with
a CSP ``sandbox`` (no ``allow-scripts``) inside a sandboxed iframe: even a
sanitiser bug could not run script on the hub's origin.

A share version's images (``image/png``, ``image/jpeg``, ``image/svg+xml`` outputs)
are not inlined as ``data:`` URLs: ``render(…, image_url=…)`` takes them out as
content-addressed files (``<sha256>.<ext>``) that the document references with
``<img loading="lazy">``, so the first document a viewer loads holds text only and
images below the fold are never fetched (``pages.RenderedImage`` serves them).
``pack``/``unpack`` keep a document and its images as one value (a zip) in the
database.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import io
import os
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field

import nh3

#: Tags a rendering may keep: text, tables, code and images — nothing active.
TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd",
    "del", "details", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q",
    "s", "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td",
    "tfoot", "th", "thead", "tr", "u", "ul", "var",
}  # fmt: skip
ATTRIBUTES = {
    "*": {"class", "title", "lang", "dir"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
    "ol": {"start"},
}
#: Images as data: URLs or the version's own image files (the sandbox's CSP loads
#: nothing else); links to the web.
URL_SCHEMES = {"http", "https", "mailto", "data"}
#: Every image loads when it nears the viewport, decoded off the main thread.
IMG_ATTRIBUTES = {"img": {"loading": "lazy", "decoding": "async"}}
#: output MIME type → (file extension, Content-Type) of the images taken out of a document
IMAGE_TYPES = {
    "image/png": (".png", "image/png"),
    "image/jpeg": (".jpg", "image/jpeg"),
    "image/svg+xml": (".svg", "image/svg+xml"),
}
CONTENT_TYPES = dict(IMAGE_TYPES.values())
#: Served with an image file: even an SVG opened on its own runs no script and loads
#: nothing (inside ``<img>`` a browser never runs an SVG's script anyway).
IMAGE_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"

with open(os.path.join(os.path.dirname(__file__), "rendered.css"), encoding="utf-8") as _f:
    CSS = _f.read()
#: The one style the rendering's CSP allows: the shell's own stylesheet.
CSS_HASH = "'sha256-" + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode() + "'"
#: Served with the rendering: no script, nothing loaded but the shell's style and
#: data: images, framed only by the service's own viewer page.
RENDER_CSP = (
    "sandbox; default-src 'none'; style-src " + CSS_HASH + "; img-src data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
)


#: The sandbox of a rendering with image files. ``allow-same-origin`` and nothing else:
#: a sandboxed document without it has an opaque origin, and the browser then sends no
#: (SameSite=Lax) session cookie with its image requests, which the audience check
#: needs. Scripts stay off (no ``allow-scripts``, no ``script-src``, sanitised HTML):
#: the spec's warning is about the two flags together; with no script, nothing can use
#: the origin, and the CSP still loads nothing but the style and the version's images.
SAME_ORIGIN_SANDBOX = "allow-same-origin"


def render_csp(images: str) -> str:
    """``RENDER_CSP`` for a rendering whose images are files under ``images`` (the
    absolute URL of the version's image folder: a CSP source with a path matches that
    folder only, so no other URL of the hub is ever requested by the document)."""
    return RENDER_CSP.replace("img-src data:;", f"img-src data: {images};").replace(
        "sandbox;", f"sandbox {SAME_ORIGIN_SANDBOX};", 1
    )

SHELL = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>{css}</style>
</head><body class="civis-rendered">
{body}
</body></html>"""


def _clean(fragment: str) -> str:
    return nh3.clean(
        fragment,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
        set_tag_attribute_values=IMG_ATTRIBUTES,
    )


def take_images(nb, image_url: str) -> dict[str, bytes]:
    """Take the image outputs out of ``nb`` (in place): each becomes a file named by
    its content's SHA-256, which nbconvert's template then references at
    ``image_url.format(name=…)`` instead of inlining it. Returns ``{name: bytes}``."""
    images: dict[str, bytes] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", ()):
            data = output.get("data") or {}
            for mime, (ext, _) in IMAGE_TYPES.items():
                value = data.get(mime)
                if not isinstance(value, str):
                    continue
                try:
                    content = (value.encode() if mime == "image/svg+xml"
                               else base64.b64decode(value, validate=False))
                except ValueError:
                    continue  # not base64: nbconvert inlines it (and the browser ignores it)
                name = hashlib.sha256(content).hexdigest() + ext
                images[name] = content
                url = image_url.format(name=name)
                if mime == "image/svg+xml":
                    output["svg_filename"] = url
                else:
                    output.setdefault("metadata", {}).setdefault("filenames", {})[mime] = url
    return images


def render(raw: bytes, *, title: str, image_url: str | None = None
           ) -> tuple[bytes, dict[str, bytes]]:
    """The notebook ``raw`` (.ipynb bytes) as a sanitised, script-free HTML document and
    its image files: with ``image_url`` (e.g. ``"render/img/{name}?v=3"``, relative to
    the document) ``{image name: bytes}``; without, images stay inlined and that is ``{}``."""
    # imported on first use, not at service start: nbformat's jsonschema pulls in
    # rfc3987_syntax, whose import compiles grammars for seconds, and JupyterHub gives
    # a managed service 10 s to answer (see warm_up)
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.reads(raw.decode("utf-8"), as_version=4)
    nb.metadata.pop("widgets", None)  # widget state is never rendered
    images = take_images(nb, image_url) if image_url else {}
    exporter = HTMLExporter(template_name="basic", exclude_anchor_links=True)
    body, _ = exporter.from_notebook_node(nb)
    document = SHELL.format(title=html.escape(title), css=CSS, body=_clean(body)).encode()
    return document, images


def pack(document: bytes, images: dict[str, bytes]) -> bytes:
    """A document and its images as one value (a zip: the HTML deflated, images as is)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("index.html", document, compress_type=zipfile.ZIP_DEFLATED)
        for name, content in images.items():
            z.writestr("img/" + name, content, compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


def is_packed(stored: bytes) -> bool:
    """Whether ``stored`` is a ``pack``: a rendering kept before images became files
    is a bare HTML document (with ``data:`` images), rendered again when next viewed."""
    return stored.startswith(b"PK")


def unpack(stored: bytes) -> tuple[bytes, dict[str, bytes]]:
    """``pack``'s inverse."""
    with zipfile.ZipFile(io.BytesIO(stored)) as z:
        images = {n[4:]: z.read(n) for n in z.namelist() if n.startswith("img/")}
        return z.read("index.html"), images


def warm_up() -> None:
    """Import the renderer's libraries (seconds; run in a thread once the service listens)."""
    import nbconvert  # noqa: F401
    import nbformat  # noqa: F401


def render_error(message: str) -> bytes:
    """What the frame shows when a stored notebook cannot be rendered."""
    body = f"<p class='civis-render-error'>{html.escape(message)}</p>"
    return SHELL.format(title="Not rendered", css=CSS, body=body).encode()


@dataclass(frozen=True)
class Rendering:
    """A rendering as served: the HTML and, compressed once, its gzip encoding; the
    image files it references by name."""

    html: bytes
    gzipped: bytes
    #: the strong ETag of ``html`` (the gzip encoding's adds ``-gz``), computed once
    #: instead of hashing megabytes on every response as tornado's default does
    etag: str
    images: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def of(cls, html: bytes, images: dict[str, bytes] | None = None) -> Rendering:
        digest = hashlib.sha256(html).hexdigest()[:32]
        return cls(html, gzip.compress(html, compresslevel=6), f'"{digest}"', images or {})

    def __len__(self) -> int:
        return len(self.html) + len(self.gzipped) + sum(map(len, self.images.values()))


class RenderCache:
    """The most recently served renderings in memory, within ``max_bytes``: a popular
    link is served without reading its rendering from the database each time (the
    database keeps every version's rendering for every replica)."""

    def __init__(self, max_bytes: int = 64 << 20):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, int], Rendering] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> Rendering | None:
        with self._lock:
            html_ = self._items.get(key)
            if html_ is not None:
                self._items.move_to_end(key)
            return html_

    def put(self, key: tuple[str, int], html_: Rendering) -> None:
        if len(html_) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes -= len(old) if old else 0
            self._items[key] = html_
            self._bytes += len(html_)
            while self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)
