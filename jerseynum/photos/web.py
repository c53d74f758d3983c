"""The local web page for searching tagged race photos (`jerseynum serve`).

Type a bib number, get a grid of the photos showing it, with the bib's box drawn over each thumbnail; or a
runner's name, where the index has a start list; open a photo to see every number read in it, how it was decided
(read, snapped to the start list, propagated from another photo of the same runner) and the same person's other
photos. The boxes are CSS (percentages of the photo's size), so the server only ever sends the original file or
a thumbnail.

It is the standard library's threaded HTTP server and a few string templates, not a web framework: the page
is meant for one person on their own machine (or a laptop at the finish line), and keeping it dependency-free
means `jerseynum serve` works wherever the tagger does. Routes: `/` (search by bib or name), `/photo/ID`,
`/image/ID` (`?download=1`), `/thumb/ID` (`?size=2x`), `/zip?q=N`, `/api/search`, `/api/photos/ID`, and where
`serve` allows them `/selfie` and `/review`. Files are only ever served by photo
id, looked up in the index and checked to lie inside the photo folder; every value written into the HTML is
escaped. Each request opens its own read-only `PhotoIndex` (SQLite connections cannot cross threads; WAL mode
lets the page read while a tagger is still writing; read-only, it works on an index it may not write).

Hostile input and load: the listen backlog takes a burst of 1024 connections; a connection whose request has not
fully arrived within `timeout` seconds (10 by default, the whole request line and headers, not each read) is
closed; the Host header must be an IP address, localhost, the host the server is bound to or one of
`allowed_hosts` (any other name is what a DNS-rebinding page would send); every response, the standard library's
own error pages included, carries the security headers; photos are decoded for thumbnails one per core at a
time, so a flood of thumbnail requests queues rather than filling the memory.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import html
import io
import ipaddress
import json
import logging
import math
import mimetypes
import os
import re
import socket
import tempfile
import threading
import time
import zipfile
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import cv2
import numpy as np

from jerseynum.io import ImageError, decode_image, read_image_file
from jerseynum.photos.index import BibNumber, IndexFileError, Match, PhotoIndex, PhotoRecord, bib_digits

log = logging.getLogger(__name__)

PER_PAGE = 24
REVIEW_BELOW = 0.9  # the review page lists shown numbers less likely right than this
MAX_FORM = 10_000  # bytes of a review form
# A selfie matches a runner within this face distance: dlib's own same-person threshold (a selfie is a large,
# sharp face; the event's clusters use 0.45 between two small ones)
SELFIE_DISTANCE = 0.6
MAX_UPLOAD = 10_000_000  # bytes of a selfie
MAX_ZIP = 500  # photos in one "download all" zip
BROWSER_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}  # served as they are; others as a JPEG
THUMB_SIZE = 320  # px, the longer side
MAX_QUERY = 12  # digits
MAX_NAME = 60  # characters of a name query
MAX_ENTRANTS = 20  # entrants listed for one name query
LISTEN_BACKLOG = 1024  # connections the kernel queues before accept(); the library's 5 made bursts wait 20 s
REQUEST_TIMEOUT = 10.0  # seconds for a request to arrive, and for each response write
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
# A Host header: a bracketed IPv6 literal or a name (or IPv4 literal), then an optional port.
HOST_HEADER = re.compile(r"(?:\[(?P<ipv6>[^\]]+)\]|(?P<name>[^:\[\]]+))(?::[0-9]{1,5})?")

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
  .label {{ position: absolute; bottom: calc(100% + 3px); left: -3px; white-space: nowrap; background: #ff2d55; color: #fff;
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
  h2.same, h2.maybe {{ margin-top: 1.5rem; }}
  @media (max-width: 600px) {{
    body {{ padding: .5rem; }}
    .grid {{ grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: .5rem; }}
    .label {{ font-size: .65rem; opacity: .85; }}  /* above its box: small, so it hides no neighbour's bib */
    input[type=search] {{ width: 7em; }}
  }}
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
  <form action="/" method="get" role="search">
    <input type="search" name="name" value="{name}" placeholder="runner's name" maxlength="{max_name}"
           aria-label="runner's name (from the start list)">
    <button type="submit">Find</button>
  </form>
</header>
<main>
{body}
</main>
</body>
</html>
"""


def clean_query(raw: str) -> str:
    """The digits of a query as ASCII (full-width "３６３８" is 3638), at most MAX_QUERY of them."""
    return bib_digits(raw)[:MAX_QUERY]


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def host_allowed(header: str | None, names: frozenset[str]) -> bool:
    """Whether a request's Host header names this server: any IP address, or one of `names` (lower case).

    A DNS-rebinding page reaches the server under its own domain name, which is in its Host header; an IP address
    involves no DNS, so it is always safe. No header at all (an HTTP/1.0 client, never a browser) is allowed."""
    if header is None:
        return True
    match = HOST_HEADER.fullmatch(header.strip())
    if match is None:
        return False
    if match["ipv6"]:
        return _is_ip_address(match["ipv6"])
    name = match["name"].lower().removesuffix(".")  # "localhost." is the same name, fully qualified
    return _is_ip_address(name) or name in names


