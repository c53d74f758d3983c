"""The photo search site at the HTTP level: routes, escaping, traversal, hostile input and a burst of load (the
browser tests are in test_web_browser.py, the API's in test_web_api.py)."""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import struct
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from benchmarks.web_load import fire_requests
from jerseynum.photos.index import BibNumber, PhotoIndex
from jerseynum.web.guard import host_allowed
from jerseynum.web.server import make_server
from jerseynum.web.site import PhotoSite

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
BIB = (120, 100, 280, 200)  # where every rendered photo has its bib, photo pixels (400x300 photos)
BOX_BGR = (85, 45, 255)  # the page's box colour, #ff2d55


def render_photo(number: str, background: tuple[int, int, int]) -> np.ndarray:
    """A 400x300 'race photo': a coloured background and a white bib with the number on it."""
    image = np.full((300, 400, 3), background, np.uint8)
    x1, y1, x2, y2 = BIB
    cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), (255, 255, 255), -1)  # x2, y2 exclusive
    cv2.putText(image, number, (x1 + 10, y2 - 30), cv2.FONT_HERSHEY_SIMPLEX, 1.3, (0, 0, 0), 3)
    return image


def put(index: PhotoIndex, root: Path, path: str, image: np.ndarray | None, numbers: list[tuple[str, float]],
        error: str | None = None) -> None:  # fmt: skip
    file = root / path
    file.parent.mkdir(parents=True, exist_ok=True)
    if image is not None:
        cv2.imwrite(str(file), image)
    shape = image.shape[:2] if image is not None else None
    bibs = [BibNumber(number, confidence, BIB) for number, confidence in numbers]
    index.put(path, "0" * 64, 0, 0, shape, bibs, error, "test", 0.0)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A served index of a few rendered photos; yields (base url, {path: id}, tmp folder)."""
    tmp = tmp_path_factory.mktemp("web")
    root = tmp / "photos"
    root.mkdir()
    (tmp / "secret.txt").write_text("not a photo")
    with PhotoIndex(tmp / "index.sqlite") as index:
        index.bind_root(root)
        put(index, root, "a/bib_1234.jpg", render_photo("1234", (160, 80, 20)), [("1234", 0.97)])
        put(index, root, "b/bib_1284.jpg", render_photo("1284", (40, 140, 40)), [("1284", 0.99)])  # fuzzy
        put(index, root, "c/bib_51234.jpg", render_photo("51234", (30, 90, 160)), [("51234", 0.9), ("77", 0.8)])
        put(index, root, "empty.jpg", np.full((300, 400, 3), 90, np.uint8), [])
        (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
        put(index, root, "broken.jpg", None, [], error="could not decode the image")
        # A 33-byte PNG header claiming 60000 x 60000 pixels: over the pixel budget, never decoded.
        (root / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sII5B", 13, b"IHDR", 60000, 60000,
                                                                           8, 2, 0, 0, 0) + b"\0" * 4)  # fmt: skip
        put(index, root, "huge.png", None, [], error="over the pixel budget")
        # An index entry pointing outside the folder (a tampered or stale index): must never be served.
        index.put("../secret.txt", "0" * 64, 0, 0, (300, 400), [BibNumber("999", 0.9, BIB)], None, "test", 0.0)
        for i in range(30):  # enough for two pages of results
            put(index, root, f"crowd/{i:03d}.jpg", render_photo("888", (100, 100, 100 + 4 * i)), [("888", 0.8)])
        ids = {photo.path: photo.id for photo in index.photos()}
    server = make_server(tmp / "index.sqlite", root).start()
    yield f"http://127.0.0.1:{server.port}", ids, tmp
    server.stop()


@pytest.fixture(scope="module")
def strict_site(site):
    """The same index served with a short request timeout and one extra allowed host name; yields its base url."""
    _, _, tmp = site
    server = make_server(tmp / "index.sqlite", tmp / "photos", allowed_hosts=("Photos.LAN",), timeout=0.5).start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


def get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def page(url: str) -> str:
    status, headers, body = get(url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    return body.decode()


def get_as(base: str, path: str, host: str | None) -> tuple[int, bytes]:
    """GET with the given Host header (None: none at all)."""
    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_host=True)
        if host is not None:
            connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def exchange(base: str, request: bytes) -> bytes:
    """Send raw bytes; everything the server answers until it closes the connection."""
    url = urlsplit(base)
    with socket.create_connection((url.hostname, url.port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def assert_security_headers(headers: dict) -> None:
    csp = "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
    assert headers["Content-Security-Policy"] == csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"


def test_home_shows_the_counts_and_the_security_headers(site):
    base, ids, _ = site
    status, headers, body = get(base + "/")
    assert status == 200
    assert f"{len(ids)} photos in the index, 34 with numbers" in body.decode()
    assert_security_headers(headers)
    status, headers, _ = get(base + "/photo/99999")
    assert status == 404
    assert_security_headers(headers)


def test_search_ranks_exact_then_partial_then_fuzzy(site):
    base, ids, _ = site
    html = page(base + "/?q=1234")
    positions = [html.index(f'href="/photo/{ids[p]}?') for p in ("a/bib_1234.jpg", "c/bib_51234.jpg", "b/bib_1284.jpg")]
    assert positions == sorted(positions)
    assert "1 photo for 1234" in html and "exact</span> 97%" in html
    # strangers' near numbers come apart, after the runner's own photos
    assert html.index("Maybe you: 2 photos of near numbers") < positions[1]
    # The box is placed in percentages of the photo: (120, 100, 280, 200) of 400x300.
    assert "left:30.00%;top:33.33%;width:40.00%;height:33.33%" in html
    exact = page(base + "/?q=1234&exact=1")
    assert f'/photo/{ids["a/bib_1234.jpg"]}?' in exact and "1 photo for 1234" in exact
    assert f'/photo/{ids["b/bib_1284.jpg"]}?' not in exact and f'/photo/{ids["c/bib_51234.jpg"]}?' not in exact
    assert "no photos for 4321" in page(base + "/?q=4321")


def test_results_are_paginated_and_bad_pages_are_clamped(site):
    base, _, _ = site
    first, second = page(base + "/?q=888"), page(base + "/?q=888&page=2")
    assert first.count('class="card"') == 24 and second.count('class="card"') == 6
    assert 'href="/?q=888&amp;page=2" rel="next"' in first and 'href="/?q=888" rel="prev"' in second
    assert page(base + "/?q=888&page=99").count('class="card"') == 6  # clamped to the last page
    for bad in ("abc", "-3", "0", "1e9", "%00"):
        assert page(base + f"/?q=888&page={bad}").count('class="card"') == 24


def test_query_keeps_digits_only_and_everything_is_escaped(site):
    base, ids, _ = site
    html = page(base + "/?q=%3Cscript%3Ealert(document.cookie)%3C/script%3E12a34")
    assert "<script>" not in html and "alert" not in html
    assert 'value="1234"' in html and f'/photo/{ids["a/bib_1234.jpg"]}?' in html
    assert 'value="123456789012"' in page(base + "/?q=12345678901234567890")  # at most 12 digits


def test_full_width_digits_find_the_same_photos(site):
    base, ids, _ = site
    html = page(base + "/?q=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94&exact=1")  # "１２３４", as a Japanese keyboard types
    assert 'value="1234"' in html and "1 photo for 1234" in html and f'/photo/{ids["a/bib_1234.jpg"]}?' in html
    assert 'value="123123123123"' in page(base + "/?q=" + "%EF%BC%91%EF%BC%92%EF%BC%93" * 6)  # 18 digits, cut to 12


def test_image_thumbnail_and_photo_view(site):
    base, ids, tmp = site
    photo_id = ids["c/bib_51234.jpg"]
    status, headers, body = get(f"{base}/image/{photo_id}")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    assert body == (tmp / "photos/c/bib_51234.jpg").read_bytes()
    status, headers, body = get(f"{base}/thumb/{photo_id}")
    thumb = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and max(thumb.shape[:2]) == 320
    html = page(f"{base}/photo/{photo_id}")
    assert "51234 · 90%" in html and "77 · 80%" in html and 'href="/?q=77"' in html
    assert "could not decode the image" in page(f"{base}/photo/{ids['broken.jpg']}")
    assert "no numbers read" in page(f"{base}/photo/{ids['empty.jpg']}")


def test_only_indexed_files_inside_the_folder_are_served(site):
    base, ids, _ = site
    bad = [
        "/../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/image/..%2f..%2fsecret.txt", "/image/%2e%2e",
        "/image/abc", "/image/99999", "/thumb/99999", "/photo/99999", "/photo/-1", "/photos",
        f"/image/{ids['../secret.txt']}", f"/thumb/{ids['../secret.txt']}",  # in the index, outside the folder
        f"/thumb/{ids['broken.jpg']}",  # not decodable: no thumbnail
        f"/thumb/{ids['huge.png']}", f"/image/{ids['huge.png'] + 10_000}",  # over the pixel budget; no such photo
        "/image/" + "9" * 40,
    ]  # fmt: skip
    for path in bad:
        status, _, body = get(base + path)
        assert status == 404, path
        assert b"not found" in body and b"Traceback" not in body and b"not a photo" not in body


def test_a_photo_deleted_after_the_check_is_not_found(site, monkeypatch):
    base, ids, _ = site
    # file_of found the file, then it vanished before it was read (a photo deleted while the page is open).
    monkeypatch.setattr(PhotoSite, "file_of", lambda self, photo: self.photos_root / "vanished.jpg")
    for route in ("image", "thumb"):
        status, headers, body = get(f"{base}/{route}/{ids['a/bib_1234.jpg']}")
        assert status == 404 and b"not found" in body, route
        assert_security_headers(headers)


def test_the_index_file_is_never_written(site):
    base, ids, tmp = site
    index = tmp / "index.sqlite"
    before = index.read_bytes(), os.stat(index).st_mtime_ns
    for path in ("/", "/?q=1234", f"/photo/{ids['a/bib_1234.jpg']}", f"/thumb/{ids['crowd/007.jpg']}"):
        assert get(base + path)[0] == 200
    assert (index.read_bytes(), os.stat(index).st_mtime_ns) == before  # a read-write open rewrites the header


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8000", "localhost", "LocalHost:80", "localhost.", "[::1]",
                                  "[::1]:8000", "10.1.2.3", "[fe80::1]", "photos.lan", "PHOTOS.lan:8000"])  # fmt: skip
def test_host_allowed(host):
    assert host_allowed(host, frozenset({"localhost", "photos.lan"}))


@pytest.mark.parametrize("host", ["evil.example", "localhost.evil.example", "127.0.0.1.nip.io", "", " ", "[::1",
                                  "[evil.example]", "::1", "localhost:80:80", "localhost:http", "photos.lan.evil"])  # fmt: skip
def test_host_refused(host):
    assert not host_allowed(host, frozenset({"localhost", "photos.lan"}))


def test_foreign_host_names_are_refused(site, strict_site):
    base, _, _ = site
    for host in ("evil.example", "evil.example:80", "photos.lan"):  # a rebinding page's own name; not allowed here
        status, body = get_as(base, "/?q=1234", host)
        assert status == 400 and b"unknown host name" in body, host
        assert b"/photo/" not in body and b"photos in the index" not in body
    for host in ("localhost", f"127.0.0.1:{urlsplit(base).port}", "LOCALHOST"):
        assert get_as(base, "/?q=1234", host)[0] == 200, host
    assert exchange(base, b"GET /?q=1234 HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 ")  # HTTP/1.0: no Host
    assert get_as(strict_site, "/?q=1234", "PHOTOS.lan")[0] == 200  # allowed_hosts, any case
    assert get_as(strict_site, "/?q=1234", "evil.example")[0] == 400
    # Two Host headers: which one a proxy or the browser meant is anyone's guess.
    answer = exchange(base, b"GET / HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"GARBAGE\r\n\r\n", 400),  # malformed request line: answered by uvicorn itself, before any app
        (b"GET / HTTP/x.y\r\n\r\n", 400),  # malformed version
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # HTTP/1.1 without a Host header
        # A long path is no route. Kept under h11's 16 KB limit on a head still arriving: a longer one is answered
        # 404 when it arrives in one piece and 400 when in several (`test_an_oversized_request_head_...`).
        (b"GET /" + b"a" * 8_000 + b" HTTP/1.0\r\n\r\n", 404),
        (b"GET /%2e%2e/secret.txt HTTP/1.0\r\n\r\n", 404),  # an encoded '..' is no route either
        (b"GET / HTTP/1.0\r\n" + b"X-Many: 1\r\n" * 101 + b"\r\n", 200),
        (b"BREW / HTTP/1.0\r\n\r\n", 405),  # unsupported method
        (b"DELETE /api/photos/1 HTTP/1.0\r\n\r\n", 405),
    ],
    ids=["bad-line", "bad-version", "no-host", "long-path", "encoded-dots", "many-headers", "brew", "delete"],
)
def test_every_answer_to_malformed_requests_carries_the_security_headers(site, request_bytes, status):
    base, _, _ = site
    head, _, body = exchange(base, request_bytes).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    assert status_line.split(" ")[1] == str(status), status_line
    headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines)}
    assert_security_headers({name.title(): value for name, value in headers.items()})
    assert b"not really a jpeg" not in body and b"not a photo" not in body
    if status != 200:
        assert b"photos in the index" not in body


def test_an_oversized_request_head_leaves_the_server_serving(site):
    """A 70 KB request line: uvicorn parses it whole if it arrives in one piece (no route: 404), or refuses it
    with a secured 400 once 16 KB of it wait unparsed, closing on the rest unread (the client may see a reset
    instead of the answer). Either way the server serves the next request."""
    base, _, _ = site
    try:
        answer = exchange(base, b"GET /" + b"a" * 70_000 + b" HTTP/1.0\r\n\r\n")
        assert answer.split(b" ", 2)[1] in (b"400", b"404"), answer[:80]
    except ConnectionResetError:
        pass
    assert get(base + "/")[0] == 200


def closed_within(base: str, seconds: float, trickle: bytes = b"") -> float | None:
    """Connect, send `trickle` a byte every 0.1 s, and return when the server closed the connection (None: it
    was still open after `seconds`)."""
    url = urlsplit(base)
    started = time.monotonic()
    with socket.create_connection((url.hostname, url.port), timeout=seconds) as connection:
        while time.monotonic() - started < seconds:
            try:
                if select.select([connection], [], [], 0.1)[0] and not connection.recv(65536):
                    return time.monotonic() - started
                if trickle:
                    connection.sendall(trickle[:1])
                    trickle = trickle[1:]
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
    return None


def test_idle_and_trickling_connections_are_closed_after_the_timeout(strict_site):
    idle = closed_within(strict_site, 5)
    assert idle is not None and 0.4 < idle < 2
    # A request sent a byte at a time (slowloris) within the timeout of each read, but not of the whole request.
    trickling = closed_within(strict_site, 5, b"GET / HTTP/1.0\r\nX-Slow: " + b"z" * 100)
    assert trickling is not None and 0.4 < trickling < 2


def test_a_burst_of_200_concurrent_requests_is_all_answered(site):
    base, ids, _ = site
    photos = [ids[path] for path in ids if path.endswith(".jpg") and path != "broken.jpg"]
    searches = ["/", "/?q=1234", "/?q=888&page=2", "/?q=51234&exact=1", "/?q=4321", "/?q=%EF%BC%98%EF%BC%98%EF%BC%98"]
    urls = []
    for i in range(150):  # 300 requests: search pages and thumbnails, interleaved
        urls += [base + searches[i % len(searches)], f"{base}/thumb/{photos[i % len(photos)]}"]
    started = time.monotonic()
    answers = fire_requests(urls, concurrency=200, budget_s=30)
    assert time.monotonic() - started < 36  # it stops by itself
    failed = [(a.url, a.status, round(a.seconds, 1)) for a in answers if a.status != 200]
    assert not failed, f"{len(failed)} of {len(urls)} not answered: {failed[:5]}"
    # With the library's listen backlog of 5, a burst like this left dozens of connections waiting 20 s or more
    # for the kernel's SYN retries; with 1024 none waits for a retry.
    assert max(a.seconds for a in answers) < 10


def test_the_page_finds_runners_by_name_and_shows_the_same_persons_other_photos(tmp_path):
    from jerseynum.photos.startlist import Entrant
    from jerseynum.photos.tagger import tag_folder
    from tests.test_event import FaceTagger

    photos, index_path = tmp_path / "photos", tmp_path / "race.db"
    photos.mkdir()
    for k in range(4):  # FaceTagger: shot0-2 one runner (2024 read in shot0 only), shot3 another
        cv2.imwrite(str(photos / f"shot{k}.png"), np.full((24, 32, 3), 10 * (k + 1), np.uint8))
    tag_folder(photos, index_path, FaceTagger, version="v1", workers=1,
               entrants=[Entrant("2024", "Zoë Ménard", "F40"), Entrant("77", "Bob Ray")])  # fmt: skip
    with PhotoIndex(index_path) as index:
        ids = {photo.path: photo.id for photo in index.photos()}
    server = make_server(index_path, photos).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        body = page(f"{base}/?name=zoe+menard")
        assert "Zoë Ménard" in body and "bib 2024, F40, 3 photos" in body
        assert (
            all(f"/photo/{ids[f'shot{k}.png']}" in body for k in range(3)) and f"/photo/{ids['shot3.png']}" not in body
        )
        assert "no entrant named" in page(f"{base}/?name=nobody")
        body = page(f"{base}/photo/{ids['shot1.png']}")
        assert "the same runner, read in shot0.png" in body and "2 more photos of this runner" in body
        assert f"/photo/{ids['shot0.png']}" in body and f"/photo/{ids['shot3.png']}" not in body
    finally:
        server.stop()


def test_the_photo_view_leads_back_to_the_search_and_on_to_its_other_photos(site):
    base, ids, _ = site
    crowd = [ids[f"crowd/{i:03d}.jpg"] for i in range(30)]  # all 888, equally sure: in path order
    second = page(f"{base}/photo/{crowd[1]}?q=888")
    assert 'href="/?q=888"' in second and "2 of 30" in second
    assert f'href="/photo/{crowd[0]}?q=888" rel="prev"' in second and f'href="/photo/{crowd[2]}?q=888" rel="next"' in second
    last = page(f"{base}/photo/{crowd[29]}?q=888")
    assert 'rel="next"' not in last and "30 of 30" in last
    assert 'rel="prev"' not in page(f"{base}/photo/{crowd[0]}") and 'href="/"' in page(f"{base}/photo/{crowd[0]}")


def test_serving_beyond_this_machine_says_what_it_exposes(tmp_path, monkeypatch, capsys):
    from jerseynum.cli import main

    with PhotoIndex(tmp_path / "race.db") as index:
        index.bind_root(tmp_path)
    served = []
    monkeypatch.setattr("jerseynum.web.server.serve_forever", lambda *args: served.append(args))
    assert main(["serve", "--index", str(tmp_path / "race.db")]) == 0
    assert capsys.readouterr().out == "" and served[-1][2] == "127.0.0.1"  # the default: this machine only
    assert main(["serve", "--index", str(tmp_path / "race.db"), "--host", "0.0.0.0", "--port", "8080"]) == 0
    assert "anyone who can reach this machine on port 8080 can search the photos" in capsys.readouterr().out


def test_a_runner_downloads_each_photo_and_all_of_them_as_a_zip(site):
    import io
    import zipfile

    base, ids, _ = site
    html = page(base + "/?q=888")
    assert 'href="/zip?q=888"' in html and 'href="/?q=888&amp;exact=1">link to share' in html
    status, headers, body = get(base + "/zip?q=888")
    assert status == 200 and headers["Content-Type"] == "application/zip"
    assert 'attachment; filename="bib-888.zip"' in headers["Content-Disposition"]
    names = zipfile.ZipFile(io.BytesIO(body)).namelist()
    assert sorted(names) == [f"crowd__{i:03d}.jpg" for i in range(30)]
    status, image_headers, image = get(f"{base}/image/{ids['a/bib_1234.jpg']}?download=1")
    assert status == 200 and 'filename="bib_1234.jpg"' in image_headers["Content-Disposition"]
    assert image[:2] == b"\xff\xd8"
    assert "download the photo" in page(f"{base}/photo/{ids['a/bib_1234.jpg']}")
    assert get(base + "/zip?q=999")[0] == 404  # its only photo lies outside the folder: never served
    assert get(base + "/zip?q=")[0] == 404
    # a broken download resumes: the same photos make the same zip, with the same validators, built again
    for validator in ("ETag", "Last-Modified"):
        resumed = urllib.request.Request(base + "/zip?q=888", headers={"Range": "bytes=1000-",
                                                                         "If-Range": headers[validator]})  # fmt: skip
        with urllib.request.urlopen(resumed, timeout=60) as response:
            assert response.status == 206 and response.read() == body[1000:]


def test_a_zip_is_removed_whatever_its_answer_and_photos_dated_before_1980_go_in(site, tmp_path, monkeypatch):
    import io
    import tempfile
    import zipfile

    base, _, tmp = site
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the server makes its zips (in this process)
    url = urlsplit(base)
    for given, answer in (("bytes=99999999-", 416), ("bytes=abc", 400), ("bytes=0-9", 206)):
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        try:
            connection.request("GET", "/zip?q=888", headers={"Range": given})
            response = connection.getresponse()
            assert (response.status, len(response.read()) == 10) == (answer, answer == 206)
        finally:
            connection.close()
    first = tmp / "photos" / "crowd" / "000.jpg"
    kept = first.stat()
    os.utime(first, (0, 0))  # a camera whose clock was never set: 1970
    try:
        status, _, body = get(base + "/zip?q=888")
    finally:
        os.utime(first, ns=(kept.st_atime_ns, kept.st_mtime_ns))
    assert status == 200 and len(zipfile.ZipFile(io.BytesIO(body)).namelist()) == 30
    deadline = time.monotonic() + 5  # the server removes a zip once it has sent it, a moment after the client has it
    while list(tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.iterdir()) == []  # no zip left behind by any answer


def test_zip_names_flatten_folders_and_never_collide():
    from jerseynum.web.app import zip_names

    assert zip_names(["day1/IMG_1.jpg", "day1__IMG_1.jpg", "IMG_2.jpg", "day1/IMG_1 (2).jpg"]) == [
        "day1__IMG_1.jpg", "day1__IMG_1 (2).jpg", "IMG_2.jpg", "day1__IMG_1 (2) (2).jpg"]  # fmt: skip


def multipart(field: str, data: bytes) -> tuple[bytes, str]:
    boundary = "jerseynumTestBoundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="me.jpg"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()  # fmt: skip
    return body, f"multipart/form-data; boundary={boundary}"


def post(url: str, body: bytes, content_type: str) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def served(index_path: Path, photos: Path, **options):
    server = make_server(index_path, photos, **options).start()
    return server, f"http://127.0.0.1:{server.port}"


def test_selfie_search_is_off_unless_asked_and_refuses_what_is_no_face(site, tmp_path):
    base, _, tmp = site
    assert get(base + "/selfie")[0] == 404
    assert post(base + "/selfie", *multipart("selfie", b"x"))[0] == 404  # not there at all
    assert post(base + "/", *multipart("selfie", b"x"))[0] == 405
    server, url = served(tmp / "index.sqlite", tmp / "photos", selfie_search=True)
    try:
        assert "never stored or logged" in page(url + "/selfie") and 'href="/selfie"' in page(url + "/")
        status, html = post(url + "/selfie", *multipart("selfie", b"not an image"))
        assert status == 422 and "not a decodable image" in html  # the form again, with why, as an error
        blank = cv2.imencode(".jpg", np.full((200, 200, 3), 128, np.uint8))[1].tobytes()
        assert post(url + "/selfie", *multipart("selfie", blank))[0] == 422
        assert "no face found" in post(url + "/selfie", *multipart("selfie", blank))[1]
        status, html = post(url + "/selfie", *multipart("other", blank))
        assert status == 400 and "no photo was sent" in html
        from tests.test_formats import heic  # an iPhone's selfie

        assert "no face found" in post(url + "/selfie", *multipart("selfie", heic(128)))[1]
        # too big: refused from its headers, before a byte of it is read
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.putrequest("POST", "/selfie")
        connection.putheader("Content-Type", "multipart/form-data; boundary=x")
        connection.putheader("Content-Length", "10000001")
        connection.endheaders()
        response = connection.getresponse()
        assert response.status == 413 and "at most 10 MB" in response.read().decode()
        connection.close()
    finally:
        server.stop()


def test_a_selfie_finds_the_runners_photos(tmp_path):
    """The face of RBNR's runner 2874, cut from one photo of a burst, finds that runner's photos."""
    from jerseynum.photos.tagger import tag_folder
    from tests.conftest import data_set

    root = data_set("rbnr_bib_photos")
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("set1_34.JPG", "set1_35.JPG", "set1_01.JPG"):  # the runner twice, and someone else
        (photos / name).write_bytes((root / "images" / name).read_bytes())
    tag_folder(photos, tmp_path / "race.db", workers=1, progress=False)
    with PhotoIndex(tmp_path / "race.db") as index:
        runner = next(r for r in index.runner_reads() if r.path == "set1_34.JPG" and r.read.number == "2874")
    x1, y1, x2, y2 = runner.read.evidence["face"]
    image = cv2.imread(str(photos / "set1_34.JPG"))
    margin = x2 - x1
    face = image[max(0, y1 - margin) : y2 + margin, max(0, x1 - margin) : x2 + margin]
    server, url = served(tmp_path / "race.db", photos, selfie_search=True)
    try:
        status, html = post(url + "/selfie", *multipart("selfie", cv2.imencode(".jpg", face)[1].tobytes()))
    finally:
        server.stop()
    assert status == 200 and "face distance" in html
    assert html.index("set1_34.JPG") < html.index("set1_35.JPG") and "set1_01.JPG" not in html


def test_head_and_cached_thumbnails(site):
    base, ids, _ = site
    thumb = f"{base}/thumb/{ids['a/bib_1234.jpg']}"
    status, headers, body = get(thumb)
    assert status == 200 and headers["ETag"] and body[:2] == b"\xff\xd8"
    head = urllib.request.Request(thumb, method="HEAD")
    with urllib.request.urlopen(head, timeout=10) as response:
        assert response.status == 200 and response.read() == b"" and response.headers["ETag"] == headers["ETag"]
        assert int(response.headers["Content-Length"]) == len(body)
    again = urllib.request.Request(thumb, headers={"If-None-Match": headers["ETag"]})
    with pytest.raises(urllib.error.HTTPError) as not_modified:  # urllib treats 304 as an error
        urllib.request.urlopen(again, timeout=10)
    assert not_modified.value.code == 304
    with urllib.request.urlopen(urllib.request.Request(base + "/?q=1234", method="HEAD"), timeout=10) as response:
        assert response.status == 200 and response.read() == b"" and int(response.headers["Content-Length"]) > 100


def test_phones_get_sharp_thumbnails(site):
    base, ids, _ = site
    assert f'srcset="/thumb/{ids["a/bib_1234.jpg"]}?size=2x 2x"' in page(base + "/?q=1234")
    small = cv2.imdecode(np.frombuffer(get(f"{base}/thumb/{ids['a/bib_1234.jpg']}")[2], np.uint8), cv2.IMREAD_COLOR)
    sharp = cv2.imdecode(np.frombuffer(get(f"{base}/thumb/{ids['a/bib_1234.jpg']}?size=2x")[2], np.uint8),
                         cv2.IMREAD_COLOR)  # fmt: skip
    assert max(small.shape[:2]) == 320 and max(sharp.shape[:2]) == 400  # a 400 px photo is not blown up


def test_the_review_page_puts_the_reads_the_start_list_rejected_before_a_reviewer(tmp_path):
    import base64
    import re
    from urllib.parse import urlencode

    from jerseynum.photos.startlist import Entrant
    from jerseynum.photos.tagger import tag_folder
    from tests.test_photos import ShadeTagger, write_photos

    photos, index_path = tmp_path / "photos", tmp_path / "race.db"
    write_photos(photos, [10, 20])  # ShadeTagger reads 110 and 120; the list lacks 120 (a late entry)
    tag_folder(photos, index_path, ShadeTagger, version="v1", workers=1, progress=False, entrants=[Entrant("110")])
    server, url = served(index_path, photos, review_password="pw")
    auth = {"Authorization": "Basic " + base64.b64encode(b"me:pw").decode()}
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/review", headers=auth), timeout=30) as response:
            html = response.read().decode()
        assert "1 read hidden" in html and "read 120: not on the start list" in html
        assert html.count('<div class="box"') == 1  # where the hidden read lies in its photo
        token = re.search(r'name="token" value="([0-9a-f]+)"', html)[1]
        form = urlencode({"token": token, "path": "photo1.png", "number": "120", "action": "confirm"}).encode()
        with urllib.request.urlopen(urllib.request.Request(url + "/review", form, auth), timeout=30) as response:
            assert "reads hidden" not in response.read().decode()
    finally:
        server.stop()
    with PhotoIndex(index_path) as index:
        assert [(n.number, n.status) for n in index.photo_at("photo1.png").numbers] == [("120", "confirmed")]


def test_a_reviewer_confirms_corrects_and_adds_numbers_behind_a_password(tmp_path):
    import base64
    import re
    from urllib.parse import urlencode

    from jerseynum.photos.tagger import tag_folder
    from tests.test_event import FaceTagger

    photos, index_path = tmp_path / "photos", tmp_path / "race.db"
    photos.mkdir()
    for k in range(4):  # FaceTagger: shot0 reads 2024, shot1-2 get it propagated, shot3's runner has none
        cv2.imwrite(str(photos / f"shot{k}.png"), np.full((24, 32, 3), 10 * (k + 1), np.uint8))
    tag_folder(photos, index_path, FaceTagger, version="v1", workers=1, progress=False)
    server, url = served(index_path, photos, review_password="pässwort")  # the page asks for UTF-8
    auth = {"Authorization": "Basic " + base64.b64encode("José:pässwort".encode()).decode()}

    def request(path: str, data: dict | None = None, headers: dict | None = None) -> tuple[int, str]:
        body = urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(url + path, data=body, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as response:  # follows the 303 to the review page
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    try:
        assert request("/review")[0] == 401
        assert request("/review", headers={"Authorization": "Basic " + base64.b64encode(b"me:wrong").decode()})[0] == 401
        status, html = request("/review?below=1.01", headers=auth)  # all of them (they are ~0.97 likely)
        assert status == 200 and "3 numbers less likely right than 101%" in html and "1 photo with a runner" in html
        token = re.search(r'name="token" value="([0-9a-f]+)"', html)[1]
        assert request("/review", {"path": "shot0.png", "number": "2024", "action": "confirm"}, auth)[0] == 403
        assert request("/review", {"token": "é", "path": "shot0.png", "number": "2024"}, auth)[0] == 403  # not a 500
        status, html = request("/review", {"token": token, "path": "shot0.png", "number": "2024", "below": "1.01",
                                           "action": "confirm"}, auth)  # fmt: skip
        assert status == 200 and "shot0.png: confirm 2024" in html and "2 numbers less likely" in html
        request("/review", {"token": token, "path": "shot1.png", "number": "2024", "action": "replace",
                            "new": "2025"}, auth)  # fmt: skip
        status, html = request("/review", {"token": token, "path": "shot3.png", "action": "add", "new": "77"}, auth)
        assert "shot3.png: add 77" in html and "0 photos with a runner" in html
        status, html = request("/review", {"token": token, "path": "shot3.png", "action": "add", "new": ""}, auth)
        assert "not saved: a correction needs its number" in html
        status, html = request("/review", {"token": token, "path": "shot3.png", "action": "add", "new": "9" * 13}, auth)
        assert "not saved: a bib number has at most 12 digits" in html  # no search could find it
        assert request("/review", {}, auth)[0] == 400  # an empty form: nothing was sent, not "too large"
        # the index moved away while serving: a correction makes no new, empty index; pages say to wait (503)
        index_path.rename(tmp_path / "moved.db")
        status, html = request("/review", {"token": token, "path": "shot3.png", "action": "add", "new": "78"}, auth)
        assert status == 503 and "cannot be read just now" in html and not index_path.exists()
        assert request("/?q=2024")[0] == 503
        status, body = request("/api/search?bib=2024")
        assert status == 503 and json.loads(body) == {"error": "the photo index cannot be read just now: try again later"}
        (tmp_path / "moved.db").rename(index_path)
        assert request("/?q=2024")[0] == 200
    finally:
        server.stop()
    with PhotoIndex(index_path) as index:
        numbers = {r.path: [(n.number, n.status) for n in r.numbers] for r in index.photos()}
    assert numbers["shot0.png"] == [("2024", "confirmed")] and numbers["shot1.png"] == [("2025", "corrected")]
    assert numbers["shot3.png"] == [("77", "corrected")]


def test_there_is_no_review_page_without_a_password(site):
    base, _, _ = site
    assert get(base + "/review")[0] == 404
    assert post(base + "/review", b"action=confirm", "application/x-www-form-urlencoded")[0] == 404


def test_the_json_api_answers_from_the_index(site):
    base, ids, tmp = site
    status, headers, body = get(base + "/api/search?bib=1234")
    data = json.loads(body)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    with PhotoIndex(tmp / "index.sqlite", read_only=True) as index:
        exact = [m.photo.id for m in index.search("1234", partial=False, max_distance=0)]
        photo = index.photo(ids["c/bib_51234.jpg"])
    assert [p["id"] for p in data["photos"]] == exact and data["near"] == []
    near = json.loads(get(base + "/api/search?bib=1234&near=1")[2])["near"]
    assert {p["path"] for p in near} == {"b/bib_1284.jpg", "c/bib_51234.jpg"}
    one = json.loads(get(f"{base}/api/photos/{photo.id}")[2])
    assert one["path"] == photo.path and [(n["number"], tuple(n["box"])) for n in one["numbers"]] == [
        (n.number, n.box) for n in photo.numbers]  # fmt: skip
    assert get(base + "/api/photos/999999")[0] == 404 and get(base + "/api/search")[0] == 400
    assert get(base + "/api/nothing")[0] == 404


def test_a_review_beside_a_tagging_run_that_keeps_saving_photos_is_saved_and_says_when_it_shows(tmp_path, monkeypatch):
    from jerseynum.photos.index import StaleReadsError
    from jerseynum.photos.tagger import tag_folder
    from jerseynum.web.site import PhotoSite
    from tests.test_photos import ShadeTagger, write_photos

    photos, index_path = tmp_path / "photos", tmp_path / "race.db"
    write_photos(photos, [10])
    tag_folder(photos, index_path, ShadeTagger, version="v1", workers=1, progress=False)

    def outpaced(index, *args):
        raise StaleReadsError(f"{index_path}: another run changed its photos or corrections")

    monkeypatch.setattr("jerseynum.photos.event.redecide", outpaced)
    site = PhotoSite(index_path, photos, review_password="x")
    done = site.apply_review({"path": "photo0.png", "number": "110", "action": "remove"})
    assert done == "photo0.png: remove 110 (saved; it shows once the tagging run now saving photos ends)"
    with PhotoIndex(index_path) as index:
        assert index.corrections() == {"photo0.png": [("110", "remove")]}
