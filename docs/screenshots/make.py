"""Regenerate the web app's screenshots in this folder (labeling, progress and item views).

    python docs/screenshots/make.py [--work /tmp/raresift-shots]

A labeling session over 400 Fashion-MNIST test images (``make data``) for the concept "bag",
embedded with the shipped EfficientNet-Lite0; two rounds are answered from the true labels, the
third is half answered, then headless Chromium (``make browser``) photographs the app.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repository, for tests.app_server

from tests.app_server import CHROMIUM_FLAGS, ServerProcess  # noqa: E402

BAG = 8
N_ITEMS = 400


def make_session(work: Path):
    from PIL import Image

    from raresift.datasets import load_fashion_mnist
    from raresift.session import Session

    data = load_fashion_mnist("test")
    rng = np.random.default_rng(0)
    bags = np.flatnonzero(data.y == BAG)
    others = np.flatnonzero(data.y != BAG)
    chosen = np.concatenate(
        [rng.choice(bags, 24, replace=False), rng.choice(others, N_ITEMS - 24, replace=False)]
    )
    folder = work / "images"
    folder.mkdir(parents=True)
    truth = {}
    for position in rng.permutation(chosen):
        name = f"fmnist-{position:05d}.png"
        pixels = data.X[position].reshape(28, 28)
        Image.fromarray(255 - pixels).resize((112, 112), Image.NEAREST).save(folder / name)
        truth[name] = int(data.y[position] == BAG)
    session = Session.create(work / "bags", images=folder, concept="bag", budget=40, progress=False)
    for _ in range(2):
        batch = session.next()
        session.answer_many([(b.id, truth[b.id]) for b in batch], who="screenshot")
    batch = session.next()
    for b in batch[:9]:
        session.answer(b.id, truth[b.id], who="screenshot")
    session.close()
    return work / "bags", next(name for name, is_bag in truth.items() if is_bag)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/raresift-shots", help="scratch folder")
    args = parser.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    project, a_bag = make_session(work)
    from playwright.sync_api import sync_playwright

    server = ServerProcess(project, work / "server.log")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                args=CHROMIUM_FLAGS,
            )
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server.url + "/label")
            page.wait_for_function("Array.from(document.images).every(i => i.complete)")
            page.screenshot(path=HERE / "labeling.png")
            page.goto(server.url + "/progress")
            page.wait_for_function("Array.from(document.images).every(i => i.complete)")
            page.screenshot(path=HERE / "progress.png", full_page=True)
            page.goto(server.url + "/item?id=" + a_bag)
            page.wait_for_function("Array.from(document.images).every(i => i.complete)")
            page.screenshot(path=HERE / "item.png")
            browser.close()
    finally:
        server.stop()
    print(f"wrote {HERE / 'labeling.png'}, {HERE / 'progress.png'}, {HERE / 'item.png'}")


if __name__ == "__main__":
    main()
