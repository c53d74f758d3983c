"""The photo site in a real headless Chromium: a runner's search (exact, then "maybe you"), the share link, the
downloads and the photo view; a selfie search on real RBNR photos; a reviewer's correction surviving a re-tag; phone
and desktop sizes. Every screenshot is checked for what it shows, not just taken."""

from __future__ import annotations

import base64
import io
import json
import re
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np
import pytest

from jerseynum.photos.index import PhotoIndex
from tests import test_web
from tests.test_web import BOX_BGR, CHROMEDRIVER, CHROMIUM, put, render_photo, served

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # the browser fixture skips every test, saying why
    webdriver = None

site = test_web.site  # the HTTP tests' index of rendered photos, served for this module too

LOADED = "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"
PASSWORD = "s3cret"

# A runner with six photos, read with different confidences (stored out of order), and near numbers read more
# surely than some of the runner's own photos: the runner's photos must still all come first.
RUNNER = "2024"
OWN = {
    "finish/4.jpg": (0.99, (160, 80, 20)),
    "start/1.jpg": (0.95, (40, 140, 40)),
    "km5/7.jpg": (0.9, (30, 90, 160)),
    "finish/2.jpg": (0.85, (140, 40, 140)),
    "km5/3.jpg": (0.8, (20, 150, 150)),
    "start/9.jpg": (0.75, (60, 60, 60)),
}
NEAR = {  # number, confidence, how it matches 2024, colour
    "km5/12024.jpg": ("12024", 0.99, "partial", (120, 120, 20)),
    "finish/2025.jpg": ("2025", 0.98, "fuzzy", (20, 40, 120)),
}
STRANGER = ("start/9999.jpg", "9999", (90, 30, 60))  # no near number of 2024: nowhere on its page


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(f"no browser: {CHROMIUM} or {CHROMEDRIVER} is absent (scripts/install.sh installs them)")
    if webdriver is None:
        pytest.skip("the selenium package is not installed (it is in requirements.txt)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)  # explicit paths: Selenium Manager never downloads anything
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Network.enable", {})  # for Network.setExtraHTTPHeaders (the reviewer's password)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def race(tmp_path_factory):
    """A served index of rendered photos of RUNNER, near numbers and a stranger; yields (base url, {path: id},
    photo folder)."""
    tmp = tmp_path_factory.mktemp("race")
    root = tmp / "photos"
    with PhotoIndex(tmp / "index.sqlite") as index:
        index.bind_root(root)
        for path, (confidence, colour) in OWN.items():
            put(index, root, path, render_photo(RUNNER, colour), [(RUNNER, confidence)])
        for path, (number, confidence, _, colour) in NEAR.items():
            put(index, root, path, render_photo(number, colour), [(number, confidence)])
        put(index, root, STRANGER[0], render_photo(STRANGER[1], STRANGER[2]), [(STRANGER[1], 0.99)])
        ids = {photo.path: photo.id for photo in index.photos()}
    server, base = served(tmp / "index.sqlite", root)
    yield base, ids, root
    server.stop()


# --- what a screenshot shows ------------------------------------------------------------------------------


def screenshot(driver, path: Path) -> np.ndarray:
    """The viewport as the browser drew it, in device pixels; checked to be the whole viewport and not blank."""
    driver.save_screenshot(str(path))
    image = cv2.imread(str(path))
    assert image is not None, "the screenshot is not a PNG"
    width, height, ratio = driver.execute_script("return [innerWidth, innerHeight, devicePixelRatio]")
    assert image.shape[1::-1] == (round(width * ratio), round(height * ratio))
    assert (np.abs(image.astype(int) - np.median(image, axis=(0, 1))).max(axis=2) > 60).mean() > 0.005, "blank"
    return image


def on_screen(driver, element) -> dict:
    """The element's rect in the viewport, in device pixels (what a screenshot shows; `element.rect` is in CSS
    pixels of the whole document)."""
    rect = driver.execute_script("const r = arguments[0].getBoundingClientRect();"
                                 " return {x: r.x, y: r.y, width: r.width, height: r.height}", element)  # fmt: skip
    ratio = driver.execute_script("return devicePixelRatio")
    return {k: v * ratio for k, v in rect.items()}


def in_view(image: np.ndarray, rect: dict) -> bool:
    return rect["x"] >= 0 and rect["y"] >= 0 and rect["x"] + rect["width"] <= image.shape[1] and (
        rect["y"] + rect["height"] <= image.shape[0])  # fmt: skip


def box_colour_share(image: np.ndarray, rect: dict) -> float:
    """How much of the box's border, in the screenshot, has the page's box colour."""
    x, y, w, h = (round(rect[k]) for k in ("x", "y", "width", "height"))
    border = np.concatenate([image[y + 1, x : x + w], image[y + h - 2, x : x + w],
                             image[y : y + h, x + 1], image[y : y + h, x + w - 2]])  # fmt: skip
    return float((np.abs(border.astype(int) - BOX_BGR).max(axis=1) < 40).mean())


def inside(image: np.ndarray, rect: dict, inset: float) -> np.ndarray:
    x, y, w, h = (round(rect[k]) for k in ("x", "y", "width", "height"))
    d = round(inset)
    return image[y + d : y + h - d, x + d : x + w - d]


def background_of(image: np.ndarray, rect: dict) -> np.ndarray:
    """The median colour of a photo's top-left corner (away from its bib) where the screenshot shows it."""
    x, y, w, h = (rect[k] for k in ("x", "y", "width", "height"))
    patch = image[round(y + 0.05 * h) : round(y + 0.28 * h), round(x + 0.05 * w) : round(x + 0.25 * w)]
    return np.median(patch.reshape(-1, 3), axis=0)


def shows_colour(image: np.ndarray, rect: dict, colour: tuple[int, int, int]) -> bool:
    return bool(np.abs(background_of(image, rect) - colour).max() < 15)


def assert_bib_boxed(image: np.ndarray, box: dict, share: float = 0.9) -> None:
    """The box is drawn in the page's colour, and inside it is the photo's white bib."""
    assert in_view(image, box), box
    assert box_colour_share(image, box) > share
    assert np.median(inside(image, box, max(8.0, 0.15 * min(box["width"], box["height"])))) > 200


def colour_share(image: np.ndarray, colour: tuple[int, int, int]) -> float:
    """How much of the screenshot has this colour."""
    return float((np.abs(image.astype(int) - colour).max(axis=2) < 12).mean())


def photos_drawn(driver, image: np.ndarray, photo_cards: list) -> list[bool]:
    """Per card of a rendered photo: whether the screenshot shows it in full, its photo's colour and its bib boxed
    (an error if a card is drawn wrong)."""
    drawn = []
    for card in photo_cards:
        photo = on_screen(driver, card.find_element(By.TAG_NAME, "img"))
        drawn.append(in_view(image, photo))
        if drawn[-1]:
            path = card.get_attribute("title")
            assert shows_colour(image, photo, OWN[path][1] if path in OWN else NEAR[path][3]), path
            assert_bib_boxed(image, on_screen(driver, card.find_element(By.CLASS_NAME, "box")), 0.8)
    return drawn


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


# --- the browser's side of HTTP ------------------------------------------------------------------------------


def wait(driver, seconds: float = 15) -> WebDriverWait:
    return WebDriverWait(driver, seconds)


def loaded(driver) -> None:
    wait(driver).until(lambda d: d.execute_script(LOADED))


def status_of_page(driver) -> int:
    """The HTTP status of the document the browser shows (Navigation Timing)."""
    return driver.execute_script("return performance.getEntriesByType('navigation')[0].responseStatus")


def fetch_in_page(driver, path: str) -> tuple[int, str]:
    """A GET from the page's own script, sending no credentials: the status and the text the browser got."""
    script = ("const done = arguments[arguments.length - 1]; fetch(arguments[0], {credentials: 'omit'})"
              ".then(async r => done([r.status, await r.text()]), e => done([0, String(e)]))")  # fmt: skip
    status, text = driver.execute_async_script(script, path)
    return status, text


def authorize(driver, credentials: str | None) -> None:
    """Send HTTP Basic credentials ("user:password") with every request from now on; None: none."""
    headers = {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()} if credentials else {}
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})


