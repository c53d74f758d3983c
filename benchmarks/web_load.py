"""Load on the race-photo page (`jerseynum serve`): a burst of concurrent requests against a served index of
rendered photos, and the latency of search pages and thumbnails, cold (made on request) and warm (from the cache).

The photos are rendered (a textured background and a white bib with its number), so the benchmark needs no data.
The server runs in a thread of this process on 127.0.0.1, port 0; the requests come from `--concurrency` client
threads of the same process, the first of them all at once (a burst: what the listen backlog must absorb). Client
and server share one interpreter lock, so the latencies are upper bounds of a server on its own. Two rounds: the
cold one asks for every photo's thumbnail once, mixed with search pages; the warm one asks again. At most 500
requests in all, none started after 30 s.

    python benchmarks/web_load.py [--photos 150] [--side 1600] [--concurrency 200] [--requests 500]
"""

from __future__ import annotations

import argparse
import http.client
import math
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from jerseynum.io import write_json_atomic
from jerseynum.photos.index import BibNumber, PhotoIndex
from jerseynum.web.server import make_server

REPO = Path(__file__).resolve().parents[1]
MAX_REQUESTS = 500
BUDGET_S = 30.0  # no request is started after this
GRACE_S = 5.0  # what a request started just before the budget ran out may still take
BIBS = 50  # distinct bib numbers among the photos: each is in several photos


@dataclass(frozen=True)
class Answer:
    url: str
    status: int | None  # None: no answer (refused, reset, timed out, or not started within the budget)
    seconds: float  # from connecting to the last byte of the body


def _request(url: str, deadline: float) -> Answer:
    parts = urlsplit(url)
    started = time.perf_counter()
    # http.client, not urllib: no proxy settings from the environment, one fresh connection per request.
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=max(0.1, deadline - time.monotonic()))
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = connection.getresponse()
        response.read()
        status = response.status
    except (OSError, http.client.HTTPException):
        status = None
    finally:
        connection.close()
    return Answer(url, status, time.perf_counter() - started)


def fire_requests(urls: list[str], concurrency: int = 200, budget_s: float = BUDGET_S) -> list[Answer]:
    """GET every url (body read whole), `concurrency` at a time, the first `concurrency` released all at once;
    one `Answer` per url, in order. No request is started after `budget_s`, and the call returns at most
    GRACE_S later, whatever the server does."""
    deadline = time.monotonic() + budget_s
    answers: list[Answer | None] = [None] * len(urls)
    pending = iter(range(len(urls)))
    taking = threading.Lock()
    workers = max(1, min(concurrency, len(urls)))
    burst = threading.Barrier(workers)

    def work() -> None:
        burst.wait()
        while time.monotonic() < deadline:
            with taking:
                i = next(pending, None)
            if i is None:
                return
            answers[i] = _request(urls[i], deadline)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline + GRACE_S - time.monotonic()))
    return [answer or Answer(url, None, math.nan) for url, answer in zip(urls, list(answers))]


def latency_row(kind: str, answers: list[Answer]) -> dict:
    """Requests, answered with 200, and p50 / p99 / max milliseconds of those answered."""
    seconds = [a.seconds for a in answers if a.status == 200]
    p50, p99 = np.percentile(seconds, [50, 99]) if seconds else (math.nan, math.nan)
    return {"kind": kind, "requests": len(answers), "answered_200": len(seconds), "p50_ms": round(p50 * 1000, 1),
            "p99_ms": round(p99 * 1000, 1), "max_ms": round(max(seconds, default=math.nan) * 1000, 1)}  # fmt: skip


