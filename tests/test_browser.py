"""The app in a real browser: Debian's Chromium driven by Playwright (headless, no sandbox, no
background networking). Uploads a photo, runs a model, waits for the result image, opens the
Leaderboard tab and finds the `bicubic` row. Screenshots are saved in the test's tmp folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(),
                       reason="Debian's Chromium is not installed at /usr/bin/chromium "
                              "(apt-get update && apt-get install -y chromium)"),
]


@pytest.fixture(scope="module")
def served(data_root, tmp_path_factory):
    import app
    from test_app import free_port, results_with_bicubic

    results = results_with_bicubic(data_root, tmp_path_factory.mktemp("bench"))
    demo = app.build_demo(results_dir=results)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                max_file_size=app.MAX_UPLOAD)
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.fixture(scope="module")
def page(served):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1400, "height": 1000})
            pg.set_default_timeout(120_000)
            pg.goto(served)
            yield pg
        finally:
            browser.close()


def test_upload_run_and_leaderboard(page, tmp_path):
    import app

    # FACEGEN_SCREENSHOTS keeps them somewhere to look at; by default the test's tmp folder.
    shots = Path(os.environ.get("FACEGEN_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    two_faces = app.example_photos()[1]
    page.get_by_role("tab", name="Super-resolution").click()
    page.locator("input[type=file]").first.set_input_files(two_faces)
    # The face picker fills in once the upload is read.
    page.get_by_text("2 face(s) found.").first.wait_for()
    page.get_by_role("button", name="Super-resolve").click()
    try:
        page.get_by_text("face(s) processed").first.wait_for()
    finally:
        page.screenshot(path=str(shots / "super-resolution.png"), full_page=True)
    results = page.locator("#sr-results")
    results.locator("img").first.wait_for()
    assert results.locator("img").count() >= 3  # two low-res inputs and at least one result
    page.locator("#sr-slider img").first.wait_for()
    page.screenshot(path=str(shots / "super-resolution.png"), full_page=True)

    page.get_by_role("tab", name="Leaderboard").click()
    page.get_by_role("tab", name="sr-x4").click()
    cell = page.get_by_role("gridcell", name="bicubic", exact=True).first
    try:
        cell.wait_for()
    finally:
        page.screenshot(path=str(shots / "leaderboard.png"), full_page=True)
    assert cell.is_visible()
    page.screenshot(path=str(shots / "leaderboard.png"), full_page=True)
    assert all((shots / n).stat().st_size > 10_000 for n in ("super-resolution.png", "leaderboard.png"))