def fetch(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def cards(driver, css: str = "main .grid") -> list:
    return driver.find_element(By.CSS_SELECTOR, css).find_elements(By.CSS_SELECTOR, "a.card")


def titles(driver, css: str = "main .grid") -> list[str]:
    return [card.get_attribute("title") for card in cards(driver, css)]


# --- the runner's search --------------------------------------------------------------------------------------


def test_a_runner_finds_their_photos_first_then_maybe_theirs_shares_and_downloads_them(race, browser, tmp_path):
    base, ids, root = race
    own = sorted(OWN, key=lambda path: -OWN[path][0])  # most likely first
    browser.set_window_size(1200, 900)
    browser.get(base + "/")
    home = screenshot(browser, tmp_path / "home.png")
    field = browser.find_element(By.NAME, "q")
    field.send_keys(RUNNER)
    field.submit()
    wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".grid .card")))
    loaded(browser)
    assert urlsplit(browser.current_url).query == f"q={RUNNER}"
    assert browser.find_element(By.CSS_SELECTOR, "main p.muted").text.startswith(f"6 photos for {RUNNER}")

    # The runner's own photos, all of them and most likely first, in the first grid; each captioned exact.
    first_grid, maybe_grid = browser.find_elements(By.CSS_SELECTOR, "main .grid")
    assert "maybe" not in first_grid.get_attribute("class") and "maybe" in maybe_grid.get_attribute("class")
    assert titles(browser) == own
    for card, path in zip(cards(browser), own, strict=True):
        assert card.find_element(By.CLASS_NAME, "caption").text == f"{RUNNER} exact {OWN[path][0]:.0%}"
        assert card.get_attribute("href") == f"{base}/photo/{ids[path]}?q={RUNNER}"
    # Below them, apart: "maybe you", only near numbers (another bib containing it, or one digit off), each
    # read more surely than some of the runner's own photos, and never the stranger's 9999.
    heading = browser.find_element(By.CSS_SELECTOR, "h2.maybe")
    assert heading.text == "Maybe you: 2 photos of near numbers"
    assert heading.rect["y"] > max(card.rect["y"] + card.rect["height"] for card in cards(browser))
    assert titles(browser, ".grid.maybe") == list(NEAR)
    for card, (number, confidence, kind, _) in zip(cards(browser, ".grid.maybe"), NEAR.values(), strict=True):
        assert card.find_element(By.CLASS_NAME, "caption").text == f"{number} {kind} {confidence:.0%}"
        assert card.find_element(By.CLASS_NAME, "kind").get_attribute("class") == f"kind {kind}"
        assert number != RUNNER and (RUNNER in number or sum(a != b for a, b in zip(number, RUNNER)) == 1)
        assert card.get_attribute("href").endswith("?q=")  # a stranger's photo is not stepped through as theirs
    assert STRANGER[0] not in browser.page_source

    # The screenshots show each photo where its card is, the runner's first, with its bib boxed; then, scrolled
    # down, the near numbers' photos below them.
    search = screenshot(browser, tmp_path / "search.png")
    assert distance(search, home) > 5
    assert all(photos_drawn(browser, search, cards(browser)[:4]))
    browser.execute_script("arguments[0].scrollIntoView({block: 'end'})", maybe_grid)
    below = screenshot(browser, tmp_path / "maybe.png")
    assert all(photos_drawn(browser, below, cards(browser, ".grid.maybe")))
    assert all(colour_share(below, near[3]) > 0.005 for near in NEAR.values())

    # "download all (zip)": a download of exactly the runner's photos.
    zipped = browser.find_element(By.LINK_TEXT, "download all (zip)")
    assert zipped.get_attribute("href") == f"{base}/zip?q={RUNNER}" and zipped.get_dom_attribute("download") == ""
    status, headers, body = fetch(zipped.get_attribute("href"))
    assert status == 200 and headers["Content-Disposition"] == f'attachment; filename="bib-{RUNNER}.zip"'
    assert sorted(zipfile.ZipFile(io.BytesIO(body)).namelist()) == sorted(p.replace("/", "__") for p in own)

    # "link to share": the runner's photos only, no "maybe you".
    browser.find_element(By.LINK_TEXT, "link to share").click()
    wait(browser).until(ec.url_contains("exact=1"))
    loaded(browser)
    assert urlsplit(browser.current_url).query == f"q={RUNNER}&exact=1"
    assert titles(browser) == own and not browser.find_elements(By.CSS_SELECTOR, ".maybe")
    assert "Maybe you" not in browser.page_source
    assert browser.find_element(By.CSS_SELECTOR, "input[name=exact]").is_selected()
    shared = screenshot(browser, tmp_path / "shared.png")
    assert distance(shared, search) > 0.5  # another page was drawn: the same photos first, and scrolled to
    assert all(photos_drawn(browser, shared, cards(browser)[:4]))  # its end, no near number's photo
    browser.execute_script("window.scrollTo(0, document.documentElement.scrollHeight)")
    end = screenshot(browser, tmp_path / "shared-end.png")
    assert sum(photos_drawn(browser, end, cards(browser))) >= 4
    assert all(colour_share(end, near[3]) < colour_share(below, near[3]) / 20 for near in NEAR.values())

    # The photo view: from the first card, on to the next photo, back, and the photo's download.
    cards(browser)[0].click()
    box = wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".photo .box")))
    loaded(browser)
    assert browser.current_url == f"{base}/photo/{ids[own[0]]}?q={RUNNER}"
    assert "1 of 6" in browser.find_element(By.CSS_SELECTOR, "nav.pages").text and box.text == f"{RUNNER} · 99%"
    assert not browser.find_elements(By.ID, "prev")
    view = screenshot(browser, tmp_path / "photo.png")
    assert_bib_boxed(view, on_screen(browser, box))
    assert shows_colour(view, on_screen(browser, browser.find_element(By.CSS_SELECTOR, ".photo img")), OWN[own[0]][1])
    assert distance(view, shared) > 5

    browser.find_element(By.ID, "next").click()
    wait(browser).until(ec.url_contains(f"/photo/{ids[own[1]]}?"))
    loaded(browser)
    assert "2 of 6" in browser.find_element(By.CSS_SELECTOR, "nav.pages").text
    assert browser.find_element(By.ID, "prev").get_attribute("href") == f"{base}/photo/{ids[own[0]]}?q={RUNNER}"
    second = screenshot(browser, tmp_path / "second.png")
    photo = on_screen(browser, browser.find_element(By.CSS_SELECTOR, ".photo img"))
    assert shows_colour(second, photo, OWN[own[1]][1]) and not shows_colour(second, photo, OWN[own[0]][1])
    assert_bib_boxed(second, on_screen(browser, browser.find_element(By.CSS_SELECTOR, ".photo .box")))

    browser.back()
    wait(browser).until(ec.url_contains(f"/photo/{ids[own[0]]}?"))
    assert "1 of 6" in browser.find_element(By.CSS_SELECTOR, "nav.pages").text
    download = browser.find_element(By.LINK_TEXT, "download the photo")
    assert download.get_attribute("href") == f"{base}/image/{ids[own[0]]}?download=1"
    assert download.get_dom_attribute("download") == ""
    status, headers, body = fetch(download.get_attribute("href"))
    assert status == 200 and body == (root / own[0]).read_bytes()
    assert headers["Content-Disposition"] == f'attachment; filename="{Path(own[0]).name}"'

    browser.find_element(By.LINK_TEXT, f"« all photos of {RUNNER}").click()
    wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "h2.maybe")))
    assert urlsplit(browser.current_url).query == f"q={RUNNER}" and titles(browser) == own


