"""facegen.data.wild: the held-out LFW identities and the same-person wild pairs."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from facegen.data.sets import read_lfw_expressions
from facegen.data.wild import LFW_TEST_IDENTITIES, wild_test_faces, wild_train_pairs


def test_test_identities_follow_the_stated_rule(data_root):
    counts: dict[str, Counter] = {}
    for r in read_lfw_expressions(data_root, include_other=False):
        counts.setdefault(r.subject, Counter())[r.expression] += 1
    rule = sorted(
        name for name, c in counts.items()
        if c["neutral"] and c["happy"] and c["neutral"] <= 40
        and int(hashlib.sha256(name.encode()).hexdigest(), 16) % 5 == 0
    )
    assert list(LFW_TEST_IDENTITIES) == rule
    assert len(set(LFW_TEST_IDENTITIES)) == len(LFW_TEST_IDENTITIES) == 159


def test_wild_test_faces_are_neutral_and_capped(data_root):
    faces = wild_test_faces(root=data_root)
    assert len(faces) == 301  # the wild protocols ask for at least 300
    assert {r.expression for r in faces} == {"neutral"}
    per_person = Counter(r.subject for r in faces)
    assert set(per_person) == set(LFW_TEST_IDENTITIES) and max(per_person.values()) == 3
    assert len(wild_test_faces("happiness", data_root, per_identity=None)) == 446


@pytest.mark.parametrize("expression", ["happy", "surprise"])
def test_wild_pairs_are_same_person_different_photos_never_test_people(data_root, expression):
    pairs = wild_train_pairs(expression, data_root, per_identity=20)
    assert pairs and all(p.subject not in set(LFW_TEST_IDENTITIES) for p in pairs)
    assert all(p.neutral.subject == p.target.subject == p.subject for p in pairs)
    assert all(p.neutral.expression == "neutral" and p.target.expression == expression for p in pairs)
    assert all(p.neutral.path != p.target.path for p in pairs)
    assert len({(p.neutral.path, p.target.path) for p in pairs}) == len(pairs)  # no combination twice
    per_person = Counter(p.subject for p in pairs)
    assert max(per_person.values()) == 20
    big = [p for p in pairs if p.subject == "George_W_Bush"] if expression == "happy" else []
    if big:  # the cap spreads over a big identity's photos instead of repeating its first neutral one
        assert len({p.neutral.path for p in big}) == 20 and len({p.target.path for p in big}) > 1


def test_wild_pairs_reject_bad_arguments(data_root):
    with pytest.raises(ValueError, match="neutral"):
        wild_train_pairs("neutral", data_root)
    with pytest.raises(ValueError, match="at least 1"):
        wild_train_pairs("happy", data_root, per_identity=0)
