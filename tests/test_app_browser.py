"""The labeling web app end to end, in headless Chromium (Debian's ``chromium``, driven by
Playwright; no browser is ever downloaded). Each test runs ``raresift serve`` on 127.0.0.1 in a
child process and stops it by its PID. Without Chromium or Playwright the module is skipped
and says why (``make browser`` installs Chromium)."""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import shutil
import statistics
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from .app_server import CHROMIUM_FLAGS, HOSTILE, ServerProcess, make_images, make_texts_csv

pytestmark = pytest.mark.slow


def _chromium() -> str | None:
    """RARESIFT_CHROMIUM when set (and only it), else Debian's chromium."""
    if "RARESIFT_CHROMIUM" in os.environ:
        chosen = os.environ["RARESIFT_CHROMIUM"]
        return chosen if Path(chosen).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM = _chromium()
if CHROMIUM is None:
    pytest.skip(
        "browser tests skipped: no Chromium found (run `make browser`, or apt-get install "
        "chromium, or set RARESIFT_CHROMIUM)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="browser tests skipped: pip install playwright (in [dev])"
)
pytest.importorskip("starlette", reason="browser tests skipped: pip install 'raresift[app]'")

from raresift.errors import DatasetNotInstalledError  # noqa: E402
from raresift.session import Session  # noqa: E402

REBIND_HOST = "rebind.test"  # resolves to 127.0.0.1 inside the test browser only
BROWSER_FLAGS = [*CHROMIUM_FLAGS, f"--host-resolver-rules=MAP {REBIND_HOST} 127.0.0.1"]
# Playwright's wait_for_function evaluates strings, which the app's CSP forbids; the tests
# bypass the CSP so that escaping alone must keep hostile text inert (the CSP is checked apart).
CONTEXT = {"viewport": {"width": 1280, "height": 860}, "bypass_csp": True}
TEXT_BUDGET = 10
N_TEXTS = 40
N_IMAGES = 120
IMAGE_BUDGET = 100


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(**CONTEXT, accept_downloads=True)
    page = context.new_page()
    page.dialogs = []
    page.errors = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    context.close()


@pytest.fixture(scope="module")
def text_template(tmp_path_factory):
    """A session over 40 texts (a concept, batches of 10), made once and copied per test."""
    root = tmp_path_factory.mktemp("texts")
    table = make_texts_csv(root / "texts.csv", N_TEXTS)
    try:
        session = Session.create(
            root / "project",
            texts=table,
            text_column="text",
            concept="corn",
            budget=TEXT_BUDGET,
            progress=False,
        )
    except DatasetNotInstalledError as exc:
        pytest.skip(str(exc))
    session.close()
    return root / "project"


@pytest.fixture(scope="module")
def image_template(tmp_path_factory):
    """A session over 120 small images (batches of 100), made once and copied per test."""
    root = tmp_path_factory.mktemp("images")
    images = make_images(root / "images", N_IMAGES)
    try:
        session = Session.create(
            root / "project", images=images, concept="disc", budget=IMAGE_BUDGET, progress=False
        )
    except DatasetNotInstalledError as exc:
        pytest.skip(str(exc))
    session.close()
    return root / "project"


def copy_project(template: Path, tmp_path: Path) -> Path:
    target = tmp_path / "project"
    shutil.copytree(template, target)
    return target