# --- phone and desktop -------------------------------------------------------------------------------------


def test_on_a_phone_and_a_desktop_the_grid_fits_the_screen_and_the_thumbnails_are_sharp(race, browser, tmp_path):
    base, _, _ = race
    sizes = {"desktop": (1200, 900, 1, False), "phone": (390, 844, 2, True)}
    columns = {}
    try:
        for name, (width, height, ratio, mobile) in sizes.items():
            browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                    "deviceScaleFactor": ratio, "mobile": mobile})  # fmt: skip
            browser.get(f"{base}/?q={RUNNER}")
            loaded(browser)
            inner, scroll, dpr = browser.execute_script(
                "return [innerWidth, document.documentElement.scrollWidth, devicePixelRatio]")  # fmt: skip
            assert (inner, dpr) == (width, ratio) and scroll <= inner, f"{name}: scrolls sideways"
            own = cards(browser)
            columns[name] = len({round(card.rect["x"]) for card in own})
            assert all(card.rect["x"] + card.rect["width"] <= width for card in own)
            # Thumbnails loaded, and sharp: at least one of the file's pixels per device pixel, so on the phone's
            # screen the 2x thumbnail (of a 400 px photo: 400 px, not blown up; its naturalWidth is 200 CSS px).
            images = browser.execute_script("return [...document.querySelectorAll('.grid img')]"
                                            ".map(i => [i.currentSrc, i.naturalWidth, i.clientWidth])")  # fmt: skip
            assert len(images) == len(OWN) + len(NEAR)
            for src, natural, shown_width in images:
                sharp = src.endswith("?size=2x")
                assert sharp == (ratio == 2) and natural == (200 if sharp else 320), src
                assert natural * (2 if sharp else 1) >= shown_width * ratio > 200, (name, src, shown_width)
            shot = screenshot(browser, tmp_path / f"{name}.png")
            assert shot.shape[:2] == (height * ratio, width * ratio)
            assert sum(photos_drawn(browser, shot, own)) >= columns[name]  # at least the first row, all drawn
            # The photo's own page fits the screen too, its bib boxed.
            own[0].click()
            box = wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".photo .box")))
            loaded(browser)
            inner, scroll = browser.execute_script("return [innerWidth, document.documentElement.scrollWidth]")
            assert scroll <= inner, f"{name}: the photo page scrolls sideways"
            view = screenshot(browser, tmp_path / f"{name}-photo.png")
            assert_bib_boxed(view, on_screen(browser, box))
            photo = on_screen(browser, browser.find_element(By.CSS_SELECTOR, ".photo img"))
            assert 0 <= photo["y"] < view.shape[0] / 2 and photo["x"] + photo["width"] <= view.shape[1]
            assert shows_colour(view, photo, OWN[max(OWN, key=lambda path: OWN[path][0])][1])
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert columns["desktop"] > columns["phone"] == 2


