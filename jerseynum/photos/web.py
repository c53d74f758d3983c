"""The local web page for searching tagged race photos (`jerseynum serve`).

Type a bib number, get a grid of the photos showing it, with the bib's box drawn over each thumbnail; open a
photo to see every number read in it. The boxes are CSS (percentages of the photo's size), so the server only
ever sends the original file or a thumbnail.

It is the standard library's threaded HTTP server and a few string templates, not a web framework: the page
is meant for one person on their own machine (or a laptop at the finish line), it has four routes, and keeping
it dependency-free means `jerseynum serve` works wherever the tagger does. Files are only ever served by photo
id, looked up in the index and checked to lie inside the photo folder; every value written into the HTML is
escaped. Each request opens its own `PhotoIndex` (SQLite connections cannot cross threads; WAL mode lets the
page read while a tagger is still writing).
"""

from __future__ import annotations

import functools
import html
import logging
import math
import mimetypes
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import cv2
import numpy as np

from jerseynum.photos.index import BibNumber, Match, PhotoIndex, PhotoRecord

log = logging.getLogger(__name__)

PER_PAGE = 24
THUMB_SIZE = 320  # px, the longer side
MAX_QUERY = 12  # digits
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
  body {{ font: 15px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1400px; padding: 1rem; color: #222; }}
  header {{ display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; margin-bottom: 1rem; }}
  header h1 {{ font-size: 1.3rem; margin: 0; }}
  header h1 a {{ color: inherit; text-decoration: none; }}
  form {{ display: flex; gap: .5rem; align-items: center; }}
  input[type=search] {{ font-size: 1.1rem; width: 9em; padding: .3rem .5rem; }}
  button {{ font-size: 1rem; padding: .3rem .9rem; }}
  .grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr)); gap: 1rem;
           align-items: start; }}
  .card {{ display: block; color: inherit; text-decoration: none; background: #f4f4f4; border-radius: 4px;
           overflow: hidden; }}
  .card:hover {{ outline: 2px solid #888; }}
  .frame {{ position: relative; }}
  .frame img {{ display: block; width: 100%; height: 100%; }}
  .box {{ position: absolute; box-sizing: border-box; border: 3px solid #ff2d55; }}
  .label {{ position: absolute; bottom: 100%; left: -3px; white-space: nowrap; background: #ff2d55; color: #fff;
            font-size: .8rem; padding: 0 .3rem; }}
  .caption {{ padding: .3rem .5rem; }}
  .kind {{ font-size: .8rem; padding: 0 .3rem; border-radius: 3px; background: #ddd; }}
  .kind.exact {{ background: #c8f0c8; }}
  .muted {{ color: #777; }}
  .pages {{ margin: 1.2rem 0; display: flex; flex-wrap: wrap; gap: .4rem; }}
  .pages a, .pages span {{ padding: .2rem .5rem; }}
  .pages .current {{ font-weight: bold; border-bottom: 2px solid #222; }}
  h2 {{ font-size: 1.1rem; margin: 0 0 .3rem; overflow-wrap: anywhere; }}
  .photo {{ margin: 1.5rem auto 0; }}
</style>
</head>
<body>
<header>
  <h1><a href="/">Race photos</a></h1>
  <form action="/" method="get" role="search">
    <input type="search" name="q" value="{query}" placeholder="bib number" inputmode="numeric"
           pattern="[0-9]*" maxlength="{max_query}" autofocus aria-label="bib number">
    <label><input type="checkbox" name="exact" value="1"{exact_checked}> exact only</label>
    <button type="submit">Search</button>
  </form>
</header>
<main>
{body}
</main>
</body>
</html>
"""


def clean_query(raw: str) -> str:
    """The digits of a query, at most MAX_QUERY of them."""
    return "".join(c for c in raw if c in "0123456789")[:MAX_QUERY]


def parse_page(raw: str) -> int:
    try:
        return max(1, int(raw))
    except ValueError:
        return 1


def _percent(value: float, total: int) -> float:
    return min(100.0, max(0.0, 100.0 * value / total))


def box_style(number: BibNumber, photo: PhotoRecord) -> str | None:
    """The CSS placing a number's box over its photo (percentages of the photo's size); None where unknown."""
    if not photo.width or not photo.height:
        return None
    x1, y1, x2, y2 = number.box
    left, top = _percent(x1, photo.width), _percent(y1, photo.height)
    width, height = _percent(x2, photo.width) - left, _percent(y2, photo.height) - top
    return f"left:{left:.2f}%;top:{top:.2f}%;width:{width:.2f}%;height:{height:.2f}%"


def _aspect(photo: PhotoRecord) -> str:
    return f"aspect-ratio:{photo.width}/{photo.height}" if photo.width and photo.height else ""


def _search_href(query: str, exact: bool = False, page: int = 1) -> str:
    params = {"q": query}
    if exact:
        params["exact"] = "1"
    if page > 1:
        params["page"] = str(page)
    return "/?" + urlencode(params)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


class App:
    """What the handlers share: where the index and the photos are, and the thumbnail cache."""

    def __init__(self, index_path: Path, photos_root: Path) -> None:
        self.index_path = Path(index_path)
        self.photos_root = Path(photos_root).resolve()
        # Keyed by the file and its content hash, so a re-tagged, changed photo gets a fresh thumbnail.
        self.thumbnail = functools.lru_cache(maxsize=512)(self._make_thumbnail)

    def index(self) -> PhotoIndex:
        return PhotoIndex(self.index_path)

    def file_of(self, photo: PhotoRecord) -> Path | None:
        """The photo's file, only if it lies inside the photo folder (symlinks and '..' resolved) and exists."""
        path = (self.photos_root / photo.path).resolve()
        if not path.is_relative_to(self.photos_root) or not path.is_file():
            return None
        return path

    @staticmethod
    def _make_thumbnail(path: Path, sha256: str) -> bytes | None:
        image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            return None
        height, width = image.shape[:2]
        scale = THUMB_SIZE / max(height, width)
        if scale < 1:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        return encoded.tobytes() if ok else None

    # --- pages ---------------------------------------------------------------------------------------

    def search_page(self, query: str, exact: bool, page: int) -> str:
        with self.index() as index:
            if not query:
                photos, numbered = index.counts()
                body = (f'<p>{photos} photos in the index, {numbered} with numbers read. '
                        "Type a bib number to find its photos.</p>")  # fmt: skip
                return self.render("Race photos", body)
            matches = index.search(query, partial=not exact, max_distance=0 if exact else 1)
        if not matches:
            body = f'<p class="empty">no photos for {_e(query)}</p>'
            return self.render(f"{query}: no photos", body, query, exact)
        last = math.ceil(len(matches) / PER_PAGE)
        page = min(page, last)
        shown = matches[(page - 1) * PER_PAGE : page * PER_PAGE]
        cards = "\n".join(self._card(match) for match in shown)
        plural = "photo" if len(matches) == 1 else "photos"
        body = (f'<p class="muted">{len(matches)} {plural} for {_e(query)}</p>\n'
                f'<div class="grid">\n{cards}\n</div>\n{self._pages(query, exact, page, last)}')  # fmt: skip
        return self.render(f"{query}: {len(matches)} {plural}", body, query, exact)

    @staticmethod
    def _card(match: Match) -> str:
        photo, number = match.photo, match.number
        style = box_style(number, photo)
        box = f'<div class="box" style="{_e(style)}"></div>' if style else ""
        return (
            f'<a class="card" href="/photo/{photo.id}" title="{_e(photo.path)}">'
            f'<div class="frame" style="{_e(_aspect(photo))}"><img src="/thumb/{photo.id}" alt="{_e(photo.path)}"'
            f' loading="lazy">{box}</div>'
            f'<div class="caption"><b>{_e(number.number)}</b> <span class="kind {_e(match.kind)}">'
            f"{_e(match.kind)}</span> {number.confidence:.0%}</div></a>"
        )

    @staticmethod
    def _pages(query: str, exact: bool, page: int, last: int) -> str:
        if last == 1:
            return ""
        links = []
        if page > 1:
            links.append(f'<a href="{_e(_search_href(query, exact, page - 1))}" rel="prev">&laquo; prev</a>')
        # The first, the last, and the pages around the current one.
        wanted = sorted({1, last, *range(max(1, page - 2), min(last, page + 2) + 1)})
        previous = 0
        for n in wanted:
            if n > previous + 1:
                links.append('<span class="muted">&hellip;</span>')
            if n == page:
                links.append(f'<span class="current">{n}</span>')
            else:
                links.append(f'<a href="{_e(_search_href(query, exact, n))}">{n}</a>')
            previous = n
        if page < last:
            links.append(f'<a href="{_e(_search_href(query, exact, page + 1))}" rel="next">next &raquo;</a>')
        return '<nav class="pages">' + "".join(links) + "</nav>"

    def photo_page(self, photo_id: int) -> str | None:
        with self.index() as index:
            photo = index.photo(photo_id)
        if photo is None:
            return None
        parts = [f"<h2>{_e(photo.path)}</h2>"]
        if photo.error:
            parts.append(f'<p class="muted">could not be tagged: {_e(photo.error)}</p>')
        if photo.numbers:
            items = " · ".join(f'<a href="{_e(_search_href(n.number))}">{_e(n.number)}</a> '
                               f'<span class="muted">{n.confidence:.0%}</span>' for n in photo.numbers)  # fmt: skip
            parts.append(f'<p class="numbers">Numbers read: {items}</p>')
        elif not photo.error:
            parts.append('<p class="muted">no numbers read in this photo</p>')
        if photo.width and photo.height:
            boxes = []
            for number in photo.numbers:
                label = f"{number.number} · {number.confidence:.0%}"
                boxes.append(f'<div class="box" style="{_e(box_style(number, photo))}">'
                             f'<span class="label">{_e(label)}</span></div>')  # fmt: skip
            # Fit the whole photo in the window: as wide as the page, as high as what is left below the header.
            fit = f"{_aspect(photo)};width:min(100%, calc(max(200px, 100vh - 13rem) * {photo.width} / {photo.height}))"
            parts.append(f'<div class="frame photo" style="{_e(fit)}"><img src="/image/{photo.id}"'
                         f' alt="{_e(photo.path)}">{"".join(boxes)}</div>')  # fmt: skip
        return self.render(photo.path, "\n".join(parts))

    @staticmethod
    def render(title: str, body: str, query: str = "", exact: bool = False) -> str:
        return PAGE.format(title=_e(title), query=_e(query), max_query=MAX_QUERY,
                           exact_checked=" checked" if exact else "", body=body)  # fmt: skip


ROUTE = re.compile(r"/(photo|image|thumb)/([0-9]{1,18})")


class Handler(BaseHTTPRequestHandler):
    server_version = "jerseynum"
    app: App  # set on the subclass made per server

    def do_GET(self) -> None:
        try:
            self._dispatch()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser went away (a new search typed before the thumbnails arrived)
        except Exception:
            log.exception("error serving %s", self.path)
            self._send_page(HTTPStatus.INTERNAL_SERVER_ERROR, self._error_page("something went wrong"))

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/":
            params = parse_qs(url.query)
            query = clean_query(params.get("q", [""])[0])
            exact = params.get("exact", [""])[0] == "1"
            page = parse_page(params.get("page", ["1"])[0])
            return self._send_page(HTTPStatus.OK, self.app.search_page(query, exact, page))
        route = ROUTE.fullmatch(url.path)  # the raw path: '%2e%2e' and friends simply do not match
        if route is None:
            return self._not_found()
        kind, photo_id = route[1], int(route[2])
        if kind == "photo":
            page = self.app.photo_page(photo_id)
            return self._send_page(HTTPStatus.OK, page) if page else self._not_found()
        with self.app.index() as index:
            photo = index.photo(photo_id)
        path = self.app.file_of(photo) if photo else None
        if path is None:
            return self._not_found()
        if kind == "image":
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return self._send(HTTPStatus.OK, path.read_bytes(), content_type, cache=True)
        thumbnail = self.app.thumbnail(path, photo.sha256)
        if thumbnail is None:
            return self._not_found()
        return self._send(HTTPStatus.OK, thumbnail, "image/jpeg", cache=True)

    def _error_page(self, message: str) -> str:
        return self.app.render(message, f'<p class="error">{_e(message)}</p>')

    def _not_found(self) -> None:
        self._send_page(HTTPStatus.NOT_FOUND, self._error_page("not found"))

    def _send_page(self, status: HTTPStatus, page: str) -> None:
        self._send(status, page.encode("utf-8"), "text/html; charset=utf-8")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, cache: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "private, max-age=300" if cache else "no-store")
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # the signature of http.server
        log.debug("%s " + format, self.address_string(), *args)


def make_server(index_path: Path, photos_root: Path, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A server for the page, not yet serving (call `serve_forever()`); port 0 picks a free port."""
    handler = type("BoundHandler", (Handler,), {"app": App(index_path, photos_root)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def serve_forever(index_path: Path, photos_root: Path, host: str, port: int) -> None:
    """Serve the page until Ctrl-C."""
    server = make_server(index_path, photos_root, host, port)
    shown_host = f"[{host}]" if ":" in host else host
    log.info("searching %s at http://%s:%d/ (Ctrl-C to stop)", photos_root, shown_host, server.server_address[1])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