@pytest.fixture
def serve(tmp_path):
    """``serve(project)`` starts ``raresift serve`` for the test; all are stopped at its end."""
    started = []

    def start(project: Path, *args: str) -> ServerProcess:
        server = ServerProcess(project, tmp_path / "server.log", *args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def stored_answers(project: Path) -> dict[str, str]:
    with Session.open(project) as session:
        return {str(a["id"]): a["answer"] for a in session.answers()}


def cards(page) -> list[dict]:
    return page.eval_on_selector_all(
        ".card",
        "cs => cs.map(c => ({id: c.dataset.id, answer: c.dataset.answer,"
        " state: c.querySelector('.state').textContent.trim()}))",
    )


def wait_all_saved(page, n: int, timeout: float = 20_000) -> None:
    page.wait_for_function(
        "n => Array.from(document.querySelectorAll('.card .state'))"
        ".filter(s => s.textContent.trim() === 'saved').length >= n",
        arg=n,
        timeout=timeout,
    )


def open_batch(page, server: ServerProcess, batch: int) -> None:
    """Open the labeling view, asking for the first batch when none is stored yet."""
    page.goto(server.url + "/label")
    if page.locator(".card").count() == 0:
        page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelectorAll('.card').length === {batch}")


# ---------------------------------------------------------------------- labeling
def test_label_a_batch_with_the_keyboard_undo_next_batch_and_export(
    page, serve, text_template, tmp_path
):
    project = copy_project(text_template, tmp_path)
    server = serve(project)
    assert server.url.startswith("http://127.0.0.1:")  # loopback unless --host says otherwise
    open_batch(page, server, TEXT_BUDGET)
    first_batch = [c["id"] for c in cards(page)]
    assert page.locator(".card.current").get_attribute("data-id") == first_batch[0]

    keys = ["y", "n", "n", "s", "j", "d", "n", "n", "y", "n"]
    for key in keys:
        page.keyboard.press(key)  # answers the current card and moves to the next unanswered
    wait_all_saved(page, TEXT_BUDGET)
    expected = dict(
        zip(
            first_batch,
            ["1", "0", "0", "skip", "junk", "duplicate"] + ["0", "0", "1", "0"],
            strict=True,
        )
    )
    assert {c["id"]: c["answer"] for c in cards(page)} == expected
    assert stored_answers(project) == expected
    assert page.locator("#answered-count").text_content() == str(TEXT_BUDGET)

    page.keyboard.press("u")  # undo the last answer
    last = first_batch[-1]
    page.wait_for_function(
        f"document.querySelector('.card[data-id=\"{last}\"]').dataset.answer === ''"
    )
    del expected[last]
    assert stored_answers(project) == expected

    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowRight")
    assert page.locator(".card.current").get_attribute("data-id") == last

    # Enter: the next batch is selected in the background. The job's progress replies are held
    # at "running" for a moment so the indicator can be seen; an answer typed meanwhile is kept.
    running = {"state": "running", "run": 1, "fraction": 0.4, "message": "about 3 s left"}
    page.route("**/api/job", lambda route: route.fulfill(json=running))
    page.keyboard.press("Enter")
    page.wait_for_selector("#job:not([hidden])")
    assert page.locator("#job-message").text_content() == "about 3 s left"
    assert page.locator("#job-bar").evaluate("bar => bar.value") == pytest.approx(0.4)
    page.keyboard.press("y")  # typed while the next batch is being selected
    page.wait_for_selector(f'.card[data-id="{last}"] .state:text("saved")')
    expected[last] = "1"
    page.unroute("**/api/job")
    page.wait_for_function(
        "document.querySelector('.batchbar strong').textContent === 'Round 2'", timeout=60_000
    )
    second = {c["id"]: c["answer"] for c in cards(page)}
    assert len(second) == TEXT_BUDGET
    assert not set(second) & (set(first_batch) - {last})  # only unanswered items were picked
    assert all(answer == expected.get(item, "") for item, answer in second.items())
    assert stored_answers(project) == expected

    page.goto(server.url + "/progress")
    assert page.locator(".figure .value").first.text_content() == str(len(expected))
    verdicts = page.locator(".rules .verdict").all_text_contents()
    assert len(verdicts) == 4
    assert all(v in ("stop", "keep labeling", "cannot judge") for v in verdicts)
    assert page.locator("img.curve").evaluate("img => img.complete && img.naturalWidth > 0")
    with page.expect_download() as download:
        page.click("text=Answers (CSV)")
    exported = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert {r["id"]: r["answer"] for r in exported} == expected
    with page.expect_download() as download:
        page.click("text=Label Studio tasks (JSON)")
    tasks = json.loads(Path(download.value.path()).read_text())
    assert len(tasks) == N_TEXTS and all("data" in t for t in tasks)
    assert not page.errors and not page.dialogs


def test_sigkill_mid_labeling_loses_no_answer_shown_as_saved(page, serve, text_template, tmp_path):
    project = copy_project(text_template, tmp_path)
    server = serve(project)
    open_batch(page, server, TEXT_BUDGET)
    for key in "ynynyny":
        page.keyboard.press(key)
    wait_all_saved(page, 3)
    server.kill()  # SIGKILL while answers may still be on their way
    page.keyboard.press("n")
    page.keyboard.press("y")
    time.sleep(0.5)
    shown = cards(page)
    saved = {c["id"]: c["answer"] for c in shown if c["state"] == "saved"}
    assert len(saved) >= 3
    assert any(c["state"].startswith("not saved") for c in shown)  # the page says so

    stored = stored_answers(project)
    assert {k: stored.get(k) for k in saved} == saved

    restarted = serve(project)
    page.goto(restarted.url + "/label")
    after = {c["id"]: c["answer"] for c in cards(page)}
    assert {k: after[k] for k in saved} == saved
    assert {k: v for k, v in after.items() if v} == stored


def test_two_tabs_the_later_answer_wins_and_the_other_tab_is_told(
    browser, serve, text_template, tmp_path
):
    project = copy_project(text_template, tmp_path)
    server = serve(project)
    tabs = []
    for _ in range(2):
        context = browser.new_context(**CONTEXT)
        tabs.append(context.new_page())
    first, second = tabs
    open_batch(first, server, TEXT_BUDGET)
    open_batch(second, server, TEXT_BUDGET)
    item = cards(first)[0]["id"]
    card = f'.card[data-id="{item}"]'

    first.click(f'{card} button[data-answer="1"]')
    first.wait_for_selector(f'{card} .state:text("saved")')
    second.click(f'{card} button[data-answer="0"]')  # this tab never saw the first answer
    second.wait_for_selector(f'{card} .state:text("saved")')
    second.wait_for_selector(".notice.warn")
    assert "replaced" in second.locator(".notice.warn").first.text_content()
    assert stored_answers(project)[item] == "0"

    first.wait_for_function(
        f"document.querySelector('{card}').dataset.answer === '0'", timeout=10_000
    )
    assert "another tab" in first.locator(f"{card} .state").text_content()
    assert first.locator(".notice.warn").count() >= 1
    for tab in tabs:
        tab.context.close()


def test_item_view_shows_the_nearest_labeled_neighbours_and_takes_answers(
    page, serve, text_template, tmp_path
):
    project = copy_project(text_template, tmp_path)
    with Session.open(project) as session:
        for item, label in (("t006", "1"), ("t012", "1"), ("t007", "0"), ("t009", "0")):
            session.answer(item, label)
    server = serve(project)
    page.goto(server.url + "/item?id=t018")  # "corn harvest ..." like t006 and t012
    neighbours = page.locator(".neighbours .item-id").all_text_contents()
    assert neighbours[:2] == ["t006", "t012"] or neighbours[:2] == ["t012", "t006"]
    assert set(neighbours) == {"t006", "t012", "t007", "t009"}
    assert page.locator(".neighbours .answer-label").first.text_content().strip() == "answered yes"
    page.keyboard.press("y")
    page.wait_for_selector('.item-answers .state:text("saved")')
    assert stored_answers(project)["t018"] == "1"
    page.reload()
    assert "yes by browser-test" in page.locator(".history").text_content()


# ---------------------------------------------------------------------- security
def test_hostile_text_metadata_and_ids_render_as_text(page, serve, text_template, tmp_path):
    project = copy_project(text_template, tmp_path)
    server = serve(project)
    with Session.open(project) as session:
        session.next(budget=N_TEXTS)  # every item in one batch, the hostile ones included
    page.goto(server.url + "/label")
    excerpts = page.locator(".excerpt").all_text_contents()
    for hostile in HOSTILE:
        assert hostile in excerpts
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("main script").count() == 0

    long_text = page.locator('.card[data-id="t002"]')
    assert long_text.locator(".excerpt").text_content().endswith("…")
    long_text.locator(".reason").click()  # a click on a card makes it the current one
    page.keyboard.press("t")  # the full text on demand
    assert long_text.locator("details").get_attribute("open") is not None
    assert long_text.locator(".full").is_visible()

    page.goto(server.url + "/item?id=t001")  # hostile text and hostile metadata value
    assert page.locator(".full-text").text_content() == HOSTILE[1]
    assert HOSTILE[0] in page.locator(".metadata").text_content()
    page.goto(server.url + "/item?id=" + quote(HOSTILE[0]))  # an unknown, hostile id
    assert "unknown id" in page.locator("body").text_content()
    page.wait_for_timeout(300)
    assert page.dialogs == [] and not page.errors


def test_images_by_item_id_only_and_bad_files_get_a_placeholder(
    page, serve, image_template, tmp_path
):
    project = copy_project(image_template, tmp_path)
    with Session.open(project) as session:
        batch = session.next()
        broken, huge = session.item(batch[0].id)["image"], session.item(batch[1].id)["image"]
    images = Path(broken).parent
    shutil.copytree(images, tmp_path / "images-backup")
    try:
        Path(broken).write_text("this is not a JPEG")
        from PIL import Image

        Image.new("L", (9000, 9000)).save(huge)  # 81 M pixels: over the limit
        server = serve(project)
        open_batch(page, server, IMAGE_BUDGET)
        page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=30_000)
        widths = page.eval_on_selector_all(".thumb img", "imgs => imgs.map(i => i.naturalWidth)")
        assert len(widths) == IMAGE_BUDGET and min(widths) > 0  # the placeholders render too
        for item_id, reason in ((batch[0].id, "not an image"), (batch[1].id, "too large")):
            response = page.request.get(f"{server.url}/thumb?id={quote(str(item_id))}")
            assert response.status == 200
            assert reason in response.headers["x-raresift-image-error"]
            assert response.headers["content-type"].startswith("image/svg+xml")
        good = page.request.get(f"{server.url}/thumb?id={quote(str(batch[2].id))}")
        assert good.headers["content-type"] == "image/jpeg"

        for attempt in (
            "/thumb?id=../../etc/passwd",
            "/thumb?id=/etc/passwd",
            "/image?id=" + quote(str(images / "img000.jpg")),
            "/image?id=..%2F..%2F..%2Fetc%2Fpasswd",
            "/static/../../../etc/passwd",
            "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        ):
            response = page.goto(server.url + attempt)
            assert response.status == 404, attempt
            assert "root:" not in page.content()
    finally:
        shutil.rmtree(images)
        shutil.copytree(tmp_path / "images-backup", images)


def _request(url: str, method: str = "GET", path: str = "/label", **headers) -> int:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    body = json.dumps({"id": "t003", "answer": "1"}) if method == "POST" else None
    connection.putrequest(method, path, skip_host="host" in headers)
    for key, value in headers.items():
        connection.putheader(key.replace("_", "-"), value)
    if body is not None:
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body.encode() if body else None)
    status = connection.getresponse().status
    connection.close()
    return status