def test_search_and_photo_view_in_a_browser(site, browser, tmp_path):
    base, ids, _ = site
    browser.set_window_size(1200, 900)
    browser.get(base + "/")
    field = browser.find_element(By.NAME, "q")
    field.send_keys("1234")
    field.submit()
    first = wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".grid .card")))
    loaded(browser)
    assert first.get_attribute("href").endswith(f"/photo/{ids['a/bib_1234.jpg']}?q=1234")
    assert first.find_element(By.CLASS_NAME, "caption").text == "1234 exact 97%"
    box = first.find_element(By.CLASS_NAME, "box")
    thumb = first.find_element(By.TAG_NAME, "img")
    assert box.is_displayed() and box.size["width"] > 20
    # The box covers the bib's place on the thumbnail: 30%..70% across, 33%..67% down.
    assert box.rect["x"] - thumb.rect["x"] == pytest.approx(0.3 * thumb.rect["width"], abs=2)
    assert box.rect["width"] == pytest.approx(0.4 * thumb.rect["width"], abs=2)
    search = screenshot(browser, tmp_path / "search.png")
    assert search.shape[1] == 1200
    assert box_colour_share(search, box.rect) > 0.9

    first.click()
    box = wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".photo .box")))
    loaded(browser)
    assert box.text == "1234 · 97%"
    view = screenshot(browser, tmp_path / "photo.png")
    assert box_colour_share(view, box.rect) > 0.9
    # Inside the box is the photo's white bib: the box is drawn where the bib is.
    x, y, w, h = (round(box.rect[k]) for k in ("x", "y", "width", "height"))
    inside_box = view[y + 8 : y + h - 8, x + 8 : x + w - 8]
    assert np.median(inside_box) > 200
    assert np.abs(view.astype(int) - search).mean() > 5  # another page was drawn
    browser.find_element(By.LINK_TEXT, "1234").click()
    wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".grid .card")))
    assert "q=1234" in browser.current_url


