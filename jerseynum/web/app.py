"""The race-photo site as a FastAPI app: HTML pages from the Jinja2 templates in `templates/`, and a JSON API
beside them, documented at `/api` (and as OpenAPI at `/openapi.json`).

Pages: `/` (search by bib, or by name where the index has a start list), `/photo/{id}` (a photo, its numbers,
how each was decided, the same person's other photos), `/image/{id}` (`?download=1`), `/thumb/{id}`
(`?size=2x`), `/zip?q=N`; where `serve` allows them, `/selfie` and `/review`. API: `/api/search?bib=N`,
`/api/photos/{id}`. Files are only ever served by photo id, looked up in the index and checked to lie inside
the photo folder; the templates escape every value; `guard.Guard` checks the Host header and adds the security
headers to every response.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import math
import os
import tempfile
import zipfile
from email.utils import formatdate
from http import HTTPStatus
from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qs, urlencode

import anyio
from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParameter
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from jerseynum.io import ImageError
from jerseynum.photos.index import IndexFileError, PhotoRecord, exact_and_near
from jerseynum.web.guard import Guard
from jerseynum.web.site import (
    BROWSER_SUFFIXES,
    MAX_ENTRANTS,
    MAX_NAME,
    MAX_QUERY,
    MAX_ZIP,
    PER_PAGE,
    THUMB_SIZE,
    PhotoSite,  # fmt: skip
    box_style,
    clean_query,
    likeness,
    parse_below,
    parse_page,
)
from jerseynum.wording import counted

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
MAX_FORM = 10_000  # bytes of a review form
MAX_UPLOAD = 10_000_000  # bytes of a selfie
BODY_TIMEOUT = 30.0  # seconds for a posted body to arrive
IMAGE_CACHE = {"Cache-Control": "private, max-age=300"}
PhotoId = Annotated[int, PathParameter(ge=1, le=10**18, description="the photo's id in the index")]


# --- the JSON API's shapes (they are also its OpenAPI schema) ------------------------------------------


class NumberOut(BaseModel):
    number: str = Field(description="the bib number, digits")
    confidence: float = Field(description="the probability that the number is right")
    box: list[int] = Field(description="x1, y1, x2, y2 in the photo's pixels; zeros where a person added it")
    decision: str = Field(description="read, snapped, propagated, completed, confirmed or corrected")
    read: str = Field(description="the number as read, where the decision changed it")
    reason: str = Field(description="why the decision was made, in words")
    source_photo: str | None = Field(description="for a propagated number, the photo it was read in")


class PhotoOut(BaseModel):
    id: int
    path: str = Field(description="the photo's path inside the photo folder")
    width: int | None
    height: int | None
    error: str | None = Field(description="why the photo could not be tagged, if it could not")
    image: str = Field(description="the photo (a JPEG rendition for TIFF, RAW and HEIC)")
    thumbnail: str
    page: str
    numbers: list[NumberOut] = Field(description="the numbers shown for the photo, most likely first")


class MatchOut(PhotoOut):
    match: str = Field(description="exact; or for near numbers, partial (another bib containing it) or fuzzy")


class SearchOut(BaseModel):
    bib: str
    photos: list[MatchOut] = Field(description="the photos of this bib")
    near: list[MatchOut] = Field(description="with near=true: photos of near numbers, strangers' more often")


class ErrorOut(BaseModel):
    error: str


def photo_json(photo: PhotoRecord) -> PhotoOut:
    numbers = [NumberOut(number=n.number, confidence=n.confidence, box=list(n.box), decision=n.status, read=n.read,
                         reason=n.reason, source_photo=n.source) for n in photo.numbers]  # fmt: skip
    return PhotoOut(id=photo.id, path=photo.path, width=photo.width, height=photo.height, error=photo.error,
                    image=f"/image/{photo.id}", thumbnail=f"/thumb/{photo.id}", page=f"/photo/{photo.id}",
                    numbers=numbers)  # fmt: skip


# --- helpers of the pages --------------------------------------------------------------------------------


def search_href(query: str, exact: bool = False, page: int = 1) -> str:
    params = {"q": query}
    if exact:
        params["exact"] = "1"
    if page > 1:
        params["page"] = str(page)
    return "/?" + urlencode(params)


def page_links(query: str, exact: bool, page: int, last: int) -> list[dict]:
    """The pager: previous, the first, the last and the pages around the current one, gaps, next."""
    if last == 1:
        return []
    links = []
    if page > 1:
        links.append({"text": "« prev", "href": search_href(query, exact, page - 1), "rel": "prev"})
    previous = 0
    for n in sorted({1, last, *range(max(1, page - 2), min(last, page + 2) + 1)}):
        if n > previous + 1:
            links.append({"text": "…", "gap": True})
        links.append(
            {"text": str(n), "current": True} if n == page else {"text": str(n), "href": search_href(query, exact, n)}
        )
        previous = n
    if page < last:
        links.append({"text": "next »", "href": search_href(query, exact, page + 1), "rel": "next"})
    return links


def _aspect(photo: PhotoRecord) -> str:
    return f"aspect-ratio:{photo.width}/{photo.height}" if photo.width and photo.height else ""


def uploaded_file(content_type: str, body: bytes, field: str) -> bytes | None:
    """The bytes of one file field of a multipart/form-data body (None where there is none), parsed in memory:
    a selfie is never spooled to disk."""
    from email.parser import BytesParser
    from email.policy import HTTP

    if not content_type.startswith("multipart/form-data"):
        return None
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    for part in message.iter_parts() if message.is_multipart() else ():
        if part.get_param("name", header="content-disposition") == field:
            return part.get_payload(decode=True) or None
    return None


async def read_body(request: Request, limit: int) -> bytes:
    """A posted body of 1 to `limit` bytes (declared and as sent), within BODY_TIMEOUT; else HTTPException 413
    (too large or absent) or 408 (too slow)."""
    try:
        declared = int(request.headers.get("content-length", ""))
    except ValueError:
        declared = -1
    if declared == 0:
        raise HTTPException(400, "nothing was sent")
    if not 0 < declared <= limit:
        raise HTTPException(
            413, f"at most {limit // 1_000_000 or limit // 1000} {'MB' if limit >= 1_000_000 else 'kB'}, please"
        )
    body = bytearray()
    with anyio.move_on_after(BODY_TIMEOUT) as scope:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise HTTPException(413, "that is more than it said it was")
    if scope.cancelled_caught:
        raise HTTPException(408, "the upload took too long")
    return bytes(body)


# --- the app ---------------------------------------------------------------------------------------------


class TemporaryFileResponse(FileResponse):
    """A file made for one response, removed once it is answered, whatever the answer: a Range header it cannot
    satisfy gets a 416 (a malformed one a 400) before a background task would run."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            Path(self.path).unlink(missing_ok=True)


