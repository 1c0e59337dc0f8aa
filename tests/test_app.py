"""The app through its real interface: served on localhost and called with gradio_client."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def client():
    import app

    demo = app.build_demo()
    demo.launch(server_name="127.0.0.1", server_port=_free_port(), prevent_thread_lock=True,
                quiet=True, max_file_size=app.MAX_UPLOAD)
    try:
        yield gradio_client.Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def _group_photo(data_root, tmp_path) -> tuple[str, int]:
    """Three real CelebA test faces of different sizes on one canvas, as a group photo."""
    names = sorted((data_root / "celeba_fsrnet" / "celeba_val_1000_HR").iterdir())[:3]
    canvas = Image.new("RGB", (360, 160), (200, 200, 200))
    x = 5
    for i, name in enumerate(names):
        face = Image.open(name).convert("RGB")
        side = (128, 100, 80)[i]
        canvas.paste(face.resize((side, side), Image.Resampling.LANCZOS), (x, 10))
        x += side + 20
    path = tmp_path / "group.png"
    canvas.save(path)
    return str(path), 3


def test_api_lists_named_endpoints(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/super_resolve", "/sr_models"} <= names


def _predict(client, path, task="sr-x4", models=("bicubic",), mode=None, paste=True):
    import app

    return client.predict(gradio_client.handle_file(path), task, list(models), mode or app.ENLARGE, paste,
                          api_name="/super_resolve")


def test_super_resolve_group_photo(client, data_root, tmp_path):
    path, n = _group_photo(data_root, tmp_path)
    gallery, _, info = _predict(client, path)
    assert info.startswith(f"{n} face(s) found")
    assert "reduced" in info  # these faces are larger than the 32-pixel input of a 4x model
    captions = [g["caption"] for g in gallery]
    assert sum(c.startswith("Low-res input") for c in captions) == n
    photo = [np.asarray(Image.open(g["image"])) for g in gallery if g["caption"].endswith(": photo")]
    assert len(photo) == 1
    faces = [np.asarray(Image.open(g["image"])) for g in gallery if ": face" in g["caption"]]
    assert len(faces) == n and all(f.shape == (128, 128, 3) for f in faces)


def test_sharp_mode_scores_against_original(client, data_root, tmp_path):
    import app

    path, n = _group_photo(data_root, tmp_path)
    gallery, table, _ = _predict(client, path, mode=app.SHARP)
    photo = [np.asarray(Image.open(g["image"])) for g in gallery if g["caption"].endswith(": photo")][0]
    assert photo.shape[:2] == (160, 360)  # pasted back into the original photo
    row = dict(zip(table["headers"], table["data"][0]))
    assert row["model"] == "bicubic" and 20 < row["PSNR Y (dB)"] < 40 and 0.5 < row["identity cosine"] <= 1


def test_leaderboard_endpoint(client):
    table = client.predict("sr-x4", "", api_name="/leaderboard")
    assert "headers" in table


def test_not_an_image_gives_sentence(client, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a picture")
    with pytest.raises(Exception) as e:
        _predict(client, str(bad))
    msg = str(e.value).lower()
    assert ("photo" in msg or "image" in msg) and "traceback" not in msg


def test_no_face_gives_sentence(client, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (90, 140, 200)).save(blank)
    with pytest.raises(Exception) as e:
        _predict(client, str(blank))
    assert "face" in str(e.value).lower()