def test_dns_rebinding_cross_site_writes_and_missing_tokens_are_refused(
    page, serve, text_template, tmp_path
):
    project = copy_project(text_template, tmp_path)
    server = serve(project)
    port = server.url.rsplit(":", 1)[1]

    rebound = page.goto(f"http://{REBIND_HOST}:{port}/label")  # DNS rebinding, in the browser
    assert rebound.status == 421 and "csrf-token" not in page.content()

    attacker = "http://attacker.test"
    page.route(
        f"{attacker}/**",
        lambda route: route.fulfill(content_type="text/html", body="<h1>hello</h1>"),
    )
    page.goto(attacker + "/")
    outcome = page.evaluate(
        """async url => {
            const body = JSON.stringify({id: "t003", answer: "1"});
            try {  // a blind cross-site write: refused by the server, if the browser sends it
                await fetch(url + "/api/answer", {method: "POST", mode: "no-cors", body,
                                                   headers: {"Content-Type": "text/plain"}});
            } catch (e) {}
            try {
                await fetch(url + "/api/status");
                return "read";
            } catch (e) { return "blocked"; }
        }""",
        server.url,
    )
    assert outcome == "blocked"  # no CORS grant: another site cannot read the app
    assert "t003" not in stored_answers(project)

    assert _request(server.url, host=f"{REBIND_HOST}:{port}") == 421
    assert _request(server.url, host=f"127.0.0.1:{port}") == 200
    assert _request(server.url, "POST", "/api/answer") == 403  # no token
    assert _request(server.url, "POST", "/api/answer", x_csrf_token="guess") == 403
    page.goto(server.url + "/label")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    foreign = _request(
        server.url, "POST", "/api/answer", x_csrf_token=token, origin="http://attacker.test"
    )
    assert foreign == 403
    assert "t003" not in stored_answers(project)
    assert _request(server.url, "POST", "/api/answer", x_csrf_token=token) == 200
    assert stored_answers(project)["t003"] == "1"