def parse_page(raw: str) -> int:
    try:
        return max(1, int(raw))
    except ValueError:
        return 1


def _percent(value: float, total: int) -> float:
    return min(100.0, max(0.0, 100.0 * value / total))


def box_style(number: BibNumber, photo: PhotoRecord) -> str | None:
    """The CSS placing a number's box over its photo (percentages of the photo's size); None where unknown."""
    x1, y1, x2, y2 = number.box
    if not photo.width or not photo.height or x2 <= x1 or y2 <= y1:  # a number a person added has no box
        return None
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

    def __init__(self, index_path: Path, photos_root: Path, host_names: frozenset[str],
                 selfie_search: bool = False, review_password: str | None = None) -> None:  # fmt: skip
        self.index_path = Path(index_path)
        self.photos_root = Path(photos_root).resolve()
        self.host_names = host_names
        self.selfie_search = selfie_search
        self.review_password = review_password or None  # None: no review page
        self._writing = threading.Lock()  # one correction (and re-decision of the event) at a time
        self._face_models = None  # (finder, embedder), built on the first selfie
        self._face_lock = threading.Lock()
        # Keyed by the file and its content hash, so a re-tagged, changed photo gets a fresh thumbnail.
        self.thumbnail = functools.lru_cache(maxsize=512)(self._make_thumbnail)
        # Decoding is CPU-bound and a 24 MP photo takes 70 MB: more at once than cores only costs memory.
        self._decoding = threading.BoundedSemaphore(os.cpu_count() or 2)

    def index(self) -> PhotoIndex:
        return PhotoIndex(self.index_path, read_only=True)

    def selfie_matches(self, data: bytes) -> list[tuple[float, PhotoRecord]]:
        """The photos of the runner whose face is in the uploaded selfie, nearest face first, as (face distance,
        photo). The upload lives in memory for this call only: never stored, never logged. Raises `ImageError`
        where it is no image or shows no face."""
        from jerseynum.photos.identity import FaceEmbedder
        from jerseynum.photos.runners import FaceRunnerFinder

        # a phone's photo is often HEIC, told by its header (`decode_image` goes by the name)
        heif = data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"hevc")
        image, _ = decode_image(data, "selfie.heic" if heif else "selfie", 40_000_000)
        with self._face_lock:  # the face models are not thread-safe; one selfie at a time is plenty
            if self._face_models is None:
                self._face_models = FaceRunnerFinder(), FaceEmbedder()
            finder, embedder = self._face_models
            faces = finder.faces(image)
            if not faces:
                raise ImageError("selfie", "no face found: a photo of your face, from the front, works best")
            box, _ = max(faces, key=lambda face: (face[0][2] - face[0][0]) * (face[0][3] - face[0][1]))
            query = embedder.embed(image, box)
        if query is None:
            raise ImageError("selfie", "the face is too small: come closer")
        with self.index() as index:
            best: dict[str, float] = {}
            for runner in index.runner_reads():
                if runner.read.face_embedding is not None:
                    distance = float(np.linalg.norm(runner.read.face_embedding - query))
                    if distance <= SELFIE_DISTANCE and distance < best.get(runner.path, math.inf):
                        best[runner.path] = distance
            found = [(distance, index.photo_at(path)) for path, distance in best.items()]
        return sorted((item for item in found if item[1] is not None), key=lambda item: (item[0], item[1].path))

    def file_of(self, photo: PhotoRecord) -> Path | None:
        """The photo's file, only if it lies inside the photo folder (symlinks and '..' resolved) and exists."""
        path = (self.photos_root / photo.path).resolve()
        if not path.is_relative_to(self.photos_root) or not path.is_file():
            return None
        return path

    def rendition(self, path: Path) -> bytes:
        """A full-size JPEG of a photo whose format browsers do not show (TIFF, RAW, HEIC)."""
        with self._decoding:
            image, _ = read_image_file(path)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise ImageError(str(path), "cannot encode a JPEG rendition")
        return encoded.tobytes()

    def _make_thumbnail(self, path: Path, sha256: str, size: int = 0) -> bytes:
        """A JPEG thumbnail of the photo; raises `ImageError` for a file gone, unreadable or over the pixel budget
        (an error is not cached: a photo put back is served again)."""
        with self._decoding:
            image, _ = read_image_file(path)
        height, width = image.shape[:2]
        scale = (size or THUMB_SIZE) / max(height, width)
        if scale < 1:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise ImageError(str(path), "cannot encode a thumbnail")
        return encoded.tobytes()

    # --- pages ---------------------------------------------------------------------------------------

    def search_page(self, query: str, exact: bool, page: int) -> str:
        with self.index() as index:
            if not query:
                photos, numbered = index.counts()
                body = (f'<p>{photos} photos in the index, {numbered} with numbers read. '
                        "Type a bib number to find its photos.</p>")  # fmt: skip
                if self.selfie_search:
                    body += '<p><a href="/selfie">Or find your photos by a photo of your face.</a></p>'
                return self.render("Race photos", body)
            found = index.search(query, partial=not exact, max_distance=0 if exact else 1)
        # The runner's own photos first and alone; near matches (another bib containing the number, or one digit
        # off) are strangers' more often than not, so they come apart, as "maybe you".
        matches = [m for m in found if m.kind == "exact"]
        near = [m for m in found if m.kind != "exact"]
        maybe = ""
        if near and page == 1:
            cards = "\n".join(self._card(match) for match in near[:PER_PAGE])
            more = f" (the first {PER_PAGE})" if len(near) > PER_PAGE else ""
            maybe = (f'<h2 class="maybe">Maybe you: {len(near)} photos of near numbers{more}</h2>\n'
                     f'<div class="grid maybe">\n{cards}\n</div>')  # fmt: skip
        if not matches:
            body = f'<p class="empty">no photos for {_e(query)}</p>\n{maybe}'
            return self.render(f"{query}: no photos", body, query, exact)
        last = math.ceil(len(matches) / PER_PAGE)
        page = min(page, last)
        shown = matches[(page - 1) * PER_PAGE : page * PER_PAGE]
        cards = "\n".join(self._card(match) for match in shown)
        plural = "photo" if len(matches) == 1 else "photos"
        share = _search_href(query, exact=True)
        body = (f'<p class="muted">{len(matches)} {plural} for {_e(query)} · <a href="/zip?q={_e(query)}" download>'
                f'download all (zip)</a> · <a href="{_e(share)}">link to share</a></p>\n'
                f'<div class="grid">\n{cards}\n</div>\n{self._pages(query, exact, page, last)}\n{maybe}')  # fmt: skip
        return self.render(f"{query}: {len(matches)} {plural}", body, query, exact)

    @staticmethod
    def _card(match: Match) -> str:
        photo, number = match.photo, match.number
        style = box_style(number, photo)
        box = f'<div class="box" style="{_e(style)}"></div>' if style else ""
        # the photo view then leads back to this search, and on to its other photos
        href = f"/photo/{photo.id}?{urlencode({'q': number.number if match.kind == 'exact' else ''})}"
        return (
            f'<a class="card" href="{_e(href)}" title="{_e(photo.path)}">'
            f'<div class="frame" style="{_e(_aspect(photo))}"><img src="/thumb/{photo.id}"'
            f' srcset="/thumb/{photo.id}?size=2x 2x" alt="{_e(photo.path)}"'
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

    def photo_page(self, photo_id: int, query: str = "") -> str | None:
        """A photo, its numbers, the same person's other photos; with `query` (the bib searched for), links back to
        that search and to the previous and next of its photos."""
        with self.index() as index:
            photo = index.photo(photo_id)
            same = index.same_runner(photo.path) if photo else []
            ids = [m.photo.id for m in index.search(query, partial=False, max_distance=0)] if query else []
        if photo is None:
            return None
        parts = [self._navigation(photo_id, query, ids), f"<h2>{_e(photo.path)}</h2>",
                 f'<p><a href="/image/{photo_id}?download=1" download>download the photo</a></p>']
        if photo.error:
            parts.append(f'<p class="muted">could not be tagged: {_e(photo.error)}</p>')
        if photo.numbers:
            items = " · ".join(f'<a href="{_e(_search_href(n.number))}">{_e(n.number)}</a> '
                               f'<span class="muted">{n.confidence:.0%}{_e(f" ({n.how})" if n.how else "")}</span>'
                               for n in photo.numbers)  # fmt: skip
            parts.append(f'<p class="numbers">Numbers read: {items}</p>')
        elif not photo.error:
            parts.append('<p class="muted">no numbers read in this photo</p>')
        if photo.width and photo.height:
            boxes = []
            for number in photo.numbers:
                if box_style(number, photo) is None:
                    continue
                label = f"{number.number} · {number.confidence:.0%}"
                boxes.append(f'<div class="box" style="{_e(box_style(number, photo))}">'
                             f'<span class="label">{_e(label)}</span></div>')  # fmt: skip
            # Fit the whole photo in the window: as wide as the page, as high as what is left below the header.
            fit = f"{_aspect(photo)};width:min(100%, calc(max(200px, 100vh - 13rem) * {photo.width} / {photo.height}))"
            parts.append(f'<div class="frame photo" style="{_e(fit)}"><img src="/image/{photo.id}"'
                         f' alt="{_e(photo.path)}">{"".join(boxes)}</div>')  # fmt: skip
        for k, (_, others) in enumerate(same, 1):
            if others:  # the runners' identity clusters (photos/identity.py)
                who = "this runner" if len(same) == 1 else f"runner {k} of this photo"
                parts.append(f'<h2 class="same">{len(others)} more photos of {who}</h2><div class="grid">'
                             + "".join(self._photo_card(p) for p in others[:PER_PAGE]) + "</div>")  # fmt: skip
        return self.render(photo.path, "\n".join(parts))

    def name_page(self, name: str) -> str:
        """The photos of the start list's entrants whose name matches, by their bib."""
        with self.index() as index:
            start_list = index.start_list()
            if start_list is None:
                body = ('<p class="empty">this index has no start list, so names cannot be searched: give it one'
                        " with <code>jerseynum start-list --index INDEX runners.csv</code></p>")  # fmt: skip
                return self.render(f"{name}: no start list", body, name=name)
            entrants = start_list.find_name(name)
            found = [(e, index.search(e.bib, partial=False, max_distance=0)) for e in entrants[:MAX_ENTRANTS]]
        if not found:
            return self.render(f"{name}: nobody", f'<p class="empty">no entrant named {_e(name)}</p>', name=name)
        parts = []
        for entrant, matches in found:
            category = f", {entrant.category}" if entrant.category else ""
            parts.append(f"<h2>{_e(entrant.name)} <span class=\"muted\">bib {_e(entrant.bib)}{_e(category)},"
                         f" {len(matches)} photos</span></h2>")  # fmt: skip
            parts.append('<div class="grid">' + "".join(self._card(m) for m in matches[:PER_PAGE]) + "</div>")
        more = (
            f'<p class="muted">and {len(entrants) - MAX_ENTRANTS} more entrants</p>'
            if len(entrants) > MAX_ENTRANTS
            else ""
        )
        return self.render(f"{name}: {len(entrants)} entrants", "\n".join(parts) + more, name=name)

    def selfie_page(self, results: list[tuple[float, PhotoRecord]] | None = None, message: str = "") -> str:
        form = ('<form action="/selfie" method="post" enctype="multipart/form-data" class="selfie">'
                '<label>A photo of your face: <input type="file" name="selfie" accept="image/*" required></label>'
                ' <button type="submit">Find my photos</button></form>'
                '<p class="muted">Your photo is compared with the faces of the runners found in the race photos and'
                " then forgotten: it is held in memory for that moment only, never stored or logged.</p>")  # fmt: skip
        parts = [form]
        if message:
            parts.append(f'<p class="empty">{_e(message)}</p>')
        if results is not None and not message:
            if not results:
                parts.append('<p class="empty">no runner with this face was found in the photos</p>')
            else:
                cards = "".join(self._photo_card(photo, f"face distance {distance:.2f} ({_likeness(distance)})")
                                for distance, photo in results[:PER_PAGE])  # fmt: skip
                parts.append(f'<p class="muted">{len(results)} photos of a runner with this face, nearest first</p>'
                             f'<div class="grid">{cards}</div>')  # fmt: skip
        return self.render("Find my photos by a selfie", "\n".join(parts))

    def review_token(self) -> str:
        """What each review form carries: a page of another site, which cannot read it, cannot post a correction
        in the reviewer's name (the browser would send their password along)."""
        return hmac.new(self.review_password.encode(), b"jerseynum review", hashlib.sha256).hexdigest()

    def review_page(self, done: str = "", below: float = REVIEW_BELOW) -> str:
        """The uncertain numbers, least likely first, each with confirm / remove / correct; then the photos with
        runners found but no number, each with a field to add one. Access keys: c confirm, x remove."""
        with self.index() as index:
            uncertain, unread = index.review(below)
        token = _e(self.review_token())
        parts = [f'<p class="muted">{_e(done)}</p>' if done else "",
                 f"<h2>{len(uncertain)} numbers less likely right than {below:.0%}, least likely first</h2>"]
        cards = []
        for record, number in uncertain[:PER_PAGE]:
            hidden = (f'<input type="hidden" name="token" value="{token}"><input type="hidden" name="below"'
                      f' value="{below}"><input type="hidden" name="path"'
                      f' value="{_e(record.path)}"><input type="hidden" name="number" value="{_e(number.number)}">')
            cards.append(
                f'<div class="card">{self._photo_card(record, f"{number.number} · {number.confidence:.0%} · {number.status}")}'
                f'<form method="post" action="/review">{hidden}'
                '<button name="action" value="confirm" accesskey="c">confirm</button> '
                '<button name="action" value="remove" accesskey="x">remove</button> '
                '<input name="new" size="6" inputmode="numeric" aria-label="the right number">'
                ' <button name="action" value="replace">correct</button></form></div>'
            )  # fmt: skip
        parts.append('<div class="grid">' + "".join(cards) + "</div>")
        parts.append(f"<h2>{len(unread)} photos with a runner but no number</h2>")
        adds = []
        for record, _ in unread[:PER_PAGE]:
            adds.append(f'<div class="card">{self._photo_card(record)}<form method="post" action="/review">'
                        f'<input type="hidden" name="token" value="{token}"><input type="hidden" name="below"'
                        f' value="{below}"><input type="hidden" name="path"'
                        f' value="{_e(record.path)}"><input name="new" size="6" inputmode="numeric"'
                        ' aria-label="the number"> <button name="action" value="add">add</button></form></div>')  # fmt: skip
        parts.append('<div class="grid">' + "".join(adds) + "</div>")
        return self.render("Review", "\n".join(parts))

    def apply_review(self, fields: dict[str, str]) -> str:
        """A reviewer's correction, saved and the event re-decided; what was done, in words."""
        from jerseynum.photos.event import redecide

        path, action = fields.get("path", ""), fields.get("action", "")
        number, new = bib_digits(fields.get("number", "")), bib_digits(fields.get("new", ""))
        said = {"confirm": [(number, "confirm")], "remove": [(number, "remove")], "add": [(new, "add")],
                "replace": [(number, "remove"), (new, "add")]}.get(action)  # fmt: skip
        if said is None or not all(digits for digits, _ in said):
            raise ValueError("a correction needs its number: type the digits")
        with self._writing, PhotoIndex(self.index_path) as index:
            if path not in index.known():
                raise ValueError("that photo is not in the index")
            for digits, what in said:
                index.correct(path, digits, what)
            redecide(index)
        return f"{path}: " + ", ".join(f"{what} {digits}" for digits, what in said)

    @staticmethod
    def _navigation(photo_id: int, query: str, ids: list[int]) -> str:
        if not query:
            return '<nav class="pages"><a href="/">&laquo; search</a></nav>'
        links = [f'<a href="{_e(_search_href(query))}">&laquo; all photos of {_e(query)}</a>']
        if photo_id in ids:
            at = ids.index(photo_id)
            for step, label, rel in ((-1, "previous", "prev"), (1, "next", "next")):
                if 0 <= at + step < len(ids):
                    href = f"/photo/{ids[at + step]}?{urlencode({'q': query})}"
                    links.append(f'<a href="{_e(href)}" rel="{rel}" id="{rel}">{label}</a>')
            links.append(f'<span class="muted">{at + 1} of {len(ids)}</span>')
        return '<nav class="pages">' + "".join(links) + "</nav>"

    @staticmethod
    def _photo_card(photo: PhotoRecord, caption: str | None = None) -> str:
        numbers = caption or " ".join(n.number for n in photo.numbers) or "no number"
        return (f'<a class="card" href="/photo/{photo.id}" title="{_e(photo.path)}">'
                f'<div class="frame" style="{_e(_aspect(photo))}"><img src="/thumb/{photo.id}"'
                f' srcset="/thumb/{photo.id}?size=2x 2x" alt="{_e(photo.path)}"'
                f' loading="lazy"></div><div class="caption">{_e(numbers)}</div></a>')  # fmt: skip

    @staticmethod
    def render(title: str, body: str, query: str = "", exact: bool = False, name: str = "") -> str:
        return PAGE.format(title=_e(title), query=_e(query), max_query=MAX_QUERY, name=_e(name), max_name=MAX_NAME,
                           exact_checked=" checked" if exact else "", body=body)  # fmt: skip


def _photo_json(photo: PhotoRecord) -> dict:
    """A photo for the JSON API: its id, path, size, links, and its shown numbers with boxes and decisions."""
    return {"id": photo.id, "path": photo.path, "width": photo.width, "height": photo.height, "error": photo.error,
            "image": f"/image/{photo.id}", "thumbnail": f"/thumb/{photo.id}", "page": f"/photo/{photo.id}",
            "numbers": [{"number": n.number, "confidence": n.confidence, "box": list(n.box), "decision": n.status,
                         "read": n.read, "reason": n.reason, "source_photo": n.source} for n in photo.numbers]}  # fmt: skip


def _below(raw: str) -> float:
    """The review page's probability bound from a query: REVIEW_BELOW where absent or not a number in 0-1.01."""
    try:
        value = float(raw)
    except ValueError:
        return REVIEW_BELOW
    return value if 0 <= value <= 1.01 else REVIEW_BELOW


def _likeness(distance: float) -> str:
    """How sure a face match is, in words (dlib's face distances: the same person mostly under 0.45)."""
    return "very likely you" if distance < 0.4 else "likely you" if distance < 0.5 else "maybe you"


ROUTE = re.compile(r"/(photo|image|thumb)/([0-9]{1,18})")


class _RequestReader(io.RawIOBase):
    """The connection's bytes under one deadline for the whole request: a client trickling a byte every few
    seconds (slowloris) is cut off as surely as one that sends nothing."""

    def __init__(self, connection: socket.socket, seconds: float) -> None:
        self.connection = connection
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self.connection.settimeout(left)
        try:
            return self.connection.recv_into(buffer)
        finally:
            self.connection.settimeout(self.seconds)  # the response's writes get the whole timeout


class Handler(BaseHTTPRequestHandler):
    server_version = "jerseynum"
    # The library's default, HTTP/0.9, answers a malformed request line with a bare body: no status line and
    # no headers, so no security headers either.
    default_request_version = "HTTP/1.0"
    timeout = REQUEST_TIMEOUT  # the socket's; StreamRequestHandler.setup applies it
    app: App  # set on the subclass made per server

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the library's reader, replaced by one with a deadline for the whole request
        self.rfile = io.BufferedReader(_RequestReader(self.connection, self.timeout))

    def end_headers(self) -> None:
        # Here rather than in _send, so the library's own error pages (400, 414, 431, 501) carry them too.
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        super().end_headers()

    def do_GET(self) -> None:
        try:
            if not self._refused_host():
                self._dispatch()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the browser went away (a new search typed before the thumbnails arrived) or stopped reading
        except Exception:
            log.exception("error serving %s", self.path)
            self._send_page(HTTPStatus.INTERNAL_SERVER_ERROR, self._error_page("something went wrong"))

    def _refused_host(self) -> bool:
        """Refuse (400, sent) a request naming this server by a host name it was not given: what a DNS-rebinding
        page would send."""
        hosts = self.headers.get_all("Host") or [None]
        if len(hosts) == 1 and host_allowed(hosts[0], self.app.host_names):
            return False
        message = "unknown host name: start jerseynum serve with --allow-host NAME to use this name"
        self._send_page(HTTPStatus.BAD_REQUEST, self._error_page(message))
        return True

    def _body_length(self, limit: int) -> int | None:
        """The declared length of a posted body, where it is 1 to `limit` bytes; else None, and the connection is
        closed after the answer, so an unread body (or a flood of one) is never read."""
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if 0 < length <= limit:
            return length
        self.close_connection = True
        return None

    def do_POST(self) -> None:
        """Only a selfie is ever posted (and only where `serve --selfie-search` allows it)."""
        try:
            if self._refused_host():
                return None
            if urlsplit(self.path).path == "/review" and self.app.review_password is not None:
                return self._post_review()
            if urlsplit(self.path).path != "/selfie" or not self.app.selfie_search:
                self.close_connection = True  # the body, if any, is not read
                return self._send_page(HTTPStatus.METHOD_NOT_ALLOWED, self._error_page("nothing to post here"))
            length = self._body_length(MAX_UPLOAD)
            if length is None:
                message = f"a selfie of at most {MAX_UPLOAD // 1_000_000} MB, please"
                return self._send_page(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, self.app.selfie_page(message=message))
            upload = _uploaded_file(self.headers.get("Content-Type", ""), self.rfile.read(length), "selfie")
            try:
                results = self.app.selfie_matches(upload) if upload else None
                page = self.app.selfie_page(results, "" if upload else "no photo was sent")
            except ImageError as error:
                page = self.app.selfie_page(message=f"{error.reason}")
            self._send_page(HTTPStatus.OK, page)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        except Exception:
            log.exception("error serving a selfie")  # the upload itself is never logged
            self._send_page(HTTPStatus.INTERNAL_SERVER_ERROR, self._error_page("something went wrong"))

    def _api(self, url) -> None:
        """The JSON API beside the page: `/api/search?bib=N[&near=1]` (the photos of a bib, and with `near` the near
        numbers apart) and `/api/photos/ID` (a photo, its numbers with boxes and how each was decided)."""
        params = parse_qs(url.query)
        if url.path == "/api/search":
            bib = clean_query(params.get("bib", [""])[0])
            if not bib:
                return self._send_json(HTTPStatus.BAD_REQUEST, {"error": "give the bib: /api/search?bib=1234"})
            near = params.get("near", [""])[0] == "1"
            with self.app.index() as index:
                found = index.search(bib, partial=near, max_distance=1 if near else 0)
            photos = [_photo_json(m.photo) | {"match": m.kind} for m in found]
            return self._send_json(HTTPStatus.OK, {"bib": bib, "photos": [p for p in photos if p["match"] == "exact"],
                                                   "near": [p for p in photos if p["match"] != "exact"]})  # fmt: skip
        route = re.fullmatch(r"/api/photos/([0-9]{1,18})", url.path)
        if route:
            with self.app.index() as index:
                photo = index.photo(int(route[1]))
            if photo is not None:
                return self._send_json(HTTPStatus.OK, _photo_json(photo))
        return self._send_json(HTTPStatus.NOT_FOUND, {"error": "no such resource"})

    def _send_json(self, status: HTTPStatus, data: dict) -> None:
        self._send(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8")

    def _reviewer(self) -> bool:
        """Whether the request carries the review password (HTTP Basic, any user name); else a 401 is sent."""
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                _, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                password = ""
            if hmac.compare_digest(password.encode(), self.app.review_password.encode()):
                return True
        self.close_connection = True
        body = self._error_page("the review page needs the password given to jerseynum serve").encode()
        self.send_response(HTTPStatus.UNAUTHORIZED)
        self.send_header("WWW-Authenticate", 'Basic realm="jerseynum review", charset="UTF-8"')
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return False

    def _post_review(self) -> None:
        if not self._reviewer():
            return None
        length = self._body_length(MAX_FORM)
        if length is None:
            return self._send_page(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, self._error_page("that form is too large"))
        fields = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode("utf-8", "replace")).items()}
        if not hmac.compare_digest(fields.get("token", ""), self.app.review_token()):
            return self._send_page(HTTPStatus.FORBIDDEN, self._error_page("this form did not come from the review page"))
        try:
            done = self.app.apply_review(fields)
        except (ValueError, IndexFileError) as error:
            done = f"not saved: {error}"
        # After a POST, a redirect: reloading the page does not post the correction twice.
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", "/review?" + urlencode({"done": done, "below": _below(fields.get("below", ""))}))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        """GET's headers without its body (`_send` and friends write no body for a HEAD)."""
        self.do_GET()

    def _not_modified(self, etag: str) -> bool:
        """Answer 304 where the browser already holds this version (`If-None-Match`)."""
        if etag not in (self.headers.get("If-None-Match") or ""):
            return False
        self.send_response(HTTPStatus.NOT_MODIFIED)
        self.send_header("ETag", etag)
        self.send_header("Cache-Control", "private, max-age=300")
        self.end_headers()
        return True

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/":
            params = parse_qs(url.query)
            name = params.get("name", [""])[0].strip()[:MAX_NAME]
            if name:
                return self._send_page(HTTPStatus.OK, self.app.name_page(name))
            query = clean_query(params.get("q", [""])[0])
            exact = params.get("exact", [""])[0] == "1"
            page = parse_page(params.get("page", ["1"])[0])
            return self._send_page(HTTPStatus.OK, self.app.search_page(query, exact, page))
        if url.path.startswith("/api/"):
            return self._api(url)
        if url.path == "/review":
            if self.app.review_password is None:
                return self._not_found()
            if not self._reviewer():
                return None
            params = parse_qs(url.query)
            done = params.get("done", [""])[0][:200]
            return self._send_page(HTTPStatus.OK, self.app.review_page(done, _below(params.get("below", [""])[0])))
        if url.path == "/selfie":
            if not self.app.selfie_search:
                return self._not_found()
            return self._send_page(HTTPStatus.OK, self.app.selfie_page())
        if url.path == "/zip":
            return self._send_zip(clean_query(parse_qs(url.query).get("q", [""])[0]))
        route = ROUTE.fullmatch(url.path)  # the raw path: '%2e%2e' and friends simply do not match
        if route is None:
            return self._not_found()
        kind, photo_id = route[1], int(route[2])
        if kind == "photo":
            page = self.app.photo_page(photo_id, clean_query(parse_qs(url.query).get("q", [""])[0]))
            return self._send_page(HTTPStatus.OK, page) if page else self._not_found()
        with self.app.index() as index:
            photo = index.photo(photo_id)
        path = self.app.file_of(photo) if photo else None
        if path is None:
            return self._not_found()
        if kind == "image":
            if parse_qs(url.query).get("download") == ["1"]:
                return self._send_file(path, download=True)
            if path.suffix.lower() in BROWSER_SUFFIXES:
                return self._send_file(path)
            try:  # TIFF, RAW, HEIC: a JPEG rendition, which every browser shows
                rendition = self.app.rendition(path)
            except ImageError as error:
                log.debug("no rendition: %s", error)
                return self._not_found()
            return self._send(HTTPStatus.OK, rendition, "image/jpeg")
        # ?size=2x: twice the pixels, for the sharp screens of phones (the cards' srcset)
        size = 2 * THUMB_SIZE if parse_qs(url.query).get("size") == ["2x"] else THUMB_SIZE
        etag = f'"{photo.sha256[:20]}-{size}"'  # a re-tagged, changed photo has a new hash
        if self._not_modified(etag):
            return None
        try:
            thumbnail = self.app.thumbnail(path, photo.sha256, size)
        except ImageError as error:  # undecodable, or deleted since file_of looked
            log.debug("no thumbnail: %s", error)
            return self._not_found()
        return self._send(HTTPStatus.OK, thumbnail, "image/jpeg", cache=True, etag=etag)

    def _error_page(self, message: str) -> str:
        return self.app.render(message, f'<p class="error">{_e(message)}</p>')

    def _not_found(self) -> None:
        self._send_page(HTTPStatus.NOT_FOUND, self._error_page("not found"))

    def _send_page(self, status: HTTPStatus, page: str) -> None:
        self._send(status, page.encode("utf-8"), "text/html; charset=utf-8")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, cache: bool = False,
              etag: str | None = None) -> None:  # fmt: skip
        self._send_head(status, content_type, len(body), cache, etag=etag)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_head(self, status: HTTPStatus, content_type: str, length: int, cache: bool,
                   attachment: str | None = None, etag: str | None = None) -> None:  # fmt: skip
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if etag is not None:
            self.send_header("ETag", etag)
        if attachment is not None:  # RFC 6266: an ASCII fallback and the UTF-8 name
            ascii_name = attachment.encode("ascii", "replace").decode().replace('"', "_")
            self.send_header("Content-Disposition", f"attachment; filename=\"{ascii_name}\"; "
                                                    f"filename*=UTF-8''{quote(attachment)}")  # fmt: skip
        self.send_header("Content-Length", str(length))
        self.send_header("Cache-Control", "private, max-age=300" if cache else "no-store")
        self.end_headers()

    def _send_file(self, path: Path, download: bool = False) -> None:
        """The photo file, streamed (a flood of requests for a 30 MB photo holds no copies of it in memory); with
        `download`, as an attachment under its own name."""
        try:
            file = path.open("rb")  # once open, the file stays readable even if it is deleted
        except OSError:  # deleted or made unreadable since file_of looked
            return self._not_found()
        with file:
            size = os.fstat(file.fileno()).st_size
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            self._send_head(HTTPStatus.OK, content_type, size, cache=True, attachment=path.name if download else None)
            if self.command != "HEAD":
                self.connection.sendfile(file, 0, size)

    def _send_zip(self, query: str) -> None:
        """Every photo of a bib (exact matches, at most MAX_ZIP) as one zip, built in a temporary file."""
        with self.app.index() as index:
            matches = index.search(query, partial=False, max_distance=0)[:MAX_ZIP] if query else []
            files = [(m.photo.path, self.app.file_of(m.photo)) for m in matches]
        files = [(name, path) for name, path in files if path is not None]
        if not files:
            return self._not_found()
        with tempfile.TemporaryFile() as archive:
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zipped:  # photos are compressed already
                for name, path in files:
                    try:
                        zipped.write(path, name.replace("/", "__"))
                    except OSError:  # deleted since: the rest still comes
                        continue
            size = archive.tell()
            archive.seek(0)
            self._send_head(HTTPStatus.OK, "application/zip", size, cache=False, attachment=f"bib-{query}.zip")
            if self.command != "HEAD":
                self.connection.sendfile(archive, 0, size)

    def log_message(self, format: str, *args) -> None:  # the signature of http.server
        log.debug("%s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG
    daemon_threads = True


def _uploaded_file(content_type: str, body: bytes, field: str) -> bytes | None:
    """The bytes of one file field of a multipart/form-data body (None where there is none)."""
    from email.parser import BytesParser
    from email.policy import HTTP

    if not content_type.startswith("multipart/form-data"):
        return None
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    for part in message.iter_parts() if message.is_multipart() else ():
        if part.get_param("name", header="content-disposition") == field:
            return part.get_payload(decode=True) or None
    return None


def make_server(index_path: Path, photos_root: Path, host: str = "127.0.0.1", port: int = 0,
                allowed_hosts: tuple[str, ...] = (), timeout: float = REQUEST_TIMEOUT,
                selfie_search: bool = False, review_password: str | None = None) -> ThreadingHTTPServer:  # fmt: skip
    """A server for the page, not yet serving (call `serve_forever()`); port 0 picks a free port.

    Requests must name the server by IP address, `localhost`, `host`, or one of `allowed_hosts` (host names,
    any case); `timeout` is the seconds a connection has to send its request, and each response write."""
    names = {"localhost", host, *allowed_hosts}
    host_names = frozenset(name.strip().lower().removesuffix(".") for name in names if name.strip())
    app = App(index_path, photos_root, host_names, selfie_search, review_password)
    handler = type("BoundHandler", (Handler,), {"app": app, "timeout": timeout})
    return _Server((host, port), handler)


def serve_forever(index_path: Path, photos_root: Path, host: str, port: int,
                  allowed_hosts: tuple[str, ...] = (), selfie_search: bool = False,
                  review_password: str | None = None) -> None:  # fmt: skip
    """Serve the page until Ctrl-C."""
    server = make_server(index_path, photos_root, host, port, allowed_hosts, selfie_search=selfie_search,
                         review_password=review_password)  # fmt: skip
    shown_host = f"[{host}]" if ":" in host else host
    log.info("searching %s at http://%s:%d/ (Ctrl-C to stop)", photos_root, shown_host, server.server_address[1])
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
