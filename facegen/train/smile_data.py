"""Training data of paper 000's smile task: neutral -> happy pairs of the same person, 2x.

Pairs: JAFFE + RaFD neutral -> happy pairs of the *training* subjects of the ``smile`` split
(:func:`facegen.data.task_pairs`; the held-out test subjects are never read here). A few RaFD
training subjects are held out again as the validation set. Faces are cropped by the model's
template (the paper's rule, ``expression``: eye distance d, a 6.4 d square with the eyes 3.2 d
below the top edge; or the tight ``celeba`` crop of the ``wild`` preset) at the high-resolution
(HR) size, once, into the aligned-crop cache.

With ``wild`` (the ``wild`` preset) the LFW neutral -> happy pairs of
:func:`facegen.data.wild.wild_train_pairs` join them: two different photos of one person (never
a held-out LFW identity), each aligned to the template by its own 5 landmarks, so the pair is in
register only up to landmark error, pose and expression, and differs in light. Such items carry
``registered`` = 0: the objective never compares them with their target pixel by pixel (it holds
the output to its own input, weakly inside the face box, and keeps them out of the cGAN; their
targets are the face-box discriminator's real smiles; :func:`facegen.train.smile.reconstruction`);
studio pairs (same session, same pose) carry 1. A wild pair is kept only when SFace verifies its two crops as one person (cosine at
least OpenCV's same-person threshold 0.363): that drops bystanders taken by the detector and
photos too far apart in pose, light or age. The studio pairs are repeated so that they make
about a fifth of the items.

Augmentation (paper section IV.A), drawn per item from a generator seeded by
(seed, epoch, index), so an item is the same whatever the worker or order:

- the crop's x, y and side each shifted by N(0, sigma), sigma = 1 pixel of the paper's 512-pixel
  crop (scaled to our crop size), drawn independently for the neutral and the happy image, as
  each image is cropped on its own;
- a horizontal flip with p = 1/2 and a zoom ("a scaled image"; the factor is not given, we
  draw it from [0.95, 1.05]), the same for both images of a pair so they stay in register;
- 20 augmented copies of every pair per epoch.

Each item: ``lr`` (neutral at the input size: the HR crop PIL-bicubic down-sampled, as the
benchmark makes its inputs), ``hr`` (happy at 2x, the target), ``lr_target`` (happy at the
input size), ``hr_neutral`` (neutral at 2x), float [0, 1] CxHxW; C = 1 (BT.601 Y) for
luminance models.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from facegen import identity
from facegen.data import aligned_crops, task_pairs
from facegen.data.cache import default_cache_root
from facegen.io import load_npz, save_npz
from facegen.data.wild import LFW_TEST_IDENTITIES, PAIRS_PER_IDENTITY, wild_train_pairs
from facegen.data.degrade import bicubic_down, luminance

#: RaFD training subjects held out as the validation set (subject-disjoint from training).
VAL_SUBJECTS: tuple[str, ...] = ("58", "61", "71")
#: Share of the items that are studio pairs when the wild pairs join them.
STUDIO_SHARE = 0.2
#: SFace cosine below which a wild pair is dropped: OpenCV's published same-person threshold for SFace.
SAME_PERSON_COSINE = 0.363


class SmileDataError(ValueError):
    """The smile training data cannot be built as asked."""


@dataclass(frozen=True)
class SmileAugment:
    """Paper 000's augmentation; see the module docstring."""

    shift_sigma: float = 1.0 / 512.0  # std of the crop's x, y and side jitter, as a fraction of the side
    flip: bool = True
    zoom: float = 0.05  # zoom factor drawn from [1 - zoom, 1 + zoom]
    copies: int = 20

    def __post_init__(self) -> None:
        if self.copies < 1 or self.shift_sigma < 0 or not 0 <= self.zoom < 1:
            raise SmileDataError(f"invalid augmentation settings {self}")

    @classmethod
    def none(cls) -> "SmileAugment":
        return cls(shift_sigma=0.0, flip=False, zoom=0.0, copies=1)