def test_on_a_phone_the_runners_photos_come_first_and_labels_leave_the_bibs_visible(site, browser, tmp_path):
    base, ids, _ = site
    browser.set_window_size(390, 844)
    try:
        browser.get(base + "/?q=1234")
        loaded(browser)
        first = browser.find_element(By.CSS_SELECTOR, ".grid .card")
        maybe = browser.find_element(By.CSS_SELECTOR, "h2.maybe")
        assert first.rect["y"] < maybe.rect["y"] and "Maybe you: 2 photos" in maybe.text
        assert first.rect["width"] < 390  # the grid fits the phone's width
        browser.save_screenshot(str(tmp_path / "phone.png"))
        shot = cv2.imread(str(tmp_path / "phone.png"))
        box = first.find_element(By.CLASS_NAME, "box").rect
        scale = shot.shape[1] / browser.execute_script("return window.innerWidth")  # device pixels per CSS pixel
        assert box_colour_share(shot, {k: v * scale for k, v in box.items()}) > 0.8  # the bib's box is drawn
        browser.get(f"{base}/photo/{ids['a/bib_1234.jpg']}?q=1234")
        label = browser.find_element(By.CSS_SELECTOR, ".photo .label")
        box = browser.find_element(By.CSS_SELECTOR, ".photo .box")
        assert label.rect["y"] + label.rect["height"] <= box.rect["y"] + 1  # above its box: the bib stays visible
    finally:
        browser.set_window_size(1200, 900)


