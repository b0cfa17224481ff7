"""The web app's parts without a server: request guard, thumbnails, background jobs."""

import os
import subprocess
import sys
import threading

import pytest

PIL = pytest.importorskip("PIL.Image", reason="the web app needs pip install 'raresift[app]'")

from raresift.app.guard import Guard, HostPolicy  # noqa: E402
from raresift.app.jobs import JobRunner  # noqa: E402
from raresift.app.server import excerpt, option_keys  # noqa: E402
from raresift.app.thumbnails import Thumbnailer, ThumbnailFailure  # noqa: E402
from raresift.errors import ValidationError  # noqa: E402

from .app_server import SRC  # noqa: E402

TOKEN = "t0ken"


def refusal(method="GET", host="127.0.0.1:8765", bind="127.0.0.1", **headers):
    guard = Guard(None, HostPolicy(bind, 8765), TOKEN)
    sent = {"host": host, **{k.replace("_", "-"): v for k, v in headers.items()}}
    return guard.refusal(method, {k: v for k, v in sent.items() if v is not None})


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "LOCALHOST:8765"]
)
def test_own_host_names_pass(host):
    assert refusal(host=host) is None


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:8765",  # DNS rebinding: the attacker's name resolving to 127.0.0.1
        "127.0.0.1:8766",  # another port
        "127.0.0.1",  # no port means 80
        "localhost.evil.example:8765",
        "192.168.1.20:8765",  # a network address while bound to loopback
        None,
        "",
        "127.0.0.1:notaport",
    ],
)
def test_foreign_hosts_are_refused(host):
    assert refusal(host=host)[0] == 421


def test_network_bind_accepts_ip_literals_and_its_name_but_no_other_names():
    assert refusal(host="192.168.1.20:8765", bind="0.0.0.0") is None
    assert refusal(host="labelbox.lan:8765", bind="labelbox.lan") is None
    assert refusal(host="evil.example:8765", bind="0.0.0.0")[0] == 421


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "https://127.0.0.1:8765"])
def test_foreign_origins_are_refused_even_for_reads(origin):
    assert refusal(origin=origin)[0] == 403
    assert refusal("POST", origin=origin, x_csrf_token=TOKEN)[0] == 403


def test_writes_need_the_token():
    assert refusal("POST")[0] == 403
    assert refusal("POST", x_csrf_token="wrong")[0] == 403
    assert refusal("DELETE", x_csrf_token="")[0] == 403
    assert refusal("POST", x_csrf_token=TOKEN) is None
    assert refusal("POST", origin="http://localhost:8765", x_csrf_token=TOKEN) is None


@pytest.fixture
def images(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (300, 200), (10, 200, 30)).save(folder / "ok.jpg")
    Image.new("RGBA", (50, 100), (0, 0, 0, 0)).save(folder / "alpha.png")
    (folder / "text.jpg").write_text("not an image at all")
    full = (folder / "ok.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(full[: len(full) // 3])
    Image.new("L", (4000, 3000)).save(folder / "big.png")
    return folder


def test_thumbnail_size_and_cache(images, tmp_path):
    from PIL import Image

    thumbs = Thumbnailer(tmp_path / "cache")
    path = thumbs.get(images / "ok.jpg", 120)
    assert Image.open(path).size == (120, 80)
    stamp = path.stat().st_mtime_ns
    assert thumbs.get(images / "ok.jpg", 120) == path and path.stat().st_mtime_ns == stamp
    alpha = Image.open(thumbs.get(images / "alpha.png", 120))
    assert alpha.mode == "RGB" and alpha.getpixel((10, 10)) == (255, 255, 255)


def test_changed_image_gets_a_new_thumbnail(images, tmp_path):
    from PIL import Image

    thumbs = Thumbnailer(tmp_path / "cache")
    first = thumbs.get(images / "ok.jpg", 64)
    Image.new("RGB", (100, 100), "blue").save(images / "ok.jpg")
    second = thumbs.get(images / "ok.jpg", 64)
    assert second != first and Image.open(second).size == (64, 64)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("text.jpg", "not an image"),
        ("truncated.jpg", "damaged image"),
        ("missing.jpg", "image file missing"),
        ("big.png", "too large"),
    ],
)
def test_bad_images_fail_with_a_reason(images, tmp_path, name, reason):
    thumbs = Thumbnailer(tmp_path / "cache", max_pixels=10_000_000 // 2)
    with pytest.raises(ThumbnailFailure, match=reason):
        thumbs.get(images / name, 64)
    assert not list((tmp_path / "cache").rglob("*.part"))


def test_files_over_the_byte_limit_are_not_opened(images, tmp_path):
    with pytest.raises(ThumbnailFailure, match="file over"):
        Thumbnailer(tmp_path / "cache", max_file_bytes=100).get(images / "ok.jpg", 64)


def test_job_runner_runs_one_job_at_a_time():
    release = threading.Event()
    calls = []

    def work():
        calls.append(1)
        release.wait(5)
        return "batch"

    runner = JobRunner(work)
    first = runner.start(expected_seconds=100.0)
    assert first["state"] == "running" and 0 <= first["fraction"] < 0.05
    assert "s left" in first["message"]
    again = runner.start()
    assert again["run"] == first["run"] and calls == [1]
    release.set()
    done = runner.wait(5)
    assert done["state"] == "done" and done["result"] == "batch" and done["fraction"] == 1.0
    assert runner.start()["run"] == first["run"] + 1
    runner.wait(5)
    assert calls == [1, 1]


def test_a_rerun_job_started_while_running_runs_once_more():
    release, calls = threading.Event(), []

    def work():
        calls.append(len(calls))
        release.wait(5)
        return len(calls)

    runner = JobRunner(work, rerun=True)
    first = runner.start()
    runner.start(), runner.start()  # while it runs: one more run, not two
    release.set()
    done = runner.wait(5)
    assert calls == [0, 1] and done["state"] == "done" and done["result"] == 2
    assert done["run"] == first["run"]


def test_job_fraction_stays_below_one_while_running():
    release = threading.Event()
    runner = JobRunner(lambda: release.wait(5))
    runner.start(expected_seconds=1e-6)
    state = runner.state()
    release.set()
    runner.wait(5)
    assert state["state"] == "running" and state["fraction"] == 0.95


def test_job_runner_reports_failures():
    def work():
        raise ValidationError("budget 0 is not positive")

    runner = JobRunner(work)
    runner.start()
    state = runner.wait(5)
    assert state["state"] == "failed" and "budget 0" in state["error"]


def test_serving_beyond_loopback_warns(tmp_path):
    pytest.importorskip("starlette", reason="the web app needs pip install 'raresift[app]'")
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.run(
        [sys.executable, "-m", "raresift.cli", "serve", str(tmp_path), "--host", "0.0.0.0"]
        + ["--port", "70000"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 2, proc.stderr
    assert "warning: serving on 0.0.0.0" in lines[0]
    assert "port must be an integer from 0 to 65535" in lines[1]


def test_class_keys_are_digits_one_to_nine_then_zero():
    classes = [f"c{i}" for i in range(12)]
    keys = [o["key"] for o in option_keys([*classes, "skip", "junk", "duplicate"], False)]
    assert keys == ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "", "", "s", "j", "d"]


def test_excerpts_cut_at_a_word_and_say_so():
    text = "word " * 100
    short, cut = excerpt(text, 50)
    assert cut and short.endswith("…") and len(short) <= 51 and not short[:-1].endswith(" ")
    assert excerpt("x" * 50, 50) == ("x" * 50, False)
