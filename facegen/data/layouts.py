"""Readers for the usual layouts of full public face datasets a user may own.

- :func:`read_image_folder`: any folder of images, searched recursively; the first sub-folder
  names the subject (``person/img.jpg``), else the file stem.
- :func:`read_celeba`: ``img_align_celeba/`` + ``list_eval_partition.txt`` (0 train, 1 val,
  2 test), also found under ``Eval/``; identities from ``identity_CelebA.txt`` (also under
  ``Anno/``) when present.
- :func:`read_ffhq`: ``images1024x1024/NNNNN/*.png`` (the official layout, thousands
  sub-folders), or a flat folder of PNGs.
- :func:`read_ckplus`: ``cohn-kanade-images/Sxxx/yyy/*.png`` + ``Emotion/Sxxx/yyy/*_emotion.txt``.
  Each labelled sequence gives its peak frame (the frame named by the emotion file, label = the
  float code inside it, see :data:`facegen.expressions.CKPLUS_CODES`) and, when
  ``include_neutral``, its first frame as neutral. Unlabelled sequences are left out.

Record paths are relative to the dataset folder passed in (``record.root``).
"""

from __future__ import annotations

import re
from pathlib import Path

from facegen.expressions import CKPLUS_CODES
from facegen.data.records import FaceRecord

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".pgm", ".ppm", ".tif", ".tiff")


class LayoutError(RuntimeError):
    """A dataset folder does not have the layout its reader expects."""


def _folder(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise LayoutError(f"{what}: {p} is not a folder.")
    return p.resolve()


def _images(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
    )


def read_image_folder(folder: str | Path, dataset: str = "folder") -> list[FaceRecord]:
    """Every image under ``folder`` (recursive, sorted by path)."""
    base = _folder(folder, "Image folder")
    files = _images(base)
    if not files:
        raise LayoutError(f"Image folder {base} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    out = []
    for p in files:
        rel = p.relative_to(base)
        subject = rel.parts[0] if len(rel.parts) > 1 else p.stem
        out.append(FaceRecord(dataset=dataset, subject=subject, path=rel.as_posix(), root=base))
    return out


_PARTITIONS = {"train": "0", "val": "1", "test": "2"}


def _find(base: Path, name: str, subfolders: tuple[str, ...]) -> Path | None:
    for sub in ("", *subfolders):
        p = base / sub / name
        if p.is_file():
            return p
    return None


def read_celeba(folder: str | Path, partition: str | None = None) -> list[FaceRecord]:
    """CelebA aligned faces; ``partition`` in ``train`` / ``val`` / ``test`` or None for all.

    The partition is kept in ``record.get('partition')``.
    """
    base = _folder(folder, "CelebA folder")
    images = base / "img_align_celeba"
    if not images.is_dir():
        raise LayoutError(f"CelebA folder {base} lacks img_align_celeba/.")
    if partition is not None and partition not in _PARTITIONS:
        raise ValueError(f"partition must be one of {', '.join(_PARTITIONS)} or None, not {partition!r}.")
    part_file = _find(base, "list_eval_partition.txt", ("Eval", "eval"))
    if part_file is None:
        raise LayoutError(f"CelebA folder {base} lacks list_eval_partition.txt (also looked in Eval/).")
    identities: dict[str, str] = {}
    id_file = _find(base, "identity_CelebA.txt", ("Anno", "anno"))
    if id_file is not None:
        for line in id_file.read_text(encoding="utf-8").split("\n"):
            parts = line.split()
            if len(parts) == 2:
                identities[parts[0]] = parts[1]
    names = {_PARTITIONS[k]: k for k in _PARTITIONS}
    out = []
    for n, line in enumerate(part_file.read_text(encoding="utf-8").split("\n"), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in names:
            raise LayoutError(f"{part_file} line {n}: expected '<image> <0|1|2>', got {line!r}.")
        image, code = parts
        if partition is not None and names[code] != partition:
            continue
        out.append(
            FaceRecord(
                dataset="celeba",
                subject=identities.get(image, Path(image).stem),
                path=f"img_align_celeba/{image}",
                extra=(("partition", names[code]),),
                root=base,
            )
        )
    return out


def read_ffhq(folder: str | Path) -> list[FaceRecord]:
    """FFHQ: ``images1024x1024/NNNNN/*.png`` (or any ``images*`` folder of that form), or a flat
    folder of images, sorted by image number. Each face is its own subject."""
    base = _folder(folder, "FFHQ folder")
    official = base / "images1024x1024"
    search = official if official.is_dir() else base
    files = _images(search)
    if not files:
        raise LayoutError(
            f"FFHQ folder {base} holds no images (expected images1024x1024/NNNNN/*.png or a flat folder)."
        )

    def order(p: Path) -> tuple[int, str]:
        return (int(p.stem), p.name) if p.stem.isdigit() else (1 << 62, p.as_posix())

    return [
        FaceRecord(dataset="ffhq", subject=p.stem, path=p.relative_to(base).as_posix(), root=base)
        for p in sorted(files, key=order)
    ]


_FRAME = re.compile(r"^(S\d+)_(\d+)_(\d+)")


def read_ckplus(folder: str | Path, include_neutral: bool = True) -> list[FaceRecord]:
    """CK+: peak frame of every labelled sequence (+ its first frame as neutral)."""
    base = _folder(folder, "CK+ folder")
    images_dir, emotion_dir = base / "cohn-kanade-images", base / "Emotion"
    for d in (images_dir, emotion_dir):
        if not d.is_dir():
            raise LayoutError(f"CK+ folder {base} lacks {d.name}/.")
    out = []
    for label_file in sorted(emotion_dir.glob("*/*/*_emotion.txt")):
        subject, sequence = label_file.parent.parent.name, label_file.parent.name
        try:
            code = int(float(label_file.read_text(encoding="utf-8").split()[0]))
        except (ValueError, IndexError) as err:
            raise LayoutError(f"{label_file}: expected one number (the emotion code).") from err
        if not 0 <= code < len(CKPLUS_CODES):
            raise LayoutError(f"{label_file}: emotion code {code} is outside 0..7.")
        frames = sorted(
            p for p in (images_dir / subject / sequence).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not frames:
            raise LayoutError(f"{label_file} labels a sequence with no images in {images_dir / subject / sequence}.")
        match = _FRAME.match(label_file.name)
        peak = next((p for p in frames if match and p.name.startswith(match.group(0))), frames[-1])
        chosen = [(frames[0], "neutral")] if include_neutral and frames[0] != peak else []
        chosen.append((peak, CKPLUS_CODES[code]))
        for path, expression in chosen:
            m = _FRAME.match(path.name)
            out.append(
                FaceRecord(
                    dataset="ckplus",
                    subject=subject,
                    expression=expression,
                    path=path.relative_to(base).as_posix(),
                    extra=(("frame", str(int(m.group(3))) if m else path.stem), ("sequence", sequence)),
                    root=base,
                )
            )
    if not out:
        raise LayoutError(f"CK+ folder {base} has no labelled sequences in Emotion/.")
    return out