# --- the selfie search, on real photos --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def selfie_race(tmp_path_factory):
    """RBNR's runner 2874 (a group of rbnr_same_runner_groups) and another runner, tagged with the real models
    once; yields (photo folder, index, the runner's photos, the stranger's photo, the selfie: a face cut from the
    runner's first photo)."""
    from jerseynum.photos.tagger import tag_folder
    from tests.conftest import data_set

    root = data_set("rbnr_bib_photos")
    group = json.loads((data_set("rbnr_same_runner_groups") / "groups.json").read_text())["set1/2874"]
    labels = json.loads((root / "labels.json").read_text())
    stranger = "set1_01.JPG"  # runner 3638's
    assert len(group["photos"]) >= 2 and stranger not in group["photos"] and group["bib"] not in labels[stranger]
    tmp = tmp_path_factory.mktemp("selfie")
    photos = tmp / "photos"
    photos.mkdir()
    for name in [*group["photos"], stranger]:
        (photos / name).write_bytes((root / "images" / name).read_bytes())
    tag_folder(photos, tmp / "race.db", workers=1, progress=False)
    with PhotoIndex(tmp / "race.db") as index:
        runner = next(r for r in index.runner_reads() if r.path == group["photos"][0] and r.read.number == group["bib"])
    x1, y1, x2, y2 = runner.read.evidence["face"]
    image = cv2.imread(str(photos / group["photos"][0]))
    margin = x2 - x1
    selfie = tmp / "me.jpg"
    cv2.imwrite(str(selfie), image[max(0, y1 - margin) : y2 + margin, max(0, x1 - margin) : x2 + margin])
    yield photos, tmp / "race.db", group["photos"], stranger, selfie


