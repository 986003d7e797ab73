"""limitlab review in a real browser (Playwright driving Debian's Chromium): the keyboard flow with
reload, resume and undo, a batch action in the grid, export and retrain, a table run, and the page
timings. Skipped when chromium is missing, except in CI (LIMITLAB_REQUIRE_BROWSER=1), where that fails.
Saves docs/images/review.png for the docs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
sync_api = pytest.importorskip("playwright.sync_api")

from review_helpers import CHROMIUM_ARGS, chromium_or_skip, decisions, digits_run, serve, table_run  # noqa: E402

from limitlab import rundir  # noqa: E402
from limitlab.config import Config  # noqa: E402
from limitlab.review.export import export_run  # noqa: E402
from limitlab.train import train  # noqa: E402

DOCS_IMAGE = Path(__file__).resolve().parents[1] / "docs" / "images" / "review.png"


@pytest.fixture(scope="module")
def browser():
    path = chromium_or_skip()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return digits_run(tmp_path_factory.mktemp("review_browser"))


def card_id(page) -> int:
    return int(page.evaluate("document.body.dataset.card"))


def wait_card(page, i: int) -> None:
    page.wait_for_selector(f"body[data-card='{i}']", timeout=5000)


def grid_loads(page) -> int:
    return int(page.get_attribute("body", "data-grid-loads") or 0)


def wait_grid(page, loads: int) -> None:
    """Wait until the grid has been (re)drawn ``loads`` times in all."""
    page.wait_for_selector(f"body[data-grid-loads='{loads}']", timeout=5000)


def settle(page) -> None:
    """Wait until every decision the page sent has been answered."""
    page.evaluate("S.queue")


def test_keyboard_flow_reload_resume_undo(browser, run):
    server = serve(run)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url)
        wait_card(page, 0)
        assert "token" not in page.url                       # the token left the address bar
        review = server.review
        suggested = [int(review.suggested[i]) for i in range(6)]
        page.keyboard.press("w")                             # 0: accept the suggestion
        wait_card(page, 1)
        page.keyboard.press("q")                             # 1: keep
        wait_card(page, 2)
        second = page.locator("#choices li").nth(1).locator(".name").inner_text()
        page.keyboard.press("2")                             # 2: the second class of the card's list
        wait_card(page, 3)
        page.keyboard.press("e")                             # 3: exclude
        wait_card(page, 4)
        page.keyboard.press("ArrowRight")                    # 4: skipped
        wait_card(page, 5)
        page.keyboard.press("ArrowLeft")                     # back to 4
        wait_card(page, 4)
        page.keyboard.press("n")                             # 4: unsure
        wait_card(page, 5)
        name = review.data.class_names[(int(review.data.given[5]) + 3) % 10]
        page.keyboard.press("/")                             # "/" then typing finds any class
        page.keyboard.type(name)
        page.keyboard.press("Enter")
        wait_card(page, 6)
        settle(page)
        log = decisions(run)
        assert [r["decision"] for r in log] == ["accept", "keep", "relabel", "exclude", "unsure",
                                                "relabel" if name != review.data.class_names[suggested[5]] else "accept"]
        assert log[0]["label"] == suggested[0] and log[2]["label"] == review.data.class_names.index(second)
        assert [r["index"] for r in log] == [int(review.data.index[i]) for i in range(6)]
        assert "6 decided" in page.inner_text("#summary") and "right" in page.inner_text("#summary")
        page.keyboard.press("Control+z")                     # undo the last decision: back on card 5
        wait_card(page, 5)
        settle(page)
        assert decisions(run)[-1]["decision"] == "undo"
        page.keyboard.press("?")
        assert page.is_visible("#help") and "exclude" in page.inner_text("#help")
        page.keyboard.press("Escape")
        # a reload resumes at the highest-ranked suspect without a decision (5, after the undo)
        page.reload()
        wait_card(page, 5)
        page.keyboard.press("w")
        wait_card(page, 6)
        settle(page)
        # a new server over the same run (a killed one loses nothing) resumes there too
        assert errors == []
    finally:
        server.stop()
        server.join(5)
    again = serve(run)
    try:
        page = browser.new_page()
        page.goto(again.url)
        wait_card(page, 6)
        assert again.review.summary()["decided"] == 6
    finally:
        again.stop()
        again.join(5)


def test_grid_batch_and_bulk_accept(browser, run, tmp_path):
    server = serve(run)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(server.url)
        wait_card(page, server.review.start())
        page.keyboard.press("g")
        wait_grid(page, 1)
        page.select_option("#f-decision", "undecided")
        wait_grid(page, 2)
        tiles = page.locator(".tile")
        ids = [int(tiles.nth(k).get_attribute("data-id")) for k in range(3)]
        tiles.nth(0).click()
        tiles.nth(2).click(modifiers=["Shift"])              # shift-click: a range of three
        assert page.inner_text("#selected-count") == "3 selected"
        before = len(decisions(run))
        page.click("[data-batch='exclude']")
        wait_grid(page, 3)
        settle(page)
        new = decisions(run)[before:]
        assert sorted(r["index"] for r in new) == sorted(int(server.review.data.index[i]) for i in ids)
        assert {r["decision"] for r in new} == {"exclude"} and len({r["batch"] for r in new}) == 1
        # a confusion-matrix cell opens that filter; the bulk accept shows its count first
        cell = page.locator("#confusion td.cell.open").first
        cell.click()
        wait_grid(page, 4)
        a, b = int(page.input_value("#f-given")), int(page.input_value("#f-suggested"))
        page.fill("#f-score", "0.5")
        page.dispatch_event("#f-score", "change")
        wait_grid(page, 5)
        page.click("#bulk-accept")
        page.wait_for_selector("#bulk-confirm:not([hidden])")
        text = page.inner_text("#bulk-confirm")
        count = int(text.split()[1])
        review = server.review
        expected = [i for i in review.matching({"given": a, "suggested": b, "min_score": 0.5, "flagged": "1",
                                                "decision": "undecided"})]
        assert count == len(expected) and count > 0
        before = len(decisions(run))
        page.click("#bulk-confirm")
        page.wait_for_selector("#bulk-confirm", state="hidden")
        settle(page)
        new = decisions(run)[before:]
        assert len(new) == count and all(r["decision"] == "accept" and r["label"] == b for r in new)
        page.screenshot(path=str(tmp_path / "grid.png"))
    finally:
        server.stop()
        server.join(5)


def test_export_and_retrain_on_it(run, tmp_path):
    """The browser tests' decisions exported; a run on the export trains on fewer examples (the excluded)."""
    from limitlab.review.state import Decisions

    log = Decisions(run / "review" / "decisions.jsonl")
    if sum(d["decision"] == "exclude" for d in log.standing.values()) < 3:  # run alone: exclude three here
        with np.load(run / rundir.NOISY_LABELS) as rec:
            log.decide([("train", int(i)) for i in rec["train_index"][-3:]], "exclude")
    out = tmp_path / "fixed.npy"
    summary = export_run(run, out)
    labels = np.load(out)
    excluded = int((labels == -1).sum())
    assert excluded == summary["excluded"] >= 3
    retrain = tmp_path / "retrain"
    train(Config(dataset="digits", noise=f"labels:{out}", train_size=400, epochs=1, batch_size=64, device="cpu"),
          retrain, progress=False)
    with np.load(run / rundir.NOISY_LABELS) as before, np.load(retrain / rundir.NOISY_LABELS) as after:
        dropped = np.isin(before["train_index"], np.flatnonzero(labels == -1)).sum()
        assert len(after["train_index"]) == len(before["train_index"]) - dropped and dropped >= 3
        assert (after["train_noisy"] >= 0).all()