def recrop(img: np.ndarray, dx: float, dy: float, ds: float, zoom: float) -> np.ndarray:
    """Re-crop a square uint8 crop with its window moved by (dx, dy) pixels, its side grown by
    ``ds`` pixels and then divided by ``zoom`` (zoom > 1 enlarges the face); edge-repeated borders
    (a reflection would put a mirrored face in the crop, which the models would learn to draw)."""
    s = img.shape[0]
    if dx == dy == ds == 0 and zoom == 1.0:
        return img
    k = (s + ds) / s / zoom  # source pixels per output pixel
    c = (s - 1) / 2
    # output pixel u -> source pixel c + d + k (u - c)
    m = np.array([[k, 0, c + dx - k * c], [0, k, c + dy - k * c]], dtype=np.float64)
    return cv2.warpAffine(np.ascontiguousarray(img), m, (s, s), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


class SmilePairs(Dataset):
    """Augmented (neutral, happy) HR crop pairs -> the four tensors of a smile batch."""

    def __init__(self, neutral: np.ndarray, happy: np.ndarray, luminance: bool = True,
                 augment: SmileAugment | None = None, seed: int = 0, registered: np.ndarray | None = None) -> None:
        if len(neutral) == 0 or len(neutral) != len(happy):
            raise SmileDataError(f"need the same positive number of neutral and happy crops; "
                                 f"got {len(neutral)} and {len(happy)}")
        size = neutral.shape[1]
        if neutral.shape[1:] != (size, size, 3) or happy.shape[1:] != (size, size, 3) or size % 2:
            raise SmileDataError(f"crops must be uint8 NxSxSx3 with an even S; got {neutral.shape}, {happy.shape}")
        if registered is not None and len(registered) != len(neutral):
            raise SmileDataError(f"need one registered flag per pair; got {len(registered)} for {len(neutral)}")
        self.neutral, self.happy = neutral, happy
        # None: every pair is in register (studio only) and items carry no flag, as before.
        self.registered = registered
        # composition, for the model card: studio pairs, their repeat count, wild pairs
        self.studio, self.studio_repeat, self.wild = len(neutral), 1, 0
        self.luminance = luminance
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    @property
    def pairs(self) -> int:
        return len(self.neutral)

    def __len__(self) -> int:
        return self.pairs * (self.augment.copies if self.augment is not None else 1)

    def _tensor(self, img: np.ndarray) -> torch.Tensor:
        if self.luminance:
            return torch.from_numpy((luminance(img) / 255.0)[None].astype(np.float32))
        return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float() / 255.0

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        i = index % self.pairs
        neutral, happy = np.asarray(self.neutral[i]), np.asarray(self.happy[i])
        a = self.augment
        if a is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            s = neutral.shape[0]
            zoom = 1.0 + rng.uniform(-a.zoom, a.zoom) if a.zoom > 0 else 1.0
            flip = a.flip and rng.random() < 0.5
            out = []
            for img in (neutral, happy):
                dx, dy, ds = rng.normal(0.0, a.shift_sigma * s, size=3) if a.shift_sigma > 0 else (0.0, 0.0, 0.0)
                img = recrop(img, float(dx), float(dy), float(ds), zoom)
                out.append(np.ascontiguousarray(img[:, ::-1]) if flip else img)
            neutral, happy = out
        item = {
            "lr": self._tensor(bicubic_down(neutral, 2)),
            "hr": self._tensor(happy),
            "lr_target": self._tensor(bicubic_down(happy, 2)),
            "hr_neutral": self._tensor(neutral),
        }
        if self.registered is not None:
            item["registered"] = torch.tensor(float(self.registered[i]))
        return item


def training_pairs(root: str | Path | None = None) -> tuple[list, list]:
    """(train, validation) neutral -> happy pairs of the smile task's training subjects."""
    pairs = task_pairs("smile", root).train
    val = [p for p in pairs if p.neutral.dataset == "rafd_subset" and p.subject in VAL_SUBJECTS]
    train = [p for p in pairs if p not in val]
    if not train or not val:
        raise SmileDataError(f"the smile split gave {len(train)} training and {len(val)} validation pairs")
    return train, val


def pair_crops(pairs: list, hr_size: int, cache_root: str | Path | None = None,
               progress: bool = True, template: str = "expression") -> tuple[np.ndarray, np.ndarray, int]:
    """(neutral, happy) uint8 crops of ``pairs`` at ``hr_size`` aligned by ``template``, and the
    number of pairs dropped because no face was found in one of their images."""
    records = list(dict.fromkeys([p.neutral for p in pairs] + [p.target for p in pairs]))
    crops = aligned_crops(records, hr_size, template, cache_root=cache_root, progress=progress)
    row = {k: i for i, k in enumerate(crops.keys)}
    keep = [p for p in pairs if p.neutral.key in row and p.target.key in row]
    if not keep:
        raise SmileDataError("no pair has a face found in both images")
    neutral = np.stack([crops.images[row[p.neutral.key]] for p in keep])
    happy = np.stack([crops.images[row[p.target.key]] for p in keep])
    return neutral, happy, len(pairs) - len(keep)


def same_person(neutral: np.ndarray, happy: np.ndarray, template: str, threshold: float = SAME_PERSON_COSINE,
                batch: int = 64) -> np.ndarray:
    """Boolean mask of the pairs whose two crops SFace verifies as one person (cosine of the
    embeddings >= ``threshold``): drops pairs where the detector took a bystander in one photo,
    or where pose, light or age make the two photos too different to learn a smile from."""
    keep = []
    with torch.no_grad():
        for i in range(0, len(neutral), batch):
            a, b = (torch.from_numpy(np.ascontiguousarray(x[i:i + batch].transpose(0, 3, 1, 2))).float() / 255.0
                    for x in (neutral, happy))
            cos = (identity.sface_embed(a, template, "[0, 1]") * identity.sface_embed(b, template, "[0, 1]")).sum(1)
            keep.append(cos.numpy() >= threshold)
    return np.concatenate(keep) if keep else np.zeros(0, bool)


def cached_same_person(neutral: np.ndarray, happy: np.ndarray, template: str,
                       cache_root: str | Path | None = None) -> np.ndarray:
    """:func:`same_person`, kept beside the aligned-crop cache under a hash of the crops, the
    template and the threshold (SFace takes minutes over thousands of pairs on a CPU)."""
    h = hashlib.sha256(f"{template}|{SAME_PERSON_COSINE}|{neutral.shape}".encode())
    h.update(neutral.tobytes())
    h.update(happy.tobytes())
    path = (Path(cache_root) if cache_root is not None else default_cache_root()) / f"same-person-{h.hexdigest()[:16]}.npz"
    cached = load_npz(path)  # None when absent or damaged
    if cached is not None and cached.get("mask", np.zeros(0)).shape == (len(neutral),) and cached["mask"].dtype == bool:
        return cached["mask"]
    mask = same_person(neutral, happy, template)
    save_npz(path, mask=mask)
    return mask


def studio_repeat(studio: int, wild: int, share: float = STUDIO_SHARE) -> int:
    """How many times each studio pair is repeated so that studio items make about ``share`` of
    ``studio * repeat + wild`` (at least once)."""
    if studio < 1 or wild < 0 or not 0 < share < 1:
        raise SmileDataError(f"need studio >= 1, wild >= 0 and 0 < share < 1; got {studio}, {wild}, {share}")
    return max(1, round(share / (1 - share) * wild / studio))


def datasets(hr_size: int, luminance: bool, root: str | Path | None = None, cache_root: str | Path | None = None,
             augment: SmileAugment | None = SmileAugment(), seed: int = 0, progress: bool = True,
             template: str = "expression", wild: bool = False) -> tuple[SmilePairs, SmilePairs]:
    """(train, validation) :class:`SmilePairs` for a model with output size ``hr_size``; with
    ``wild``, the LFW pairs join the studio ones (see the module docstring)."""
    train_pairs, val_pairs = training_pairs(root)
    tn, th, _ = pair_crops(train_pairs, hr_size, cache_root, progress, template)
    vn, vh, _ = pair_crops(val_pairs, hr_size, cache_root, progress, template)
    val = SmilePairs(vn, vh, luminance, None)
    if not wild:
        return SmilePairs(tn, th, luminance, augment, seed=seed), val
    wn, wh, _ = pair_crops(wild_train_pairs("happy", root), hr_size, cache_root, progress, template)
    same = cached_same_person(wn, wh, template, cache_root)
    wn, wh = wn[same], wh[same]
    repeat = studio_repeat(len(tn), len(wn))
    neutral = np.concatenate([np.repeat(tn, repeat, axis=0), wn])
    happy = np.concatenate([np.repeat(th, repeat, axis=0), wh])
    registered = np.concatenate([np.ones(len(tn) * repeat), np.zeros(len(wn))]).astype(np.float32)
    train = SmilePairs(neutral, happy, luminance, augment, seed=seed, registered=registered)
    train.studio, train.studio_repeat, train.wild = len(tn), repeat, len(wn)
    return train, val


def data_description(train: SmilePairs, val: SmilePairs) -> str:
    """One line for the model card."""
    a = train.augment
    copies = a.copies if a is not None else 1
    pairs = f"{train.studio} neutral -> happy pairs (JAFFE + RaFD training subjects of the smile split)"
    if train.wild:
        pairs = (f"{pairs}, each repeated {train.studio_repeat} times, and {train.wild} LFW neutral -> happy pairs "
                 f"(two photos of one person, at most {PAIRS_PER_IDENTITY} per person, none of the "
                 f"{len(LFW_TEST_IDENTITIES)} held-out LFW identities; kept when SFace verifies the two crops as one "
                 f"person, cosine >= {SAME_PERSON_COSINE})")
    return (f"{pairs} x {copies} augmented copies per epoch; validation: {val.pairs} pairs of RaFD subjects "
            f"{', '.join(VAL_SUBJECTS)}; never the held-out test subjects")