def basic_password(authorization: str) -> str:
    """The password of a Basic Authorization header, decoded as UTF-8, the charset the review page asks for
    (FastAPI's HTTPBasic decodes ASCII only: "pässwort" was refused); "" where there is none."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return ""
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")[2]
    except (ValueError, UnicodeDecodeError):  # binascii.Error is a ValueError
        return ""


def zip_names(paths: list[str]) -> list[str]:
    """A download's name for each photo path: its folders joined into the name (day1/IMG_1.jpg ->
    day1__IMG_1.jpg), a name taken already numbered like a copy ("day1__IMG_1 (2).jpg")."""
    names, taken = [], set()
    for path in paths:
        flat = Path(path.replace("/", "__"))
        name, copy = flat.name, 1
        while name in taken:
            copy += 1
            name = f"{flat.stem} ({copy}){flat.suffix}"
        taken.add(name)
        names.append(name)
    return names


def create_app(site: PhotoSite, host_names: frozenset[str] = frozenset({"localhost"})) -> FastAPI:
    """The site of `site`'s index; requests must name it by an IP address or one of `host_names`."""
    app = FastAPI(title="jerseynum race photos", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json", description="Find race photos by bib number. The API answers from"
                  " the index that jerseynum tag made; every number comes with its box and how it was decided.")  # fmt: skip
    templates = Jinja2Templates(directory=TEMPLATES)
    templates.env.globals.update(box_style=box_style, aspect=_aspect, likeness=likeness, max_query=MAX_QUERY,
                                 max_name=MAX_NAME, selfie_search=site.selfie_search)  # fmt: skip
    templates.env.filters["percent"] = lambda value: f"{value:.0%}"
    templates.env.filters["counted"] = counted

    def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        context = {"query": "", "exact": False, "name": ""} | context
        return templates.TemplateResponse(request, template, context, status_code=status)

    def error_body(path: str, message: str) -> tuple[bytes, str]:
        """An error's body and content type: JSON under /api/, else the site's error page."""
        if path.startswith("/api/"):
            return json.dumps({"error": message}).encode(), "application/json"
        page = templates.get_template("error.html").render(title=message, message=message, query="", exact=False,
                                                           name="")  # fmt: skip
        return page.encode(), "text/html; charset=utf-8"

    def get(path: str, **options):
        """A GET route of a page or file that answers HEAD too (FastAPI's `get` does not; the API answers GET only,
        so that each operation has one OpenAPI id)."""
        return app.api_route(path, methods=["GET", "HEAD"], **options)

    app.add_middleware(Guard, host_names=host_names, error_page=error_body)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        try:
            phrase = HTTPStatus(error.status_code).phrase
        except ValueError:
            phrase = ""
        message = {"Not Found": "not found", "Method Not Allowed": "nothing to do here with that method"}.get(
            error.detail, error.detail if error.detail != phrase else phrase.lower()
        )
        body, content_type = error_body(request.url.path, message)
        return Response(body, error.status_code, headers=error.headers, media_type=content_type)

    @app.exception_handler(IndexFileError)
    async def index_unreadable(request: Request, error: IndexFileError) -> Response:
        # gone, replaced or broken while serving: the photographer reads why in the log, a visitor is told to wait
        log.error("%s", error)
        body, content_type = error_body(request.url.path, "the photo index cannot be read just now: try again later")
        return Response(body, 503, media_type=content_type)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        if request.url.path.startswith("/api/"):
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            return JSONResponse({"error": detail}, 422)
        return await http_error(request, HTTPException(404))  # /photo/abc: no such page

    def photo_file(photo_id: int) -> tuple[PhotoRecord, Path]:
        with site.index() as index:
            photo = index.photo(photo_id)
        path = site.file_of(photo) if photo else None
        if path is None:
            raise HTTPException(404)
        return photo, path

    # --- pages -------------------------------------------------------------------------------------------

    @get("/", response_class=HTMLResponse, include_in_schema=False)
    def search_page(request: Request, q: str = "", exact: str = "", page: str = "1", name: str = "") -> Response:
        name = name.strip()[:MAX_NAME]
        if name:
            return names_page(request, name)
        query, exact_only = clean_query(q), exact == "1"
        if not query:
            with site.index() as index:
                photos, numbered = index.counts()
            return render(request, "home.html", title="Race photos", photos=photos, numbered=numbered)
        result = site.search(query, exact_only)
        last = max(1, math.ceil(len(result.matches) / PER_PAGE))
        current = min(parse_page(page), last)
        title = f"{query}: {counted(len(result.matches), 'photo')}" if result.matches else f"{query}: no photos"
        return render(request, "search.html", title=title, query=query, exact=exact_only, result=result,
                      shown=result.matches[(current - 1) * PER_PAGE : current * PER_PAGE],
                      near=result.near[:PER_PAGE] if current == 1 else [], per_page=PER_PAGE,
                      pages=page_links(query, exact_only, current, last), share=search_href(query, exact=True),
                      zip_href="/zip?" + urlencode({"q": query}))  # fmt: skip

    def names_page(request: Request, name: str) -> Response:
        with site.index() as index:
            start_list = index.start_list()
            entrants = start_list.find_name(name) if start_list else []
            found = [(e, index.search(e.bib, partial=False, max_distance=0)) for e in entrants[:MAX_ENTRANTS]]
        title = f"{name}: no start list" if start_list is None else f"{name}: {counted(len(entrants), 'entrant')}"
        return render(request, "names.html", title=title, name=name, has_start_list=start_list is not None,
                      found=found, more=max(0, len(entrants) - MAX_ENTRANTS), per_page=PER_PAGE)  # fmt: skip

    @get("/photo/{photo_id}", response_class=HTMLResponse, include_in_schema=False)
    def photo_page(request: Request, photo_id: PhotoId, q: str = "") -> Response:
        """A photo; with `q` (the bib searched for), links back to that search and to its previous and next photo."""
        query = clean_query(q)
        with site.index() as index:
            photo = index.photo(photo_id)
            if photo is None:
                raise HTTPException(404)
            same = index.same_runner(photo.path)
        ids = [p.id for p in site.exact_photos(query)]
        at = ids.index(photo_id) if photo_id in ids else None
        steps = {}
        if at is not None:
            for rel, step in (("prev", -1), ("next", 1)):
                if 0 <= at + step < len(ids):
                    steps[rel] = f"/photo/{ids[at + step]}?" + urlencode({"q": query})
        # Fit the whole photo in the window: as wide as the page, as high as what is left below the header.
        fit = (f"{_aspect(photo)};width:min(100%, calc(max(200px, 100vh - 16rem) * {photo.width} / {photo.height}))"
               if photo.width and photo.height else "")  # fmt: skip
        return render(request, "photo.html", title=photo.path, photo=photo, same=same, back=search_href(query) if
                      query else "/", searched=query, steps=steps, position=at, total=len(ids), fit=fit,
                      per_page=PER_PAGE)  # fmt: skip

    @get("/image/{photo_id}", include_in_schema=False)
    def image(photo_id: PhotoId, download: str = "") -> Response:
        """The photo file, streamed; with download=1 as an attachment under its own name. A format browsers do not
        show (TIFF, RAW, HEIC) comes as a JPEG rendition."""
        _, path = photo_file(photo_id)
        try:
            stat = os.stat(path)  # given to FileResponse: a file deleted since file_of looked is a 404
        except OSError:
            raise HTTPException(404) from None
        if download == "1":
            return FileResponse(path, stat_result=stat, filename=path.name, headers=IMAGE_CACHE)
        if path.suffix.lower() in BROWSER_SUFFIXES:
            return FileResponse(path, stat_result=stat, headers=IMAGE_CACHE)
        try:
            rendition = site.rendition(path)
        except ImageError:
            raise HTTPException(404) from None
        return Response(rendition, media_type="image/jpeg", headers=IMAGE_CACHE)

    @get("/thumb/{photo_id}", include_in_schema=False)
    def thumbnail(request: Request, photo_id: PhotoId, size: str = "") -> Response:
        """A JPEG thumbnail; size=2x: twice the pixels, for the sharp screens of phones (the cards' srcset)."""
        photo, path = photo_file(photo_id)
        pixels = 2 * THUMB_SIZE if size == "2x" else THUMB_SIZE
        etag = f'"{photo.sha256[:20]}-{pixels}"'  # a re-tagged, changed photo has a new hash
        headers = IMAGE_CACHE | {"ETag": etag}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        try:
            data = site.thumbnail(path, photo.sha256, pixels)
        except ImageError:  # undecodable, or deleted since file_of looked
            raise HTTPException(404) from None
        return Response(data, media_type="image/jpeg", headers=headers)

    @get("/zip", include_in_schema=False)
    def download_all(q: str = "") -> Response:
        """Every photo of a bib (exact matches, at most MAX_ZIP) as one zip, built in a temporary file."""
        query = clean_query(q)
        files = [(photo.path, site.file_of(photo)) for photo in site.exact_photos(query)[:MAX_ZIP]]
        files = [(name, path) for name, path in files if path is not None]
        if not files:
            raise HTTPException(404)
        archive = tempfile.NamedTemporaryFile(suffix=".zip", delete=False)  # noqa: SIM115 (removed once answered)
        written = []  # (name in the zip, size, modification time) of each photo put in
        try:
            # photos are compressed already; a file dated before 1980 (a camera's unset clock) is dated 1980
            with archive, zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED, strict_timestamps=False) as zipped:
                for (_, path), flat in zip(files, zip_names([name for name, _ in files]), strict=True):
                    try:
                        stat = path.stat()
                        zipped.write(path, flat)
                    except OSError:  # deleted since: the rest still comes
                        continue
                    written.append((flat, stat.st_size, stat.st_mtime_ns))
        except BaseException:
            Path(archive.name).unlink(missing_ok=True)
            raise
        # The same photos, unchanged, make the same bytes: validators of them, not of this temporary file, let a
        # browser resume a broken download (If-Range) instead of starting again from zero.
        etag = hashlib.sha256(json.dumps(written).encode()).hexdigest()[:32]
        newest = max((mtime_ns for _, _, mtime_ns in written), default=0) / 1e9
        return TemporaryFileResponse(archive.name, filename=f"bib-{query}.zip", media_type="application/zip",
                                     headers={"etag": f'"{etag}"', "last-modified": formatdate(newest, usegmt=True)})  # fmt: skip

    if site.selfie_search:

        @get("/selfie", response_class=HTMLResponse, include_in_schema=False)
        def selfie_form(request: Request) -> Response:
            return render(request, "selfie.html", title="Find my photos by a selfie")

        @app.post("/selfie", response_class=HTMLResponse, include_in_schema=False)
        async def selfie_search(request: Request) -> Response:
            """The photos of the runner whose face is in the upload, which lives in memory for this request only."""
            title = "Find my photos by a selfie"
            try:
                body = await read_body(request, MAX_UPLOAD)
            except HTTPException as error:
                return render(request, "selfie.html", error.status_code, title=title, message=f"a selfie of {error.detail}"
                              if error.status_code == 413 else error.detail)  # fmt: skip
            upload = uploaded_file(request.headers.get("content-type", ""), body, "selfie")
            if upload is None:
                return render(request, "selfie.html", 400, title=title, message="no photo was sent")
            try:
                results = await run_in_threadpool(site.selfie_matches, upload)
            except ImageError as error:  # no image, or no face in it: the form again, with why
                return render(request, "selfie.html", 422, title=title, message=error.reason)
            return render(request, "selfie.html", title=title, results=results[:PER_PAGE], found=len(results))

    if site.review_password:

        def reviewer(request: Request) -> None:
            """Only whoever gives the password of `serve --review-password` (any user name)."""
            given = basic_password(request.headers.get("authorization", "")).encode()
            if not hmac.compare_digest(given, site.review_password.encode()):
                raise HTTPException(401, "the review page needs the password given to jerseynum serve",
                                    headers={"WWW-Authenticate": 'Basic realm="jerseynum review", charset="UTF-8"'})  # fmt: skip

        @get("/review", response_class=HTMLResponse, include_in_schema=False, dependencies=[Depends(reviewer)])
        def review_page(request: Request, done: str = "", below: str = "") -> Response:
            """The uncertain numbers, least likely first, each with confirm / remove / correct; the reads the machine
            hid, likeliest first, each with confirm / correct; then the photos with runners found but no number,
            each with a field to add one. Each number's box is drawn on its photo. Access keys: c confirm, x remove."""
            bound = parse_below(below)
            with site.index() as index:
                found = index.review(bound)
            return render(request, "review.html", title="Review", done=done[:200], below=bound,
                          uncertain=found.uncertain, hidden_reads=found.hidden, unread=found.unread, shown=PER_PAGE,
                          token=site.review_token())  # fmt: skip

        @app.post("/review", include_in_schema=False, dependencies=[Depends(reviewer)])
        async def review_post(request: Request) -> Response:
            fields = {
                k: v[0] for k, v in parse_qs((await read_body(request, MAX_FORM)).decode("utf-8", "replace")).items()
            }
            if not hmac.compare_digest(fields.get("token", "").encode(), site.review_token().encode()):  # any text
                raise HTTPException(403, "this form did not come from the review page")
            try:
                done = await run_in_threadpool(site.apply_review, fields)
            except (ValueError, IndexFileError) as error:
                done = f"not saved: {error}"
            # After a POST, a redirect: reloading the page does not post the correction twice.
            location = "/review?" + urlencode({"done": done, "below": parse_below(fields.get("below", ""))})
            return RedirectResponse(location, status_code=303)

    # --- the JSON API ------------------------------------------------------------------------------------

    @app.get("/api/search", response_model=SearchOut, responses={400: {"model": ErrorOut}}, tags=["api"],
             summary="The photos of a bib")  # fmt: skip
    def api_search(bib: Annotated[str, Query(description="the bib number (other characters are ignored)")] = "",
                   near: Annotated[bool, Query(description="also list near numbers, apart")] = False) -> Response:  # fmt: skip
        """The photos showing the bib, most likely first; with near=true, also the photos of near numbers (another
        bib containing it, or one digit off), apart, as the page's "maybe you"."""
        query = clean_query(bib)
        if not query:
            return JSONResponse({"error": "give the bib: /api/search?bib=1234"}, 400)
        with site.index() as index:
            found = index.search(query, partial=near, max_distance=1 if near else 0)
        exact, near_numbers = [[MatchOut(**photo_json(m.photo).model_dump(), match=m.kind) for m in matches]
                               for matches in exact_and_near(found)]  # fmt: skip
        return SearchOut(bib=query, photos=exact, near=near_numbers)

    @app.get("/api/photos/{photo_id}", response_model=PhotoOut, responses={404: {"model": ErrorOut}}, tags=["api"],
             summary="A photo and its numbers")  # fmt: skip
    def api_photo(photo_id: PhotoId) -> Response:
        """A photo: its size, links, and the numbers shown for it with their boxes and how each was decided."""
        with site.index() as index:
            photo = index.photo(photo_id)
        if photo is None:
            return JSONResponse({"error": "no such photo"}, 404)
        return photo_json(photo)

    @get("/api", response_class=HTMLResponse, include_in_schema=False)
    def api_page(request: Request) -> Response:
        """The API's documentation, from its OpenAPI schema (no script, nothing fetched from elsewhere)."""
        return render(request, "api.html", title="The JSON API", schema=app.openapi())

    return app
