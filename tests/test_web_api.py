"""The site's JSON API checked against the index it answers from, its documentation, and the app's security:
hostile file names and queries, path traversal, wrong methods."""

from __future__ import annotations

import io
import json
import re
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest

from jerseynum.photos.index import BibNumber, PhotoIndex
from jerseynum.photos.startlist import Entrant
from tests.test_web import BIB, assert_security_headers, exchange, get, put, render_photo, served

# File names a photographer's camera never makes, but a hostile folder can: each must come back as text.
HOSTILE_NAMES = ["<img src=x onerror=alert(1)>.jpg", '"><script>alert(2)</script>.jpg', "it's & <b>.jpg"]


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory):
    """An index of rendered photos under hostile names, a propagated and a corrected number, a start list with a
    hostile name, and a review password; yields (base url, index path)."""
    tmp = tmp_path_factory.mktemp("api")
    root = tmp / "photos"
    root.mkdir()
    (tmp / "outside.jpg").write_bytes(b"outside the photo folder")
    (root / "link.jpg").symlink_to(tmp / "outside.jpg")
    with PhotoIndex(tmp / "race.db") as index:
        index.bind_root(root)
        for k, name in enumerate(HOSTILE_NAMES):
            put(index, root, name, render_photo("4321", (40 * k, 90, 160)), [("4321", 0.95 - 0.1 * k)])
        put(index, root, "near/43210.jpg", render_photo("43210", (20, 20, 20)), [("43210", 0.9)])
        put(index, root, "none.jpg", np.full((300, 400, 3), 120, np.uint8), [])
        index.put("link.jpg", "0" * 64, 0, 0, (300, 400), [BibNumber("4321", 0.9, BIB)], None, "test", 0.0)
        index.replace_decisions(
            {
                "none.jpg": [BibNumber("4321", 0.81, BIB, "propagated", runner=None, source=HOSTILE_NAMES[0])],
                "near/43210.jpg": [BibNumber("43210", 0.9, BIB, "read")],
                **{n: [BibNumber("4321", 0.95 - 0.1 * k, BIB, "read")] for k, n in enumerate(HOSTILE_NAMES)},
                "link.jpg": [BibNumber("4321", 0.9, BIB, "read")],
            },
            {},
        )
        index.set_entrants([Entrant("4321", "<script>alert(3)</script> Runner", "M40")])
    server, url = served(tmp / "race.db", root, review_password="pw")
    yield url, tmp / "race.db"
    server.stop()


def api(url: str) -> tuple[int, dict]:
    status, headers, body = get(url)
    assert headers["Content-Type"].startswith("application/json")
    return status, json.loads(body)


def test_every_photo_and_every_bib_comes_back_as_the_index_holds_it(hostile_site):
    url, index_path = hostile_site
    with PhotoIndex(index_path, read_only=True) as index:
        photos = index.photos()
        numbers = {n.number for p in photos for n in p.numbers}
        searches = {bib: index.search(bib, partial=True, max_distance=1) for bib in numbers}
    assert len(photos) == len(HOSTILE_NAMES) + 3 and numbers == {"4321", "43210"}
    for photo in photos:
        status, data = api(f"{url}/api/photos/{photo.id}")
        assert status == 200
        assert (data["id"], data["path"], data["width"], data["height"], data["error"]) == (
            photo.id, photo.path, photo.width, photo.height, photo.error)  # fmt: skip
        assert data["numbers"] == [
            {"number": n.number, "confidence": n.confidence, "box": list(n.box), "decision": n.status, "read": n.read,
             "reason": n.reason, "source_photo": n.source}
            for n in photo.numbers
        ]  # fmt: skip
        # its links lead to its page, the photo and its thumbnail (not for a link out of the photo folder)
        assert get(url + data["page"])[0] == 200
        for link in (data["image"], data["thumbnail"]):
            assert get(url + link)[0] == (404 if photo.path == "link.jpg" else 200), link
    for bib, found in searches.items():
        _, exact = api(f"{url}/api/search?bib={bib}")
        _, near = api(f"{url}/api/search?bib={bib}&near=true")
        assert [p["id"] for p in exact["photos"]] == [m.photo.id for m in found if m.kind == "exact"]
        assert exact["near"] == [] and near["photos"] == exact["photos"]
        assert [(p["id"], p["match"]) for p in near["near"]] == [
            (m.photo.id, m.kind) for m in found if m.kind != "exact"
        ]
    _, data = api(f"{url}/api/search?bib=4321&near=1")
    assert [p["path"] for p in data["near"]] == ["near/43210.jpg"]
    assert data["photos"][0]["path"] == HOSTILE_NAMES[0]  # the most likely first
    propagated = next(p for p in data["photos"] if p["path"] == "none.jpg")["numbers"][0]
    assert (propagated["decision"], propagated["source_photo"]) == ("propagated", HOSTILE_NAMES[0])