def test_table_run_in_the_browser(browser, tmp_path):
    import pandas as pd

    run, source = table_run(tmp_path)
    server = serve(run)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(server.url)
        wait_card(page, 0)
        assert page.is_visible("#example-row") and page.locator("#example-row tr.marked").count() >= 1
        assert "length" in page.inner_text("#example-row")
        page.keyboard.press("Enter")                          # accept
        wait_card(page, 1)
        page.keyboard.press("e")                              # exclude
        wait_card(page, 2)
        settle(page)
    finally:
        server.stop()
        server.join(5)
    out = tmp_path / "fixed.csv"
    export_run(run, out)
    fixed, original = pd.read_csv(out), pd.read_csv(source)
    assert len(fixed) == len(original) - 1
    errors = pd.read_csv(run / rundir.LABEL_ERRORS)
    assert (fixed["species"] != original.drop(index=errors.file_row[1]).reset_index(drop=True)["species"]).sum() == 1


def test_timings_and_docs_screenshot(browser, run):
    """The first card within 1 s of the page request, and each decision to the next card in under 100 ms."""
    server = serve(run)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 820})
        page.goto(server.url)  # the cookie
        start = time.perf_counter()
        page.goto(server.url.split("?")[0])
        wait_card(page, server.review.start())
        first = time.perf_counter() - start
        assert first < 1.0, f"first card after {first:.3f} s"
        for _ in range(8):
            i = card_id(page)
            page.wait_for_timeout(150)  # let the prefetch of the next cards land, as a reader would
            page.keyboard.press("w")
            wait_card(page, i + 1)
        page.wait_for_timeout(100)
        in_page = page.evaluate("() => S.timings")  # key press to the next card's first frame, in the page
        assert len(in_page) == 8 and max(in_page) < 100, f"decision to next card (ms): {in_page}"
        page.wait_for_timeout(400)
        DOCS_IMAGE.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS_IMAGE))
    finally:
        server.stop()
        server.join(5)


