"""The app in a real browser: Debian's Chromium driven by Playwright (headless, no sandbox, no
background networking). Uploads a photo, runs a model, waits for the result image, opens the
Leaderboard tab and finds the `bicubic` row. Screenshots are saved in the test's tmp folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import numpy as np

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
                max_file_size=app.MAX_UPLOAD, css=app.CSS)
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
    assert results.locator("img").count() >= 1  # the enlarged photo (these faces are larger than the model's input)
    assert "already larger" in page.locator("#sr-info").inner_text()
    page.locator("#sr-slider img").first.wait_for()
    page.screenshot(path=str(shots / "super-resolution.png"), full_page=True)

    page.get_by_role("tab", name="Leaderboard").click()
    page.get_by_role("tab", name="sr-x4", exact=True).click()
    cell = page.get_by_role("gridcell", name="bicubic", exact=True).first
    try:
        cell.wait_for()
    finally:
        page.screenshot(path=str(shots / "leaderboard.png"), full_page=True)
    assert cell.is_visible()
    page.screenshot(path=str(shots / "leaderboard.png"), full_page=True)
    assert all((shots / n).stat().st_size > 10_000 for n in ("super-resolution.png", "leaderboard.png"))


def _rafd_group(data_root, folder: Path) -> tuple[Path, np.ndarray]:
    """Three real RaFD portraits side by side: a 2043x1024 photo, faces about 300 px wide."""
    import numpy as np
    from PIL import Image

    names = sorted((data_root / "rafd_subset" / "neutral").glob("*.jpg"))[:3]
    photo = np.concatenate([np.asarray(Image.open(n).convert("RGB")) for n in names], axis=1)
    path = folder / "rafd-group.png"
    Image.fromarray(photo).save(path)
    return path, photo


def _run_tab(page, prefix: str, tab: str, button: str, photo: Path, tmp_path: Path, shots: Path):
    """Upload ``photo`` in a tab, run it, and return the downloaded full-resolution PNG as an array."""
    import numpy as np
    from PIL import Image

    page.get_by_role("tab", name=tab, exact=True).click()
    page.locator(f"#{prefix}-photo input[type=file]").set_input_files(str(photo))
    page.locator(f"#{prefix}-photo img").first.wait_for()
    page.get_by_role("button", name=button).click()
    try:
        page.locator(f"#{prefix}-info").get_by_text("3 face(s) processed").wait_for()
    finally:
        page.screenshot(path=str(shots / f"{prefix}-1400.png"), full_page=True)
    with page.expect_download() as download:
        page.locator(f"#{prefix}-download").click()
    path = tmp_path / f"{prefix}-result.png"
    download.value.save_as(path)
    return np.asarray(Image.open(path).convert("RGB"))


def test_a_large_group_photo_is_enlarged_never_shrunk_and_never_blurred(page, data_root, tmp_path):
    """A real 2043 px three-face photo through the browser: the x4 result is the upload enlarged (to the
    4096 px cap), identical to a plain enlargement where the model leaves the photo alone; Smile and
    Expression keep >= 80 % of the high-frequency energy inside every face (no blur box)."""
    import cv2
    import numpy as np

    import app
    from facegen import faces as F

    shots = Path(os.environ.get("FACEGEN_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    path, photo = _rafd_group(data_root, tmp_path)
    sr = _run_tab(page, "sr", "Super-resolution", "Super-resolve", path, tmp_path, shots)
    assert sr.shape[1] == app.MAX_OUTPUT_SIDE and sr.shape[0] > photo.shape[0]  # enlarged, capped, never smaller
    assert np.array_equal(sr, app.resize(photo, app.MAX_OUTPUT_SIDE / photo.shape[1]))

    def detail(img, box):
        x, y, w, h = (int(v) for v in box)
        g = cv2.cvtColor(np.ascontiguousarray(img[y:y + h, x:x + w]), cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float((cv2.Laplacian(g, cv2.CV_32F) ** 2).mean())

    faces = F.detect(photo)
    assert len(faces) == 3
    for prefix, tab, button in (("smile", "Smile", "Make them smile"),
                                ("expression", "Expression", "Change the expression")):
        out = _run_tab(page, prefix, tab, button, path, tmp_path, shots)
        assert out.shape == photo.shape and not np.array_equal(out, photo)
        for f in faces:
            assert detail(out, f.box) >= 0.8 * detail(photo, f.box)


def test_phone_layout_shows_the_run_button_first(page, tmp_path):
    """On a phone (390x844), each photo tab's run button sits within the first screen."""
    width, height = 390, 844
    shots = Path(os.environ.get("FACEGEN_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": width, "height": height})
    try:
        page.reload()
        for tab, button in (("Super-resolution", "Super-resolve"), ("Smile", "Make them smile"),
                            ("Expression", "Change the expression")):
            _open_tab(page, tab)
            page.evaluate("window.scrollTo(0, 0)")
            box = page.get_by_role("button", name=button).bounding_box()
            page.screenshot(path=str(shots / f"{tab.lower()}-{width}.png"), full_page=True)
            assert box is not None and box["y"] + box["height"] <= height, (tab, box)
        _open_tab(page, "Leaderboard")
        page.screenshot(path=str(shots / f"leaderboard-{width}.png"), full_page=True)
    finally:
        page.set_viewport_size({"width": 1400, "height": 1000})


def _open_tab(page, name: str) -> None:
    """Click a top-level tab; on a narrow screen the tabs that do not fit sit behind the "..." menu."""
    page.get_by_role("tablist").first.wait_for()
    tab = page.get_by_role("tab", name=name, exact=True)
    if tab.is_visible():
        tab.click()
        return
    page.locator(".overflow-menu button").first.click()
    page.locator(".overflow-dropdown").get_by_text(name, exact=True).click()