def render_photo(number: str, side: int, texture: np.ndarray, tint: tuple[int, int, int]) -> np.ndarray:
    """A 4:3 'race photo' with the long side `side`: a tinted texture and a white bib with the number on it."""
    height, width = side * 3 // 4, side
    image = cv2.add(texture[:height, :width], np.full((height, width, 3), tint, np.uint8))
    x1, y1, x2, y2 = width * 3 // 10, height // 3, width * 7 // 10, height * 2 // 3
    cv2.rectangle(image, (x1, y1), (x2, y2), (255, 255, 255), -1)
    cv2.putText(image, number, (x1 + width // 40, y2 - height // 10), cv2.FONT_HERSHEY_SIMPLEX, side / 300,
                (0, 0, 0), max(1, side // 150))  # fmt: skip
    return image


def build_index(folder: Path, photos: int, side: int) -> tuple[Path, Path, list[int], list[str]]:
    """Rendered photos under folder/photos and their index; (index, photo folder, photo ids, bib numbers)."""
    root = folder / "photos"
    root.mkdir()
    rng = np.random.default_rng(0)
    # Camera photos have texture, which is what JPEG decoding spends its time on; a flat image decodes too fast.
    texture = cv2.GaussianBlur(rng.integers(0, 120, (side * 3 // 4, side, 3), np.uint8), (5, 5), 0)
    numbers = [str(100 + i * 37) for i in range(BIBS)]
    with PhotoIndex(folder / "index.sqlite") as index:
        index.bind_root(root)
        for i in range(photos):
            number, path = numbers[i % BIBS], f"{i:04d}.jpg"
            tint = tuple(int(c) for c in rng.integers(0, 120, 3))
            image = render_photo(number, side, texture, tint)
            cv2.imwrite(str(root / path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            height, width = image.shape[:2]
            bib = BibNumber(number, 0.95, (width * 3 // 10, height // 3, width * 7 // 10, height * 2 // 3))
            index.put(path, "0" * 64, 0, 0, (height, width), [bib], None, "benchmark", 0.0)
        ids = [photo.id for photo in index.photos()]
    return folder / "index.sqlite", root, ids, numbers


def search_urls(base: str, numbers: list[str], count: int) -> list[str]:
    """Search pages of every kind: an exact bib, a partial one (many matches, paginated), a miss, the home page."""
    urls = []
    for i in range(count):
        number = numbers[i % len(numbers)]
        kinds = [f"/?q={number}&exact=1", f"/?q={number[:2]}", f"/?q={number[:1]}&page=2", "/?q=99999", "/"]
        urls.append(base + kinds[i % len(kinds)])
    return urls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=150, help="photos in the index (each thumbnail asked twice)")
    parser.add_argument("--side", type=int, default=1600, help="the photos' long side, px")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--requests", type=int, default=MAX_REQUESTS, help=f"in all, at most {MAX_REQUESTS}")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "web_load.json")
    args = parser.parse_args()
    per_round = min(args.requests, MAX_REQUESTS) // 2
    thumbs = min(args.photos, per_round)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        index_path, root, ids, numbers = build_index(Path(tmp), args.photos, args.side)
        print(f"{args.photos} photos of {args.side} px rendered and indexed in {time.perf_counter() - started:.1f} s")
        server = make_server(index_path, root).start()
        base = f"http://127.0.0.1:{server.port}"
        thumb_urls = [f"{base}/thumb/{photo_id}" for photo_id in ids[:thumbs]]
        rounds = {}
        budget_end = time.monotonic() + BUDGET_S
        started = time.perf_counter()
        for name in ("cold", "warm"):
            searches = search_urls(base, numbers, per_round - thumbs)
            # Interleaved, so search pages wait behind thumbnails being made as they would in a browser.
            urls = [url for pair in zip(thumb_urls, searches) for url in pair]
            urls += thumb_urls[len(searches) :] + searches[len(thumb_urls) :]
            rounds[name] = fire_requests(urls, args.concurrency, max(0.0, budget_end - time.monotonic()))
        wall = time.perf_counter() - started
        server.stop()
    every = rounds["cold"] + rounds["warm"]
    rows = [
        latency_row("search pages", [a for a in every if "/thumb/" not in a.url]),
        latency_row("thumbnails, cold", [a for a in rounds["cold"] if "/thumb/" in a.url]),
        latency_row("thumbnails, warm", [a for a in rounds["warm"] if "/thumb/" in a.url]),
        latency_row("all", every),
    ]
    print(f"{len(every)} requests, {args.concurrency} at a time, in {wall:.1f} s")
    print(f"  {'':18} {'requests':>8} {'200':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for row in rows:
        print(f"  {row['kind']:18} {row['requests']:8} {row['answered_200']:5} {row['p50_ms']:8.1f}"
              f" {row['p99_ms']:8.1f} {row['max_ms']:8.1f}")  # fmt: skip
    settings = {"photos": args.photos, "side": args.side, "concurrency": args.concurrency, "requests": len(every)}
    write_json_atomic(args.json, {"settings": settings, "wall_s": round(wall, 2), "rows": rows})


if __name__ == "__main__":
    main()
