"""Readers of the shared face sets (one folder each under the data root).

Every reader returns a list of :class:`FaceRecord` in the order of the set's label file, with
expressions normalised to :data:`facegen.expressions.EXPRESSIONS` (None where a set has none).
Expected sizes on the shared data: JAFFE 213 images / 10 subjects, RaFD 117 / 39, CK+48 981 / 118,
LFW 13,233 / 5,749, LFW expressions 13,683 (12,759 LFW + 924 colour crops), CelebA-FSRNet 1,000,
FER2013 rows 1,167, AT&T/ORL 400 / 40.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from facegen.expressions import FER2013_CODES, normalise_expression
from facegen.data.records import FaceRecord
from facegen.data.root import data_root


class DatasetFormatError(RuntimeError):
    """A label file does not have the columns or values this reader expects."""


def _rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.is_file():
        raise DatasetFormatError(f"Label file {path} is missing.")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        lacking = [c for c in columns if c not in (reader.fieldnames or [])]
        if lacking:
            raise DatasetFormatError(
                f"{path} lacks the column(s) {', '.join(lacking)} (has {', '.join(reader.fieldnames or [])})."
            )
        return list(reader)


def read_jaffe(root: str | Path | None = None) -> list[FaceRecord]:
    """JAFFE: 213 grey 256x256 images, 10 subjects, 7 expressions (``jaffe/labels.csv``)."""
    base = data_root(root, require=("jaffe",))
    rows = _rows(base / "jaffe" / "labels.csv", ("image", "subject", "emotion"))
    return [
        FaceRecord(
            dataset="jaffe",
            subject=r["subject"],
            expression=normalise_expression(r["emotion"]),
            path=f"jaffe/{r['image']}",
            extra=(("image_id", r.get("image_id", "")), ("pose_index", r.get("pose_index", ""))),
            root=base,
        )
        for r in rows
    ]


def read_rafd(root: str | Path | None = None) -> list[FaceRecord]:
    """RaFD frontal subset: 39 subjects x {neutral, happy, fearful}, 681x1024 portraits."""
    base = data_root(root, require=("rafd_subset",))
    rows = _rows(base / "rafd_subset" / "labels.csv", ("image", "subject", "emotion"))
    return [
        FaceRecord(
            dataset="rafd_subset",
            subject=r["subject"],
            expression=normalise_expression(r["emotion"]),
            path=f"rafd_subset/{r['image']}",
            extra=(("gender", r.get("gender", "")),),
            root=base,
        )
        for r in rows
    ]


def read_ckplus48(root: str | Path | None = None) -> list[FaceRecord]:
    """CK+48: 981 grey 48x48 peak frames (3 per sequence), 118 subjects, 7 expressions, no neutral."""
    base = data_root(root, require=("ckplus48",))
    rows = _rows(base / "ckplus48" / "labels.csv", ("image", "subject", "sequence", "frame", "emotion"))
    return [
        FaceRecord(
            dataset="ckplus48",
            subject=r["subject"],
            expression=normalise_expression(r["emotion"]),
            path=f"ckplus48/{r['image']}",
            extra=(("frame", r["frame"]), ("sequence", r["sequence"])),
            root=base,
        )
        for r in rows
    ]


def read_lfw(root: str | Path | None = None) -> list[FaceRecord]:
    """LFW: 13,233 grey 250x250 images of 5,749 identities (no expression labels)."""
    base = data_root(root, require=("lfw",))
    rows = _rows(base / "lfw" / "labels.csv", ("image", "identity"))
    return [FaceRecord(dataset="lfw", subject=r["identity"], path=f"lfw/{r['image']}", root=base) for r in rows]


def read_lfw_expressions(root: str | Path | None = None, include_other: bool = True) -> list[FaceRecord]:
    """LFW expression labels (12,759 LFW images) plus 924 small colour crops in ``other_images/``.

    Paths in the label file are relative to the data root already. ``include_other=False`` keeps
    only the LFW images. Four ``other_images`` rows carry their file name as identity (the source
    gives no person); each such crop is then its own subject.
    """
    base = data_root(root, require=("lfw_expressions", "lfw"))
    rows = _rows(base / "lfw_expressions" / "labels.csv", ("image", "identity", "emotion"))
    out = []
    for r in rows:
        other = r["image"].startswith("lfw_expressions/")
        if other and not include_other:
            continue
        out.append(
            FaceRecord(
                dataset="lfw_expressions",
                subject=r["identity"],
                expression=normalise_expression(r["emotion"]),
                path=r["image"],
                extra=(("source", "other_images" if other else "lfw"),),
                root=base,
            )
        )
    return out


def read_celeba_fsrnet(root: str | Path | None = None, variant: str = "HR") -> list[FaceRecord]:
    """CelebA-FSRNet 8x test set: 1,000 colour 128x128 aligned faces.

    ``variant="HR"`` (the ground truth) or ``"LR_8x"`` (16x16 bicubic-upsampled back to 128x128;
    same file names). No identity labels: each face is its own subject (its CelebA image id).
    """
    if variant not in ("HR", "LR_8x"):
        raise ValueError(f"variant must be 'HR' or 'LR_8x', not {variant!r}.")
    base = data_root(root, require=("celeba_fsrnet",))
    folder = base / "celeba_fsrnet" / f"celeba_val_1000_{variant}"
    if not folder.is_dir():
        raise DatasetFormatError(f"{folder} is missing.")
    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return [
        FaceRecord(
            dataset="celeba_fsrnet",
            subject=Path(n).stem,
            path=f"celeba_fsrnet/celeba_val_1000_{variant}/{n}",
            extra=(("variant", variant),),
            root=base,
        )
        for n in names
    ]


def read_fer2013_partial(root: str | Path | None = None) -> list[FaceRecord]:
    """FER2013's first 1,167 rows: 48x48 grey faces stored as text, held in memory.

    FER2013 has no subject ids: each row is its own subject (``fer#ROW``), so subject-disjointness
    cannot be checked inside FER; these rows are used for training only.
    """
    base = data_root(root, require=("fer2013_partial",))
    rows = _rows(base / "fer2013_partial" / "fer2013_first_rows.csv", ("emotion", "pixels"))
    out = []
    for i, r in enumerate(rows):
        values = [int(v) for v in r["pixels"].split()]
        if len(values) != 48 * 48 or min(values) < 0 or max(values) > 255:
            raise DatasetFormatError(f"FER2013 row {i}: expected 2304 pixel values in 0..255, got {len(values)}.")
        code = int(r["emotion"])
        if not 0 <= code < len(FER2013_CODES):
            raise DatasetFormatError(f"FER2013 row {i}: emotion code {code} is outside 0..6.")
        out.append(
            FaceRecord(
                dataset="fer2013_partial",
                subject=f"fer#{i}",
                expression=FER2013_CODES[code],
                pixels=bytes(values),
                shape=(48, 48),
                extra=(("row", str(i)), ("usage", r.get("Usage", ""))),
                root=base,
            )
        )
    return out


def read_att_orl(root: str | Path | None = None) -> list[FaceRecord]:
    """AT&T/ORL: 400 grey PGM faces of 40 identities, downscaled to 23x28 (W x H)."""
    base = data_root(root, require=("att_orl",))
    rows = _rows(base / "att_orl" / "labels.csv", ("image", "identity"))
    return [FaceRecord(dataset="att_orl", subject=r["identity"], path=f"att_orl/{r['image']}", root=base) for r in rows]


READERS: dict[str, Callable[..., list[FaceRecord]]] = {
    "jaffe": read_jaffe,
    "rafd_subset": read_rafd,
    "ckplus48": read_ckplus48,
    "lfw": read_lfw,
    "lfw_expressions": read_lfw_expressions,
    "celeba_fsrnet": read_celeba_fsrnet,
    "fer2013_partial": read_fer2013_partial,
    "att_orl": read_att_orl,
}


def read(dataset: str, root: str | Path | None = None) -> list[FaceRecord]:
    """Records of one shared set by folder name (see :data:`READERS`)."""
    if dataset not in READERS:
        raise KeyError(f"Unknown dataset {dataset!r}; known: {', '.join(READERS)}.")
    return READERS[dataset](root)