@pytest.mark.data
def test_a_selfie_uploaded_in_the_browser_finds_the_runners_other_photos(browser, selfie_race, tmp_path):
    photos, index_path, group, stranger, selfie = selfie_race
    server, base = served(index_path, photos, selfie_search=True)
    try:
        browser.set_window_size(1200, 900)
        browser.get(base + "/")
        browser.find_element(By.PARTIAL_LINK_TEXT, "photo of your face").click()
        upload = wait(browser).until(ec.presence_of_element_located((By.NAME, "selfie")))
        assert urlsplit(browser.current_url).path == "/selfie"
        form = screenshot(browser, tmp_path / "form.png")
        upload.send_keys(str(selfie))
        browser.find_element(By.XPATH, "//button[text()='Find my photos']").click()
        wait(browser, 120).until(ec.presence_of_element_located((By.CSS_SELECTOR, "main .grid .card")))
        loaded(browser)
        assert f"{len(group)} photos of a runner with this face, nearest first" in browser.page_source
        # The runner's photos, the one the face was cut from first; never the stranger's.
        assert titles(browser) == group and stranger not in browser.page_source
        found = [float(re.fullmatch(r"face distance (\d\.\d\d) \(.+\)", card.text.splitlines()[-1])[1])
                 for card in cards(browser)]  # fmt: skip
        assert found == sorted(found) and found[0] < 0.2 and found[-1] <= 0.6
        # The screenshot shows those photos' thumbnails, each where its card is, and not the stranger.
        shot = screenshot(browser, tmp_path / "found.png")
        assert distance(shot, form) > 5
        for card in cards(browser):
            rect = on_screen(browser, card.find_element(By.TAG_NAME, "img"))
            assert in_view(shot, rect)
            x, y, w, h = (round(rect[k]) for k in ("x", "y", "width", "height"))
            own, other = (distance(shot[y : y + h, x : x + w], cv2.resize(cv2.imread(str(photos / name)), (w, h),
                          interpolation=cv2.INTER_AREA)) for name in (card.get_attribute("title"), stranger))  # fmt: skip
            assert own < 12 and own < other - 5, (card.get_attribute("title"), own, other)
    finally:
        server.stop()


# --- the reviewer ------------------------------------------------------------------------------------------