@pytest.mark.parametrize(
    "path, status, error",
    [
        ("/api/search", 400, "give the bib"),
        ("/api/search?bib=abc", 400, "give the bib"),
        ("/api/search?bib=1&near=perhaps", 422, "near"),
        ("/api/photos/999999", 404, "no such photo"),
        ("/api/photos/abc", 422, "photo_id"),
        ("/api/photos/-1", 422, "photo_id"),
        ("/api/nothing", 404, "not found"),
    ],
)
def test_api_errors_are_json_with_a_reason(hostile_site, path, status, error):
    url, _ = hostile_site
    got, data = api(url + path)
    assert got == status and error in data["error"]


def test_the_api_is_documented_without_fetching_anything(hostile_site):
    url, _ = hostile_site
    status, schema = api(url + "/openapi.json")
    assert status == 200 and schema["openapi"].startswith("3.")
    assert set(schema["paths"]) == {"/api/search", "/api/photos/{photo_id}"}  # the pages are not API
    search = schema["paths"]["/api/search"]["get"]
    assert {p["name"] for p in search["parameters"]} == {"bib", "near"}
    assert set(search["responses"]) >= {"200", "400"}
    assert "match" in schema["components"]["schemas"]["MatchOut"]["properties"]
    status, headers, body = get(url + "/api")
    html = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    for expected in ("GET /api/search", "GET /api/photos/{photo_id}", "The photos of a bib", "<code>near</code>",
                     'href="/openapi.json"'):  # fmt: skip
        assert expected in html, expected
    assert "<script" not in html and not re.search(r'(src|href)="(https?:)?//', html)  # nothing from elsewhere
    assert get(url + "/docs")[0] == 404  # FastAPI's own pages fetch their scripts from a CDN: off


def test_hostile_file_names_and_names_come_back_as_text(hostile_site):
    url, index_path = hostile_site
    with PhotoIndex(index_path, read_only=True) as index:
        ids = {photo.path: photo.id for photo in index.photos()}
    pages = [get(url + "/?q=4321"), get(url + "/?name=runner"), get(f"{url}/photo/{ids['none.jpg']}")]
    pages += [get(f"{url}/photo/{ids[name]}?q=4321") for name in HOSTILE_NAMES]
    request = urllib.request.Request(url + "/review?below=1.01", headers={"Authorization": "Basic OnB3"})  # ":pw"
    with urllib.request.urlopen(request, timeout=10) as response:
        pages.append((response.status, response.headers, response.read()))
    for status, headers, body in pages:
        html = body.decode()
        assert status == 200
        assert_security_headers(headers)
        assert "<script" not in html and "<img src=x" not in html and "<b>.jpg" not in html, html
        assert "onerror=alert(1)" not in html or "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;script&gt;alert(3)&lt;/script&gt; Runner" in pages[1][2].decode()  # the start list's name
    assert "it&#39;s &amp; &lt;b&gt;.jpg" in pages[0][2].decode()
    # a download's file name is quoted in its header, whatever the name holds
    status, headers, body = get(f"{url}/image/{ids[HOSTILE_NAMES[1]]}?download=1")
    assert status == 200 and headers["Content-Disposition"].startswith("attachment; filename")
    assert "<script>" not in headers["Content-Disposition"] and body == (Path(index_path).parent / "photos" /
                                                                           HOSTILE_NAMES[1]).read_bytes()  # fmt: skip


def test_a_symlink_out_of_the_photo_folder_is_never_followed(hostile_site):
    url, index_path = hostile_site
    with PhotoIndex(index_path, read_only=True) as index:
        link = index.photo_at("link.jpg").id
    for path in (f"/image/{link}", f"/image/{link}?download=1", f"/thumb/{link}"):
        status, _, body = get(url + path)
        assert status == 404 and b"outside the photo folder" not in body, path
    status, headers, body = get(url + "/zip?q=4321")  # the bib's other photos come; the link does not
    names = zipfile.ZipFile(io.BytesIO(body)).namelist()
    assert status == 200 and headers["Content-Type"] == "application/zip"
    assert (
        sorted(names) == sorted(name.replace("/", "__") for name in [*HOSTILE_NAMES, "none.jpg"])
        and b"outside the photo folder" not in body
    )


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/", "/photo/1", "/image/1", "/thumb/1", "/zip?q=4321", "/api/search?bib=1",
                                  "/api/photos/1", "/api", "/openapi.json"])  # fmt: skip
def test_wrong_methods_are_refused_and_change_nothing(hostile_site, method, path):
    url, index_path = hostile_site
    before = Path(index_path).read_bytes()
    answer = exchange(url, f"{method} {path} HTTP/1.0\r\nContent-Length: 0\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    assert status_line.split(" ")[1] == "405", status_line
    assert_security_headers({k.title(): v for k, v in (line.split(": ", 1) for line in lines)})
    assert b"4321" not in body and Path(index_path).read_bytes() == before
