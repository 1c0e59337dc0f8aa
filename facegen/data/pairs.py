"""Same-subject neutral -> expression pairs (JAFFE, RaFD) from their ``pairs_neutral_to_expression.csv``."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

from facegen.expressions import normalise_expression
from facegen.data.records import FaceRecord
from facegen.data.root import data_root
from facegen.data.sets import DatasetFormatError, _rows, read_jaffe, read_rafd


@dataclass(frozen=True)
class ExpressionPair:
    """A same-subject neutral -> expression pair."""

    subject: str
    neutral: FaceRecord
    target: FaceRecord

    @property
    def expression(self) -> str:
        assert self.target.expression is not None
        return self.target.expression


_PAIR_SETS = {"jaffe": ("jaffe", read_jaffe), "rafd_subset": ("rafd_subset", read_rafd)}


def read_pairs(dataset: str, root: str | Path | None = None) -> list[ExpressionPair]:
    """Neutral -> expression pairs of JAFFE (549) or RaFD (78) from ``pairs_neutral_to_expression.csv``.

    JAFFE pairs every neutral image of a subject with every expression image of that subject.
    """
    if dataset not in _PAIR_SETS:
        raise KeyError(f"Pairs exist for {', '.join(_PAIR_SETS)} only, not {dataset!r}.")
    folder, reader = _PAIR_SETS[dataset]
    records = reader(root)
    by_path = {r.path: r for r in records}
    base = records[0].root if records else data_root(root, require=(folder,))
    rows = _rows(
        Path(base) / folder / "pairs_neutral_to_expression.csv",
        ("subject", "neutral_image", "target_image", "target_emotion"),
    )
    pairs = []
    for i, r in enumerate(rows):
        neutral = by_path.get(f"{folder}/{r['neutral_image']}")
        target = by_path.get(f"{folder}/{r['target_image']}")
        if neutral is None or target is None:
            raise DatasetFormatError(f"{folder} pairs row {i}: an image is not in labels.csv ({r}).")
        if neutral.expression != "neutral" or target.expression != normalise_expression(r["target_emotion"]):
            raise DatasetFormatError(f"{folder} pairs row {i}: labels disagree with labels.csv ({r}).")
        if not (neutral.subject == target.subject == r["subject"]):
            raise DatasetFormatError(f"{folder} pairs row {i}: the two images are of different subjects.")
        pairs.append(ExpressionPair(subject=r["subject"], neutral=neutral, target=target))
    return pairs


def iter_pairs(
    dataset: str,
    root: str | Path | None = None,
    expressions: Collection[str] | None = None,
    subjects: Collection[str] | None = None,
) -> Iterator[ExpressionPair]:
    """Pairs of ``dataset``, optionally only those whose target expression (any alias, e.g.
    ``"happiness"``) and subject are in the given collections, in the pairs file's order."""
    wanted = None if expressions is None else {normalise_expression(e) for e in expressions}
    for pair in read_pairs(dataset, root):
        if wanted is not None and pair.expression not in wanted:
            continue
        if subjects is not None and pair.subject not in subjects:
            continue
        yield pair