def test_a_reviewer_corrects_a_number_in_the_browser_and_the_correction_survives_a_retag(browser, tmp_path):
    from jerseynum.photos.tagger import tag_folder
    from tests.test_event import FaceTagger

    photos, index_path = tmp_path / "photos", tmp_path / "race.db"
    photos.mkdir()
    shades = {f"shot{k}.png": 10 * (k + 1) for k in range(4)}  # FaceTagger reads a photo's shot from its shade
    for name, shade in shades.items():  # shot0 reads 2024, shot1-2 get it propagated, shot3's runner has none
        cv2.imwrite(str(photos / name), np.full((24, 32, 3), shade, np.uint8))
    tag_folder(photos, index_path, FaceTagger, version="v1", workers=1, progress=False)
    server, base = served(index_path, photos, review_password=PASSWORD)
    review = f"{base}/review?below=1.01"  # every number (they are ~0.97 likely)

    def shows_photos(shot: np.ndarray, css: str) -> list[str]:
        """The photos the screenshot shows in the cards under `css`, told by their shade."""
        shown = []
        for card in cards(browser, css):
            rect = on_screen(browser, card.find_element(By.TAG_NAME, "img"))
            assert in_view(shot, rect)
            colour = np.median(inside(shot, rect, 2).reshape(-1, 3), axis=0)
            shown += [name for name, shade in shades.items() if np.abs(colour - shade).max() < 4]
        return shown

    try:
        # Without the password (or with a wrong one) the browser gets a 401, and no review page.
        authorize(browser, None)
        browser.get(f"{base}/review")
        assert status_of_page(browser) == 401 and not browser.find_elements(By.TAG_NAME, "form")
        browser.get(base + "/")  # what the 401 says, fetched by a page of the site (a 401 document shows nothing
        status, text = fetch_in_page(browser, "/review")  # until its password prompt is answered)
        assert status == 401 and "the review page needs the password given to jerseynum serve" in text, text
        assert "numbers less likely" not in text
        authorize(browser, "me:wrong")
        browser.get(review)
        assert status_of_page(browser) == 401 and "numbers less likely" not in browser.page_source

        authorize(browser, f"me:{PASSWORD}")
        browser.set_window_size(1200, 900)
        browser.get(review)
        loaded(browser)
        assert status_of_page(browser) == 200
        heading = browser.find_element(By.CSS_SELECTOR, "main h2")
        assert heading.text == "3 numbers less likely right than 101%, least likely first"
        assert titles(browser) == ["shot0.png", "shot1.png", "shot2.png"]
        before = screenshot(browser, tmp_path / "review.png")
        assert shows_photos(before, "main .grid") == ["shot0.png", "shot1.png", "shot2.png"]
        card = browser.find_element(By.XPATH, "//div[contains(@class, 'review')][a[@title='shot1.png']]")
        assert card.find_element(By.CLASS_NAME, "caption").text == "2024 · 98% · propagated"
        card.find_element(By.NAME, "new").send_keys("2025")
        card.find_element(By.XPATH, ".//button[text()='correct']").click()

        done = wait(browser).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "p.done")))
        assert done.text == "shot1.png: remove 2024, add 2025"  # saved
        assert urlsplit(browser.current_url).path == "/review" and status_of_page(browser) == 200
        loaded(browser)
        assert browser.find_element(By.CSS_SELECTOR, "main h2").text.startswith("2 numbers less likely")
        assert titles(browser) == ["shot0.png", "shot2.png"]  # a person's word is not asked about again
        after = screenshot(browser, tmp_path / "saved.png")
        assert shows_photos(after, "main .grid") == ["shot0.png", "shot2.png"] and distance(after, before) > 0.5

        # The search follows: 2025 finds the photo; 2024 no longer lists it as its own, only as a near number.
        authorize(browser, None)  # the search needs no password
        browser.get(f"{base}/?q=2025")
        loaded(browser)
        assert titles(browser) == ["shot1.png"]
        assert cards(browser)[0].find_element(By.CLASS_NAME, "caption").text == "2025 exact 100%"
        assert shows_photos(screenshot(browser, tmp_path / "2025.png"), "main .grid") == ["shot1.png"]
        browser.get(f"{base}/?q=2024")
        loaded(browser)
        assert titles(browser) == ["shot0.png", "shot2.png"] and titles(browser, ".grid.maybe") == ["shot1.png"]
        assert cards(browser, ".grid.maybe")[0].find_element(By.CLASS_NAME, "caption").text == "2025 fuzzy 100%"
        assert shows_photos(screenshot(browser, tmp_path / "2024.png"), "main .grid") == ["shot0.png", "shot2.png"]

        # The photos are read again (a new model): the correction stays.
        report = tag_folder(photos, index_path, FaceTagger, version="v2", workers=1, progress=False)
        assert (report.tagged, report.unchanged) == (4, 0)
        with PhotoIndex(index_path, read_only=True) as index:
            numbers = {r.path: [(n.number, n.status) for n in r.numbers] for r in index.photos()}
            read = [r.read.number for r in index.runner_reads() if r.path == "shot1.png"]
        assert read == [""] and numbers["shot1.png"] == [("2025", "corrected")]  # not read: the person's number
        browser.get(f"{base}/?q=2025")
        loaded(browser)
        assert titles(browser) == ["shot1.png"]
        assert cards(browser)[0].find_element(By.CLASS_NAME, "caption").text == "2025 exact 100%"
        browser.get(f"{base}/?q=2024")
        assert titles(browser) == ["shot0.png", "shot2.png"] and titles(browser, ".grid.maybe") == ["shot1.png"]
    finally:
        authorize(browser, None)
        server.stop()
