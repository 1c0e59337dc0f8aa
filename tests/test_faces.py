"""Detection, landmarks, alignment and paste-back on real photos from the data root."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from PIL import Image

from facegen import faces as F
from facegen import paste as P
from facegen.images import read_image

PHOTOS = {
    "lfw": "lfw/Adrien_Brody/Adrien_Brody_0001.jpg",
    "jaffe": "jaffe/KA.AN1.39.jpg",
    "rafd": "rafd_subset/neutral/Rafd090_01_Caucasian_female_neutral_frontal.jpg",
    "celeba": "celeba_fsrnet/celeba_val_1000_HR/201600.jpg",
}
CELEBA = ["201600.jpg", "201610.jpg", "201620.jpg", "201630.jpg"]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def centre_region(face: F.Face) -> tuple[slice, slice]:
    """The inner half of the face box: well inside the paste-back mask."""
    x, y, w, h = face.box
    return slice(max(0, int(y + h / 4)), int(y + 3 * h / 4)), slice(max(0, int(x + w / 4)), int(x + 3 * w / 4))


@pytest.fixture(scope="module")
def photos(data_root):
    return {k: read_image(data_root / v) for k, v in PHOTOS.items()}


# ------------------------------------------------------------------------------------ detection


@pytest.mark.parametrize("name", list(PHOTOS))
def test_detects_the_face(photos, name):
    img = photos[name]
    found = F.detect_faces(img)
    face = F.centred_face(found, img.shape)
    x, y, w, h = face.box
    assert face.score >= 0.6 and w > 20 and h > 20
    assert face.points.shape == (5, 2) and face.points.dtype == np.float32
    # subject's right eye is on the image left; eyes above the nose, nose above the mouth
    re, le, nose, rm, lm = face.points
    assert re[0] < le[0] and rm[0] < lm[0]
    assert max(re[1], le[1]) < nose[1] < min(rm[1], lm[1])
    assert x <= nose[0] <= x + w and y <= nose[1] <= y + h


def test_multi_face_image_returns_all_largest_first(data_root):
    tiles = []
    for name, side in zip(CELEBA, (96, 224, 160, 128)):
        face = read_image(data_root / "celeba_fsrnet/celeba_val_1000_HR" / name)
        face = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA if side < 128 else cv2.INTER_CUBIC)
        tile = np.full((300, 300, 3), 128, np.uint8)
        tile[(300 - side) // 2 : (300 + side) // 2, (300 - side) // 2 : (300 + side) // 2] = face
        tiles.append(tile)
    canvas = np.concatenate(tiles, axis=1)
    found = F.detect_faces(canvas)
    assert len(found) == 4
    areas = [f.area for f in found]
    assert areas == sorted(areas, reverse=True)
    tile_of = [int(f.centre[0] // 300) for f in found]
    assert tile_of == [1, 2, 3, 0]  # sides 224 > 160 > 128 > 96


def test_blank_image_has_no_face():
    blank = np.full((200, 300, 3), 200, np.uint8)
    assert F.detect(blank) == []
    with pytest.raises(F.FaceNotFoundError, match="No face"):
        F.detect_faces(blank)


def test_huge_photo_is_detected_on_a_downscaled_copy(photos):
    img = photos["rafd"]
    small = F.detect_faces(img, max_side=4096)[0]
    big_img = cv2.resize(img, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    assert max(big_img.shape) > 4000
    big = F.detect_faces(big_img, max_side=1024)[0]
    # Coordinates come back in the big photo's pixels: 4x those found on the original.
    assert np.allclose(np.array(big.box), 4 * np.array(small.box), atol=0.06 * small.box[2] * 4)
    expect = 4 * (small.points + 0.5) - 0.5
    iod = np.linalg.norm(expect[0] - expect[1])
    assert np.abs(big.points - expect).max() < 0.1 * iod


def test_tiny_pictures_give_no_phantom_faces():
    # YuNet on a side below its 32-px stride used to read stale memory from the previous, larger
    # input and report faces at random coordinates; alternate large and tiny inputs to provoke it.
    rng = np.random.default_rng(0)
    for side in range(1, 48, 3):
        F.detect(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
        for shape in [(side, side), (side, 200), (150, side)]:
            assert F.detect(np.full((*shape, 3), (10, 20, 30), np.uint8)) == [], shape


@pytest.mark.parametrize("side", [24, 40])
def test_small_faces_are_still_found(photos, side):
    small = cv2.resize(photos["celeba"], (side, side), interpolation=cv2.INTER_AREA)
    faces = F.detect(small)
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert 0 <= x and 0 <= y and x + w <= side + 1 and y + h <= side + 1 and w > side / 3


def test_rejects_non_rgb_input():
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        F.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        F.detect(np.zeros((10, 10, 3), np.float32))


def test_detection_is_thread_safe(photos):
    imgs = [photos["lfw"], photos["jaffe"], photos["celeba"]] * 3
    expect = [F.detect(i)[0].box for i in imgs]
    got: dict[int, tuple] = {}

    def work(i: int) -> None:
        got[i] = F.detect(imgs[i])[0].box
        F.landmarks68(imgs[i], F.detect(imgs[i])[0])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(imgs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[i] for i in range(len(imgs))] == expect


# ------------------------------------------------------------------------------------ landmarks


@pytest.mark.parametrize("name", list(PHOTOS))
def test_landmarks68_agree_with_the_five_points(photos, name):
    img = photos[name]
    face = F.centred_face(F.detect_faces(img), img.shape)
    pts = F.landmarks68(img, face)
    assert pts.shape == (68, 2) and pts.dtype == np.float32
    eyes = np.stack([pts[36:42].mean(0), pts[42:48].mean(0)])
    iod = float(np.linalg.norm(face.points[0] - face.points[1]))
    assert np.linalg.norm(eyes - face.points[:2], axis=1).max() < 0.2 * iod
    mouth = np.stack([pts[48], pts[54]])  # mouth corners, subject's right then left
    assert np.linalg.norm(mouth - face.points[3:], axis=1).max() < 0.25 * iod


# ------------------------------------------------------------------------------------ alignment


def test_similarity_transform_recovers_a_known_transform():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (5, 2))
    ang, scale, t = 0.3, 1.7, np.array([12.0, -4.0])
    rot = scale * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = src @ rot.T + t
    m = F.similarity_transform(src, dst)
    assert np.allclose(m[:, :2], rot, atol=1e-9) and np.allclose(m[:, 2], t, atol=1e-9)
    with pytest.raises(ValueError):
        F.similarity_transform(np.zeros((5, 2)), dst)


@pytest.mark.parametrize("template", ["celeba", "ffhq", "arcface", "celeba@0.625"])
@pytest.mark.parametrize("size", [64, 112, 256])
def test_aligned_points_land_on_the_template(photos, template, size):
    img = photos["lfw"]
    face = F.centred_face(F.detect_faces(img), img.shape)
    a = F.align(img, face, size, template)
    assert a.image.shape == (size, size, 3) and a.image.dtype == np.uint8 and a.size == size
    assert a.matrix.shape == (2, 3)
    mapped = face.points @ a.matrix[:, :2].T + a.matrix[:, 2]
    err = np.linalg.norm(mapped - F.template_points(template, size), axis=1)
    assert err.mean() < 0.04 * size  # 5 points, 4 degrees of freedom: a small residual remains
    # and the face found again in the crop sits where the template says
    again = F.detect(cv2.copyMakeBorder(a.image, size // 2, size // 2, size // 2, size // 2, cv2.BORDER_REFLECT101))
    if size >= 112:
        pts = again[0].points - size // 2
        assert np.linalg.norm(pts - F.template_points(template, size), axis=1).mean() < 0.05 * size


def test_zoomed_template_scales_the_points_about_the_centre():
    assert F.zoomed("celeba", 1.0) == "celeba" and F.zoomed("celeba", 0.625) == "celeba@0.625"
    pts = F.template_points("celeba@0.5", 128)
    np.testing.assert_allclose(pts, 64.0 + 0.5 * (F.TEMPLATES["celeba"] * 128 - 64.0) - 0.5)
    x0, y0, x1, y1 = F.face_box("celeba@0.5")
    X0, Y0, X1, Y1 = F.face_box("celeba")
    assert x1 - x0 == pytest.approx(0.5 * (X1 - X0)) and y1 - y0 == pytest.approx(0.5 * (Y1 - Y0))
    for bad in ("celeba@2", "celeba@0.05", "celeba@x", "nope@0.5"):
        with pytest.raises(ValueError):
            F.template_points(bad, 128)


def test_arcface_template_at_112_is_insightfaces():
    from insightface.utils.face_align import arcface_dst

    assert np.allclose(F.template_points("arcface", 112), arcface_dst, atol=1e-4)


def test_expression_rule(photos):
    img = photos["rafd"]
    face = F.detect_faces(img)[0]
    size = 256
    a = F.align(img, face, size, "expression")
    re, le = face.points[:2] @ a.matrix[:, :2].T + a.matrix[:, 2]
    d_photo = float(np.linalg.norm(face.points[1] - face.points[0]))
    # side 6.4 d; eyes level, 3.2 d from the top, centred horizontally on the eye midpoint
    assert np.isclose(F.matrix_scale(a.matrix) * 6.4 * d_photo, size, rtol=1e-6)
    assert abs(re[1] - le[1]) < 1e-6
    assert np.isclose((re[1] + 0.5) / size, 3.2 / 6.4, atol=1e-6)
    assert np.isclose((re[0] + le[0]) / 2 + 0.5, size / 2, atol=1e-6)
    assert np.isclose(le[0] - re[0], size / 6.4, atol=1e-6)


def test_celeba_template_matches_the_celeba_faces(data_root):
    """Aligning an already CelebA-aligned face at 128 with the measured template is ~identity."""
    scales, shifts = [], []
    for name in CELEBA:
        img = read_image(data_root / "celeba_fsrnet/celeba_val_1000_HR" / name)
        a = F.align(img, F.detect_faces(img)[0], 128, "celeba")
        scales.append(F.matrix_scale(a.matrix))
        centre = a.matrix[:, :2] @ np.array([63.5, 63.5]) + a.matrix[:, 2]
        shifts.append(np.linalg.norm(centre - 63.5))
    assert abs(np.mean(scales) - 1) < 0.06
    assert np.mean(shifts) < 4


def test_small_crops_do_not_alias():
    # Fine stripes (2-pixel period) shrunk 8x must average to grey, not beat into bands.
    stripes = np.zeros((800, 800, 3), np.uint8)
    stripes[:, ::2] = 255
    pts = np.array([[330, 330], [470, 330], [400, 420], [345, 500], [455, 500]], np.float32)
    a = F.align(stripes, pts, 32, "celeba")
    assert F.matrix_scale(a.matrix) < 0.3
    assert abs(a.image.mean() - 127.5) < 6 and a.image.std() < 6


def test_align_rejects_bad_arguments(photos):
    face = F.detect_faces(photos["lfw"])[0]
    with pytest.raises(ValueError, match="template"):
        F.align(photos["lfw"], face, 64, "nope")
    with pytest.raises(ValueError, match="size"):
        F.align(photos["lfw"], face, 0)


# ------------------------------------------------------------------------------------ paste-back


@pytest.mark.parametrize("name", list(PHOTOS))
@pytest.mark.parametrize(("template", "size"), [("celeba", 256), ("ffhq", 512), ("arcface", 112), ("expression", 256)])
def test_align_paste_back_round_trip(photos, name, template, size):
    img = photos[name]
    face = F.centred_face(F.detect_faces(img), img.shape)
    a = F.align(img, face, size, template)
    back = P.paste_back(img, a.image, a)
    assert back.shape == img.shape and back.dtype == np.uint8
    assert psnr(back[centre_region(face)], img[centre_region(face)]) > 30
    assert psnr(back, img) > 30


def test_paste_back_of_a_larger_crop_and_into_a_larger_photo(photos):
    img = photos["lfw"]
    face = F.centred_face(F.detect_faces(img), img.shape)
    a = F.align(img, face, 128, "celeba")
    region = centre_region(face)
    # A 4x "super-resolved" crop: its scale follows from its side versus the aligned size.
    crop4 = cv2.resize(a.image, (512, 512), interpolation=cv2.INTER_CUBIC)
    assert psnr(P.paste_back(img, crop4, a)[region], img[region]) > 30
    assert np.array_equal(P.paste_back(img, crop4, a.matrix, aligned_size=128), P.paste_back(img, crop4, a))
    with pytest.raises(ValueError, match="aligned_size"):
        P.paste_back(img, crop4, a.matrix)
    # ... pasted into the photo up-scaled 4x, it matches that up-scaled photo.
    big = cv2.resize(img, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    out = P.paste_back(big, crop4, a, photo_scale=4)
    big_region = tuple(slice(s.start * 4, s.stop * 4) for s in region)
    assert psnr(out[big_region], big[big_region]) > 30
    m4 = P.scale_matrix(a.matrix, 4)
    assert np.array_equal(P.paste_back(big, crop4, m4, aligned_size=128), out)


def test_paste_back_is_feathered_and_local(photos):
    img = photos["rafd"]
    face = F.detect_faces(img)[0]
    a = F.align(img, face, 128, "celeba")
    red = np.zeros_like(a.image)
    red[..., 0] = 255
    out = P.paste_back(img, red, a, feather=0.1)
    cx, cy = (int(v) for v in face.centre)
    assert tuple(out[cy, cx]) == (255, 0, 0)  # the crop's centre is fully replaced
    changed = np.any(out != img, axis=2)
    ys, xs = np.nonzero(changed)
    # nothing changes outside the crop's footprint
    corners = cv2.invertAffineTransform(a.matrix) @ np.array([[-0.5, -0.5, 1], [127.5, -0.5, 1], [-0.5, 127.5, 1], [127.5, 127.5, 1]]).T
    assert xs.min() >= corners[0].min() - 1 and xs.max() <= corners[0].max() + 1
    assert ys.min() >= corners[1].min() - 1 and ys.max() <= corners[1].max() + 1
    # along a row from the centre outwards the weight of red falls smoothly (no seam)
    row = out[cy, cx:, 0].astype(float) - img[cy, cx:, 0].astype(float)
    weight = row / np.maximum(255.0 - img[cy, cx:, 0], 1)
    end = int(np.nonzero(weight > 0.01)[0].max())
    ramp = weight[: end + 1]
    assert ramp[0] > 0.99 and np.all(np.diff(ramp) < 0.2)
    assert np.sum((ramp > 0.05) & (ramp < 0.95)) >= 4  # the fade spans several pixels


def test_face_mask_covers_the_inner_face_only(photos):
    m = P.face_mask("expression", 128)
    eyes = F.template_points("expression", 128)[:2]
    d = float(np.linalg.norm(eyes[1] - eyes[0]))  # 20 px: the loose 6.4 d crop
    cx, cy = eyes.mean(0)
    assert m.dtype == np.float32 and m.shape == (128, 128) and m.min() == 0.0
    # eyes, mouth (about 1.1 d below the eyes) and chin side fully in; corners and hair out
    for x, y in [*eyes, (cx, cy + 1.1 * d), (cx, cy + 1.6 * d)]:
        assert m[int(round(y)), int(round(x))] > 0.5, (x, y)
    for x, y in [(cx, cy - 1.2 * d), (cx + 1.5 * d, cy), (5, 5), (122, 122)]:
        assert m[int(round(y)), int(round(x))] == 0.0, (x, y)
    # pasted with that mask, a red face changes the inner face but not hair and background
    img = photos["rafd"]
    face = F.detect_faces(img)[0]
    a = F.align(img, face, 64, "expression")
    red = np.zeros((128, 128, 3), np.uint8)
    red[..., 0] = 255
    out = P.paste_back(img, red, a, mask=P.face_mask("expression", 128))
    changed = np.any(out != img, axis=2)
    x, y, w, h = face.box
    assert changed[int(face.centre[1]), int(face.centre[0])]
    assert not changed[: max(0, int(y - 0.2 * h))].any()  # above the brows: the hair and the backdrop
    whole = P.paste_back(img, red, a)
    assert changed.sum() < 0.5 * np.any(whole != img, axis=2).sum()
    with pytest.raises(ValueError, match="like the crop"):
        P.paste_back(img, red, a, mask=np.ones((64, 64), np.float32))


def test_celeba_template_constants_remeasured(data_root):
    """The 'celeba' template is the mean detected 5 points over the 1,000 CelebA-FSRNet faces."""
    pts = []
    for file in sorted((data_root / "celeba_fsrnet/celeba_val_1000_HR").iterdir()):
        img = read_image(file)
        assert img.shape == (128, 128, 3)
        found = F.detect(img)
        if found:
            pts.append(found[0].points)
    assert len(pts) >= 990
    measured = (np.mean(pts, axis=0) + 0.5) / 128
    assert np.abs(measured - F.TEMPLATES["celeba"]).max() < 5e-4


# ------------------------------------------------------------------------- padding and changes


def test_crops_past_the_photo_repeat_its_edge_never_a_reflection(photos):
    """A crop that reaches past the top of the photo: the part outside is the photo's edge row
    repeated (here a red stripe), marked invalid, and never a mirror image of what lies inside."""
    img = photos["lfw"].copy()
    img[:2] = (255, 0, 0)  # a red top edge: edge padding repeats it, a reflection would show the face
    face = F.detect(img)[0]
    a = F.align(img, face, 128, "expression")  # paper 000's loose crop reaches past this 250 px photo
    assert a.padded and a.valid.shape == (128, 128)
    outside = a.valid == 0
    assert outside[:5].all() and outside.mean() > 0.1  # the crop's top rows lie above the photo
    assert np.abs(a.image[:5].astype(int) - (255, 0, 0)).max() <= 2  # the red edge, repeated
    inside = a.valid == 1
    assert inside.sum() > 0.3 * inside.size
    # Pasting the crop back touches only the photo's own pixels and changes none of them.
    assert P.paste_back(img, a.image, a).shape == img.shape


def test_a_crop_inside_the_photo_is_fully_valid(photos):
    img = photos["rafd"]  # a portrait with room around the face
    a = F.align(img, F.detect(img)[0], 64, "celeba")
    assert not a.padded and a.valid.min() > 0.999


def test_paste_change_adds_only_what_the_model_changed(photos):
    img = photos["lfw"]
    a = F.align(img, F.detect(img)[0], 32, "celeba")
    up = np.asarray(Image.fromarray(a.image).resize((128, 128), Image.Resampling.BICUBIC))
    big = np.asarray(Image.fromarray(img).resize((1000, 1000), Image.Resampling.BICUBIC))
    # A model that returns its own bicubic input changes nothing, at any photo scale.
    assert np.array_equal(P.paste_change(big, up, up, a, photo_scale=4), big)
    # A brighter output brightens the face region only, by about the change.
    brighter = np.clip(up.astype(int) + 40, 0, 255).astype(np.uint8)
    out = P.paste_change(big, brighter, up, a, photo_scale=4)
    diff = out.astype(int) - big
    centre = F.scale_face(F.detect(img)[0], 4).centre
    cy, cx = int(centre[1]), int(centre[0])
    assert 30 <= diff[cy, cx].mean() <= 41
    assert np.abs(diff[:50]).max() == 0 and np.abs(diff[-50:]).max() == 0  # far from the face: untouched
    with pytest.raises(ValueError, match="output's size"):
        P.paste_change(big, brighter, a.image, a, photo_scale=4)


def test_small_faces_are_found_on_an_enlarged_copy(photos):
    img = photos["celeba"]
    tiny = np.asarray(Image.fromarray(img).resize((16, 16), Image.Resampling.BICUBIC))  # sr-x8's input: a 10 px face
    assert F.detect(tiny) == []
    found = F.detect_small(tiny)
    assert len(found) == 1
    # Its points are in the small photo's pixels: those of the 128 px face, divided by 8.
    big = F.detect(img)[0]
    assert np.abs(found[0].points - ((big.points + 0.5) / 8 - 0.5)).max() < 1.0