# ---------------------------------------------------------------------- speed
SCROLL_FRAMES = """async () => {
    const frames = [];
    const step = (document.documentElement.scrollHeight - innerHeight) / 60;
    let last = performance.now();
    for (let i = 0; i < 60; i++) {
        window.scrollBy(0, step);
        await new Promise(resolve => requestAnimationFrame(resolve));
        const now = performance.now();
        frames.push(now - last);
        last = now;
    }
    frames.sort((a, b) => a - b);
    return {p95: frames[Math.floor(frames.length * 0.95)], max: frames[frames.length - 1]};
}"""


def test_a_batch_of_100_images_renders_in_under_a_second(
    browser, serve, image_template, tmp_path, capsys
):
    project = copy_project(image_template, tmp_path)
    server = serve(project)
    context = browser.new_context(**CONTEXT)
    warm = context.new_page()
    open_batch(warm, server, IMAGE_BUDGET)  # makes and caches the thumbnails on the server
    warm.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=60_000)
    context.close()

    timings = []
    for _ in range(3):  # a fresh context each time: nothing cached in the browser
        context = browser.new_context(**CONTEXT)
        page = context.new_page()
        page.goto(server.url + "/label", wait_until="commit")
        page.wait_for_function(
            "document.querySelectorAll('.thumb img').length === 100 && "
            "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)",
            polling="raf",
            timeout=30_000,
        )
        timings.append(page.evaluate("performance.now()"))
        assert page.locator(".card").count() == IMAGE_BUDGET
        frames = page.evaluate(SCROLL_FRAMES)
        context.close()
    median = statistics.median(timings)
    with capsys.disabled():
        print(
            f"\n100-image batch page, thumbnails cached: {median:.0f} ms median from navigation "
            f"to every image decoded ({', '.join(f'{t:.0f}' for t in timings)} ms); scrolling "
            f"it top to bottom in 60 frames: {frames['p95']:.0f} ms 95th-percentile frame, "
            f"{frames['max']:.0f} ms longest"
        )
    assert median < 1000


