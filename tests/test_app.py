"""The app through its real interface: served on localhost and called with gradio_client, one test
(at least) per api_name; and its photo pipelines as plain functions.

Untrained tiny instances of the real smile and expression model classes are registered for this
module besides the shipped ones: they exercise the wiring (alignment, conditions, paste-back,
labels, downloads) fast, not the quality, which the benchmark measures.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")

import app  # noqa: E402
from facegen import registry, request_results  # noqa: E402
from facegen.models.exprgan import ExprGANConfig, ExprGANGenerator  # noqa: E402
from facegen.models.lmk_guided import LmkGuidedConfig, LmkGuidedGenerator  # noqa: E402
from facegen.models.smile import SmileConfig, SmileGenerator  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
handle_file = gradio_client.handle_file

TINY = {
    "tiny-sge-untrained": registry.ModelSpec(
        id="tiny-sge-untrained", title="Tiny SGE (untrained)", model_class=SmileGenerator, preset="tiny",
        paper="000", family="smile", checkpoints={"smile": None}, configs={"smile": SmileConfig.tiny("sge")}),
    "tiny-exprgan-untrained": registry.ModelSpec(
        id="tiny-exprgan-untrained", title="Tiny ExprGAN (untrained)", model_class=ExprGANGenerator, preset="tiny",
        paper="001", family="expression", checkpoints={"expression": None},
        configs={"expression": ExprGANConfig.tiny()}),
    "tiny-lmk-untrained": registry.ModelSpec(
        id="tiny-lmk-untrained", title="Tiny landmark-guided (untrained)", model_class=LmkGuidedGenerator,
        preset="tiny", paper="004", family="expression", checkpoints={"expression": None},
        configs={"expression": LmkGuidedConfig.tiny()}),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def results_with_bicubic(data_root: Path, tmp_root: Path) -> Path:
    """Benchmark results that hold an sr-x4 `bicubic` row: the committed ones when they do, else a
    real (small: 8 faces) benchmark run into ``tmp_root``."""
    committed = REPO / "benchmarks" / "results"
    csv = committed / "leaderboard.csv"
    if csv.is_file() and any(line.startswith("sr-x4,bicubic,") for line in csv.read_text().splitlines()):
        return committed
    out = tmp_root / "results"
    if not (out / "leaderboard.csv").is_file():
        env = {**os.environ, "FACEGEN_DATA": str(data_root)}
        subprocess.run([sys.executable, "-m", "benchmarks.run", "--task", "sr-x4", "--model", "bicubic", "identity",
                        "real", "--limit", "8", "--results", str(out), "--data-root", str(data_root)],
                       cwd=REPO, env=env, check=True, capture_output=True, timeout=600)
    return out


@pytest.fixture(scope="session")
def results_dir(data_root, tmp_path_factory) -> Path:
    return results_with_bicubic(data_root, tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def tiny_models():
    saved = dict(registry.REGISTRY)
    registry.REGISTRY.update(TINY)
    try:
        yield list(TINY)
    finally:
        registry.REGISTRY.clear()
        registry.REGISTRY.update(saved)


@pytest.fixture(scope="module")
def client(tiny_models, results_dir):
    demo = app.build_demo(results_dir=results_dir)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True,
                quiet=True, max_file_size=app.MAX_UPLOAD)
    try:
        yield gradio_client.Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def group_photo(data_root: Path, tmp_path: Path) -> tuple[str, int]:
    """Three real CelebA test faces of different sizes tiled on one canvas, as a group photo."""
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


def jaffe_pair_photo(data_root: Path, tmp_path: Path) -> str:
    """Two real JAFFE neutral faces side by side (the expression tasks' kind of input)."""
    names = sorted(p for p in (data_root / "jaffe").iterdir() if ".NE" in p.name)[:2]
    faces = [Image.open(n).convert("RGB") for n in names]
    canvas = Image.new("RGB", (sum(f.width for f in faces) + 40, max(f.height for f in faces) + 20), (128, 128, 128))
    x = 10
    for f in faces:
        canvas.paste(f, (x, 10))
        x += f.width + 20
    path = tmp_path / "jaffe-pair.png"
    canvas.save(path)
    return str(path)


def image(path: str) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def captions(gallery) -> list[str]:
    return [g["caption"] for g in gallery]


# ---------------------------------------------------------------------------------------------
# Every endpoint through gradio_client
# ---------------------------------------------------------------------------------------------

EXPECTED_ENDPOINTS = {
    "/super_resolve", "/sr_models", "/sr_faces", "/sr_compare",
    "/smile", "/smile_models", "/smile_faces", "/smile_compare",
    "/expression", "/expression_models", "/expression_faces", "/expression_compare",
} | {f"/{kind}_{t.replace('-', '_')}" for kind in ("leaderboard", "leaderboard_plot", "provenance")
     for t in ("sr-x2", "sr-x4", "sr-x8", "smile", "expression")}


def test_every_endpoint_is_named(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert EXPECTED_ENDPOINTS <= names


def test_faces_are_listed_for_the_picker(client, data_root, tmp_path):
    path, n = group_photo(data_root, tmp_path)
    for prefix in ("sr", "smile", "expression"):
        crops, choices, info = client.predict(handle_file(path), api_name=f"/{prefix}_faces")
        assert captions(crops) == [f"Face {i + 1}" for i in range(n)]
        assert choices["value"] == [f"Face {i + 1}" for i in range(n)]
        assert info == f"{n} face(s) found."


def sr(client, path, *, which=app.ALL_FACES, picked=(), task="sr-x4", models=("bicubic",), mode=app.ENLARGE,
       paste=True):
    return client.predict(handle_file(path), which, list(picked), task, list(models), mode, paste,
                          api_name="/super_resolve")


def test_super_resolve_group_photo(client, data_root, tmp_path):
    path, n = group_photo(data_root, tmp_path)
    gallery, compare, pair, download, _, info = sr(client, path)
    assert info.startswith(f"{n} face(s) processed")
    # These faces are larger than the 32-pixel input of a 4x model: the photo is enlarged 4x, never shrunk.
    assert "already larger" in info
    photo = image(download)
    assert photo.shape[:2] == (4 * 160, 4 * 360)
    assert np.array_equal(photo, app.resize(image(path), 4))
    assert compare["value"] == "Bicubic: photo"
    # The shrink-first demonstration brings the largest face to the model's input size.
    gallery, compare, pair, download, _, info = sr(client, path, mode=app.SHRINK)
    caps = captions(gallery)
    assert sum(c.startswith("Low-res input") for c in caps) == n
    assert caps.count("Bicubic: photo") == 1
    faces = [image(g["image"]) for g in gallery if ": Face" in g["caption"]]
    assert len(faces) == n and all(f.shape == (128, 128, 3) for f in faces)
    # The slider compares the chosen result with its input at the same size; the download is that result.
    before, after = image(pair[0]), image(pair[1])
    assert before.shape == after.shape
    photo = [image(g["image"]) for g in gallery if g["caption"] == "Bicubic: photo"][0]
    assert np.array_equal(image(download), photo)


def test_only_the_picked_face(client, data_root, tmp_path):
    path, _ = group_photo(data_root, tmp_path)
    gallery, *_, info = sr(client, path, which=app.PICKED_FACES, picked=["Face 2"], paste=False, mode=app.SHRINK)
    assert info.startswith("1 face(s) processed")
    assert captions(gallery) == ["Low-res input, Face 1 (32 px)", "Bicubic: Face 1"]


def test_compare_another_result(client, data_root, tmp_path):
    path, _ = group_photo(data_root, tmp_path)
    sr(client, path, mode=app.SHRINK)
    pair, download = client.predict("Bicubic: Face 2", api_name="/sr_compare")
    assert image(pair[0]).shape == image(pair[1]).shape == (128, 128, 3)
    assert np.array_equal(image(download), image(pair[1]))
    with pytest.raises(Exception, match="not in the list of choices"):
        client.predict("nonexistent", api_name="/sr_compare")


def test_sharp_mode_scores_against_original(client, data_root, tmp_path):
    path, n = group_photo(data_root, tmp_path)
    gallery, _, pair, _, table, _ = sr(client, path, mode=app.SHARP)
    table = table.get("value", table)  # the score table comes as an update that also shows it
    strip = [image(g["image"]) for g in gallery if g["caption"] == "Bicubic: low-res input | model | original"][0]
    assert strip.shape[:2] == (n * 128, 3 * 128)  # a row per face: input | model | original, no blur box
    row = dict(zip(table["headers"], table["data"][0]))
    assert row["model"] == "bicubic" and 20 < row["PSNR Y (dB)"] < 40 and 0.5 < row["identity cosine (SFace)"] <= 1
    assert 0 < row["LPIPS"] < 1 and 0 < row["SSIM Y"] <= 1


def test_astronaut_example(client):
    astronaut, two, small = app.example_photos()
    gallery, *_, info = sr(client, small, task="sr-x2")
    assert info.startswith("1 face(s) processed")
    photo = [image(g["image"]) for g in gallery if g["caption"] == "Bicubic: photo"][0]
    assert photo.shape[0] == photo.shape[1] == 256  # the 128-pixel photo enlarged 2x
    _, _, info = client.predict(handle_file(two), api_name="/sr_faces")
    assert info.startswith("2 face(s) found")


def test_model_lists_follow_the_registry_and_change_no_session(client, results_dir):
    listed = client.predict("sr-x8", api_name="/sr_models")
    assert sorted(listed["models"]) == sorted(s.id for s in registry.models_for("sr-x8"))
    assert listed["recommended"] == listed["models"][0] == app.recommended_model("sr-x8", results_dir)
    assert set(client.predict(api_name="/smile_models")["models"]) == {s.id for s in registry.models_for("smile")}
    expr = client.predict(api_name="/expression_models")
    assert set(expr["intensity"]) == {m for m in expr["models"] if registry.get(m).intensity_control}
    # Listing another scale leaves a later sr-x4 run untouched.
    astronaut = app.example_photos()[2]
    gallery, *_ = sr(client, astronaut, task="sr-x4", models=("bicubic",))
    assert gallery


def smile(client, path, models, paste=True, which=app.ALL_FACES, picked=()):
    return client.predict(handle_file(path), which, list(picked), list(models), paste, api_name="/smile")


def test_smile_group_photo(client, data_root, tmp_path):
    path, n = group_photo(data_root, tmp_path)
    gallery, compare, pair, download, info = smile(client, path, ["tiny-sge-untrained"])
    assert info.startswith(f"{n} face(s) processed")
    caps = captions(gallery)
    assert sum(c.startswith("Input, Face") for c in caps) == n
    size = SmileConfig.tiny().lr_size
    faces = [image(g["image"]) for g in gallery if ": Face" in g["caption"]]
    assert len(faces) == n and all(f.shape == (2 * size, 2 * size, 3) for f in faces)
    photo = image(download)
    assert photo.shape == image(pair[0]).shape
    assert photo.shape[0] >= 160 and photo.shape[1] >= 360  # the photo is kept (or enlarged), never cut
    pair, _ = client.predict("Tiny SGE – Hanano et al.: Face 1", api_name="/smile_compare")
    assert image(pair[1]).shape == (2 * size, 2 * size, 3)


def expression(client, path, models, target="happy", intensity=1.0, reference=None, paste=True):
    return client.predict(handle_file(path), app.ALL_FACES, [], list(models), target, intensity,
                          None if reference is None else handle_file(reference), paste, api_name="/expression")


def test_expression_one_target(client, data_root, tmp_path):
    path = jaffe_pair_photo(data_root, tmp_path)
    astronaut = app.example_photos()[0]
    gallery, compare, pair, download, info = expression(
        client, path, ["tiny-exprgan-untrained", "tiny-lmk-untrained"], "sad", 0.5, reference=astronaut)
    assert info.startswith("2 face(s) processed")
    caps = captions(gallery)
    for title in ("Tiny ExprGAN – Nimitha et al.", "Tiny landmark-guided – Li et al."):
        assert f"{title}: sad, photo" in caps
        assert f"{title}: sad, Face 1" in caps and f"{title}: sad, Face 2" in caps
    photo = image(download)
    assert photo.shape == image(path).shape  # pasted back at the photo's own size
    pair, _ = client.predict("Tiny ExprGAN – Nimitha et al.: sad, Face 2", api_name="/expression_compare")
    assert image(pair[0]).shape == image(pair[1]).shape


def test_expression_grid_of_all(client, data_root, tmp_path):
    path = jaffe_pair_photo(data_root, tmp_path)
    gallery, *_ = expression(client, path, ["tiny-exprgan-untrained"], app.ALL_EXPRESSIONS, paste=False)
    grid = [g for g in gallery if "all expressions" in g["caption"]]
    assert len(grid) == 1
    known = ExprGANConfig.tiny().expressions
    targets = [e for e in known if e != "neutral"]
    side = ExprGANConfig.tiny().size
    assert image(grid[0]["image"]).shape == (2 * side, (1 + len(targets)) * side, 3)  # rows: faces
    assert ", ".join(targets) in grid[0]["caption"]


def test_landmark_model_without_reference_or_template_says_why(client, data_root, tmp_path):
    path = jaffe_pair_photo(data_root, tmp_path)
    with pytest.raises(Exception) as e:
        expression(client, path, ["tiny-lmk-untrained"], "happy")
    assert "reference photo" in str(e.value) and "Traceback" not in str(e.value)


def lb(client, task="sr-x4", **kw):
    return client.predict(api_name=f"/leaderboard_{task.replace('-', '_')}", search=kw.get("search", ""),
                          **{k: v for k, v in kw.items() if k != "search"})


def test_leaderboard_search_filters_columns_and_csv(client):
    table, csv = lb(client, search="bic")
    rows = [dict(zip(table["headers"], r)) for r in table["data"]]
    assert [r["model"] for r in rows] == ["bicubic"]
    assert 20 < rows[0]["PSNR (Y) (dB) ↑"] < 40
    with open(csv, encoding="utf-8") as fh:
        assert fh.read().splitlines()[1].startswith("bicubic,")
    table, _ = lb(client, columns=["n", "PSNR (Y) (dB) ↑"], kinds=["reference"])
    assert table["headers"] == ["model", "n", "PSNR (Y) (dB) ↑"]
    assert sorted(r[0] for r in table["data"]) == ["identity (reference)", "real (reference)"]


def test_leaderboard_other_tasks_answer(client):
    for task in ("sr-x2", "sr-x8", "smile", "expression"):
        table, _ = lb(client, task)
        assert "headers" in table


def test_leaderboard_plot_and_provenance(client):
    plot = client.predict("psnr_y", api_name="/leaderboard_plot_sr_x4")
    assert plot is not None
    prov = client.predict("bicubic", api_name="/provenance_sr_x4")
    assert prov["model"] == "bicubic"
    for key in ("dataset", "n", "judges", "commit", "date", "hardware"):
        assert key in prov
    prov = client.predict("identity", api_name="/provenance_sr_x4")
    assert prov["kind"] == "reference"


# ---------------------------------------------------------------------------------------------
# Errors reach people as sentences
# ---------------------------------------------------------------------------------------------


def error_of(fn) -> str:
    with pytest.raises(Exception) as e:
        fn()
    msg = str(e.value)
    assert "Traceback" not in msg
    return msg


def test_not_an_image_gives_sentence(client, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a picture")
    assert "text file, not a photo" in error_of(lambda: sr(client, str(bad)))


def test_no_face_gives_sentence(client, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (90, 140, 200)).save(blank)
    assert "No face was found" in error_of(lambda: sr(client, str(blank)))


def test_too_large_picture_gives_sentence(client, tmp_path):
    big = tmp_path / "big.png"
    Image.new("L", (8000, 6000)).save(big)  # 48 megapixels: refused from the header
    assert "too large" in error_of(lambda: sr(client, str(big)))


def test_wrong_face_and_model_give_sentences(client, data_root, tmp_path):
    path, _ = group_photo(data_root, tmp_path)
    fresh = gradio_client.Client(client.src, verbose=False)  # a new session: any of Face 1..8 may be asked for
    two = app.example_photos()[1]
    assert "Face 3 is not in this photo" in error_of(lambda: sr(fresh, two, which=app.PICKED_FACES, picked=["Face 3"]))
    assert "Tick at least one face" in error_of(lambda: sr(client, path, which=app.PICKED_FACES))
    assert "not in the list of choices" in error_of(lambda: sr(client, path, models=["tiny-sge-untrained"]))
    assert "Pick at least one model" in error_of(lambda: sr(client, path, models=[]))


def test_no_model_shipped_note(monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY", {"bicubic": registry.REGISTRY["bicubic"]})
    assert "No model is shipped for the smile task yet" in app._no_model_note("smile")
    assert app._no_model_note("sr-x4") == ""
    with pytest.raises(app.gr.Error, match="No model is shipped for the expression task yet"):
        app.run_expression(app.example_photos()[0], app.ALL_FACES, [], ["x"], "happy", 1.0, None, True)


# ---------------------------------------------------------------------------------------------
# The pipelines as plain functions
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_faces():
    from facegen.faces import detect
    from facegen.images import read_image

    photo = read_image(app.example_photos()[1])
    return photo, detect(photo)


def runner(model_id: str, task: str):
    from facegen.inference import Runner

    spec = TINY[model_id]
    return Runner(model_id, task, spec.model_class(spec.configs[task]).eval(), "cpu")


def test_smile_photo_pastes_back_at_up_to_twice_the_size(two_faces):
    photo, faces = two_faces
    assert len(faces) == 2
    r = runner("tiny-sge-untrained", "smile")
    res = app.smile_photo(photo, faces, r, app.TASKS["smile"])
    assert [o.shape for o in res.outputs] == [(32, 32, 3)] * 2 and [i.shape for i in res.inputs] == [(16, 16, 3)] * 2
    # The 16 -> 32 crops hold fewer pixels than these faces: the photo keeps its size, faces change.
    assert res.image.shape == photo.shape and not np.array_equal(res.image, photo)
    off = app.smile_photo(photo, faces, r, app.TASKS["smile"], paste=False)
    assert np.array_equal(off.image, photo)
    tiny_photo = app.resize(photo, 0.03)  # faces of ~3 pixels: the 32-pixel output enlarges the photo 2x
    from facegen.faces import scale_face

    res = app.smile_photo(tiny_photo, [scale_face(f, 0.03) for f in faces], r, app.TASKS["smile"])
    assert res.image.shape[0] == 2 * tiny_photo.shape[0] and "enlarged 2.00x" in res.notes[-1]


def test_expression_photo_and_reference_landmarks(two_faces):
    photo, faces = two_faces
    r = runner("tiny-lmk-untrained", "expression")
    lm = app.photo_landmarks(photo, size=app.model_input_size(r, app.TASKS["expression"].in_size))
    assert lm.shape == (68, 2)
    res = app.expression_photo(photo, faces, r, "happy", app.TASKS["expression"], landmarks=lm)
    assert res.image.shape == photo.shape and len(res.outputs) == 2
    g = app.expression_grid(res.inputs, {"happy": res.outputs, "sad": res.outputs})
    assert g.shape == (64, 96, 3)


def test_select_faces():
    faces = ["a", "b", "c"]
    assert app.select_faces(faces, app.ALL_FACES, []) == faces
    assert app.select_faces(faces, app.PICKED_FACES, ["Face 3", "Face 1", "Face 3"]) == ["c", "a"]
    with pytest.raises(app.gr.Error):
        app.select_faces(faces, app.PICKED_FACES, ["nose"])


def test_request_files_are_per_request_and_swept(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    a, b = app.RequestFiles(), app.RequestFiles()
    assert a.dir != b.dir
    p = Path(a.png(np.zeros((4, 4, 3), np.uint8), "x"))
    assert p.is_file() and p.parent == a.dir
    old = 1_000_000_000.0
    os.utime(a.dir, (old, old))
    request_results.sweep_old_results()
    assert not a.dir.exists() and b.dir.exists()


def test_example_photos_have_faces(tmp_path):
    from facegen.faces import detect
    from facegen.images import read_image

    paths = app.example_photos(tmp_path)
    assert [len(detect(read_image(p))) for p in paths] == [1, 2, 1]


def test_upload_over_the_size_limit_is_refused(client, tmp_path):
    big = tmp_path / "huge.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(26 * 1024 * 1024))  # over MAX_UPLOAD (25 MB)
    msg = error_of(lambda: sr(client, str(big))).lower()
    assert "too large" in msg or "exceed" in msg or "413" in msg, msg


@pytest.mark.parametrize("scale", [4, 8])
def test_small_faces_through_the_api(client, data_root, tmp_path, scale):
    """Real faces of 32 px (x4) or 16 px (x8) in a group photo: every face is found, the photo comes
    back exactly `scale` times larger, the bicubic row is the plain bicubic enlargement, and the best
    model's faces are closer to the original faces than that enlargement (PSNR, Y)."""
    from benchmarks import metrics

    names = sorted((data_root / "celeba_fsrnet" / "celeba_val_1000_HR").iterdir())[:4]
    hr = np.full((160, 640, 3), 90, np.uint8)
    for i, n in enumerate(names):
        hr[16:144, 16 + 160 * i:144 + 160 * i] = np.asarray(Image.open(n).convert("RGB"))
    path = tmp_path / "small-group.png"
    small = app.resize(hr, 1 / scale)
    Image.fromarray(small).save(path)
    gallery, _, _, _, _, info = sr(client, str(path), task=f"sr-x{scale}", models=("bicubic", "stackedgan"))
    assert info.startswith("4 face(s) processed")
    photos = {g["caption"]: image(g["image"]) for g in gallery if g["caption"].endswith(": photo")}
    plain = app.resize(small, scale)
    assert np.array_equal(photos["Bicubic: photo"], plain)
    model = photos["Stacked GAN – He et al.: photo"]
    assert model.shape == plain.shape == (160, 640, 3)
    faces = [(slice(16, 144), slice(16 + 160 * i, 144 + 160 * i)) for i in range(4)]
    psnr = lambda img: np.mean([metrics.psnr(img[f], hr[f], test_y_channel=True) for f in faces])  # noqa: E731
    assert psnr(model) > psnr(plain) + 0.3
