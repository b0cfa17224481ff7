"""Regenerate the web app's screenshots in this folder (labeling, progress and item views, at
laptop width and phone width).

    python docs/screenshots/make.py [--work /tmp/raresift-shots]

A labeling session over 400 Fashion-MNIST test images of 28 x 28 pixels, as they come
(``make data``), for the concept "bag", embedded with the shipped EfficientNet-Lite0 (at 64 px,
chosen from the images); two rounds are answered from the true labels, the third is partly
answered, then headless Chromium (``make browser``) photographs the app at 1280 px and 390 px.
"""

from __future__ import annotations

import argparse
import os
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
        Image.fromarray(255 - pixels).save(folder / name)  # 28 x 28: the app enlarges it
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
    os.environ.setdefault("RARESIFT_EMBEDDINGS_CACHE", str(work / "embeddings"))
    project, a_bag = make_session(work)
    from playwright.sync_api import sync_playwright

    server = ServerProcess(project, work / "server.log")
    written = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                args=CHROMIUM_FLAGS,
            )
            for suffix, viewport in (("", (1280, 900)), ("-phone", (390, 844))):
                page = browser.new_page(
                    viewport={"width": viewport[0], "height": viewport[1]},
                    device_scale_factor=1 if not suffix else 2,
                )
                shots = [
                    ("/label", "labeling", False),
                    ("/progress", "progress", True),
                    ("/item?id=" + a_bag, "item", False),
                ]
                for path, name, full in shots:
                    page.goto(server.url + path)
                    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
                    page.screenshot(path=HERE / f"{name}{suffix}.png", full_page=full)
                    written.append(HERE / f"{name}{suffix}.png")
                page.close()
            browser.close()
    finally:
        server.stop()
    print("wrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main()