# ---------------------------------------------------------------------- layout and focus
WIDTHS = (390, 1280)  # a phone held upright, a laptop
N_TINY = 84
TINY_BUDGET = 40
FITS = """() => ({scroll: document.documentElement.scrollWidth,
                 client: document.documentElement.clientWidth})"""
IN_VIEW = """() => {
    const card = document.querySelector('.card.current');
    const rect = card.getBoundingClientRect();
    const bar = document.querySelector('.topbar').getBoundingClientRect();
    return {id: card.dataset.id, focused: document.activeElement === card,
            top: rect.top, bottom: rect.bottom, below: bar.bottom, height: innerHeight};
}"""


@pytest.fixture(scope="module")
def tiny_template(tmp_path_factory):
    """A session over 84 images of 28 x 28 pixels (batches of 40), made once."""
    root = tmp_path_factory.mktemp("tiny")
    images = make_images(root / "images", N_TINY, size=(28, 28))
    try:
        session = Session.create(
            root / "project", images=images, concept="disc", budget=TINY_BUDGET, progress=False
        )
    except DatasetNotInstalledError as exc:
        pytest.skip(str(exc))
    session.close()
    return root / "project"


def test_every_page_fits_a_phone_and_a_laptop_and_small_images_are_enlarged(
    browser, serve, text_template, tiny_template, tmp_path
):
    texts = copy_project(text_template, tmp_path / "t")
    images = copy_project(tiny_template, tmp_path / "i")
    for project in (texts, images):  # a curve, a round and the stopping rules to show
        with Session.open(project) as session:
            batch = session.next()
            session.answer_many([(b.id, str(b.position % 2)) for b in batch[:6]])
    pages = [
        (serve(texts), ["/label", "/progress", "/item?id=t002"]),
        (serve(images), ["/label", "/progress", "/item?id=img003.jpg"]),
    ]
    for width in WIDTHS:
        context = browser.new_context(**{**CONTEXT, "viewport": {"width": width, "height": 800}})
        page = context.new_page()
        for server, paths in pages:
            for path in paths:
                page.goto(server.url + path)
                page.wait_for_function("Array.from(document.images).every(i => i.complete)")
                fits = page.evaluate(FITS)
                assert fits["scroll"] <= fits["client"], (width, path, fits)
        # the 28 px images are drawn at 120 px or more, in the item view (the page still open)
        full = page.locator("img.full").bounding_box()
        assert full["width"] >= 300 and full["height"] >= 300, (width, full)
        page.goto(pages[1][0].url + "/label")  # ... and in the grid
        page.wait_for_function("Array.from(document.images).every(i => i.complete)")
        sizes = page.eval_on_selector_all(
            ".thumb img",
            "imgs => imgs.map(i => [i.getBoundingClientRect().width,"
            " i.getBoundingClientRect().height])",
        )
        assert len(sizes) == TINY_BUDGET
        assert all(w >= 120 and h >= 120 for w, h in sizes), (width, sizes[:3])
        context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_current_card_is_focused_and_in_view_after_enter_and_after_undo(
    browser, serve, tiny_template, tmp_path, width
):
    project = copy_project(tiny_template, tmp_path)
    server = serve(project)
    context = browser.new_context(**{**CONTEXT, "viewport": {"width": width, "height": 800}})
    page = context.new_page()
    open_batch(page, server, TINY_BUDGET)
    for i in range(TINY_BUDGET):  # the current card follows the answers down the page
        page.keyboard.press("y" if i % 3 == 0 else "n")
    wait_all_saved(page, TINY_BUDGET)
    assert page.evaluate("scrollY") > 800  # the person is at the bottom of the batch

    page.keyboard.press("Enter")
    page.wait_for_function(
        "document.querySelector('.batchbar strong').textContent === 'Round 2'", timeout=60_000
    )
    page.wait_for_function("document.querySelector('.card.current') !== null")
    seen = page.evaluate(IN_VIEW)
    assert seen["id"] == cards(page)[0]["id"] and seen["focused"], seen
    assert seen["top"] >= seen["below"] - 1 and seen["bottom"] <= seen["height"], seen

    page.keyboard.press("y")
    page.wait_for_selector(f'.card[data-id="{seen["id"]}"] .state:text("saved")')
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    page.keyboard.press("u")  # undo: the undone card is current again, and in view
    page.wait_for_function(
        f"document.querySelector('.card[data-id=\"{seen['id']}\"]').dataset.answer === ''"
    )
    page.wait_for_timeout(300)  # the smooth part of scrolling, if any
    undone = page.evaluate(IN_VIEW)
    assert undone["id"] == seen["id"] and undone["focused"], undone
    assert undone["top"] >= undone["below"] - 1 and undone["bottom"] <= undone["height"], undone
    context.close()