def test_timings_on_48000_mnist_suspects(browser, data_root):
    """Part 9 at full size: 48,000 MNIST suspects (a synthetic ranking, outputs and features over the
    real images), the first card within 1 s of the page request and each decision under 100 ms."""
    from limitlab.data import load_dataset
    from limitlab.review.serve import Server
    from limitlab.review.server import Review
    from limitlab.review.source import Pool, ReviewData, normalise
    from limitlab.review.state import Decisions

    data = load_dataset("mnist", data_root)
    n, k = 48000, 10
    rng = np.random.default_rng(0)
    x, labels = data.train_images[:n].numpy(), data.train_labels[:n].numpy()
    probs = rng.dirichlet(np.full(k, 0.3), size=n)
    pool = Pool(index=np.arange(n), x=x, labels=labels, probs=probs, features=normalise(rng.normal(size=(n, 128))))
    order = np.argsort(-rng.random(n))
    review = Review(ReviewData(kind="image", class_names=[str(c) for c in range(k)], index=order,
                               split=np.array(["train"] * n, dtype=object), given=labels[order],
                               score=np.sort(rng.random(n))[::-1], flagged=np.ones(n, bool), pools={"train": pool},
                               title="48,000 MNIST suspects"), Decisions(None))
    server = Server(review, port=0).start()
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 820})
        page.goto(server.url)
        wait_card(page, 0)
        start = time.perf_counter()
        page.goto(server.url.split("?")[0])
        wait_card(page, 0)
        first = time.perf_counter() - start
        assert first < 1.0, f"first card after {first:.3f} s"
        for i in range(6):
            page.wait_for_timeout(150)
            page.keyboard.press("w")
            wait_card(page, i + 1)
        page.wait_for_timeout(100)
        in_page = page.evaluate("() => S.timings")
        assert len(in_page) == 6 and max(in_page) < 100, f"decision to next card (ms): {in_page}"
    finally:
        server.stop()
        server.join(5)
