"""The benchmark tasks as data: the single source of leaderboard tracks and columns (SPEC section 2).

Each :class:`Task` is the library's :class:`facegen.tasks.TaskShape` (sizes, template: the one
source of geometry) plus its test set and metric columns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from benchmarks.jitter import DESCRIPTION as JITTER
from facegen.tasks import SHAPES, TaskShape


@dataclass(frozen=True)
class Metric:
    key: str  # column name in results and leaderboard.csv
    title: str
    higher_is_better: bool
    unit: str = ""

    @property
    def header(self) -> str:
        """The column header everywhere tables show it: "title (unit) arrow", the arrow pointing the better way."""
        return self.title + (f" ({self.unit})" if self.unit else "") + (" ↑" if self.higher_is_better else " ↓")


@dataclass(frozen=True, kw_only=True)
class Task(TaskShape):
    title: str
    dataset: str  # dataset(s) as named under the data root
    split: str  # how the test set is chosen
    degradation: str  # how inputs are made from the ground truth
    metrics: tuple[Metric, ...]
    base: str | None = None  # the task whose registered models (and checkpoints) serve this one
    items: int | None = None  # only the first N items of the test set (None: all of them)
    ground_truth: bool = True  # False: no target image exists (no `real` row, no pixel metrics)


PSNR_Y = Metric("psnr_y", "PSNR (Y)", True, "dB")
SSIM_Y = Metric("ssim_y", "SSIM (Y)", True)
PSNR_RGB = Metric("psnr_rgb", "PSNR (RGB)", True, "dB")
SSIM_RGB = Metric("ssim_rgb", "SSIM (RGB)", True)
LPIPS = Metric("lpips_alex", "LPIPS (AlexNet)", False)
FID_INCEPTION = Metric("fid_inception", "FID (Inception)", False)
KID_INCEPTION = Metric("kid_inception", "KID (Inception)", False)
# The fallback when Inception's weights cannot be had (benchmarks.perceptual.alexnet_backbone:
# AlexNet ImageNet conv5 features at 224x224, pooled): its own columns, never mixed with Inception's.
FID_ALEX = Metric("fid_alexnet224", "FID (AlexNet-224 fallback)", False)
KID_ALEX = Metric("kid_alexnet224", "KID (AlexNet-224 fallback)", False)
# SFace is the identity loss some models train with (facegen.deviations says which): its columns
# say so, and the dlib columns (a judge no model trains with) are the headline identity columns.
SFACE_NOTE = "SFace, a training loss"
ID_COS = Metric("id_cosine", f"Identity cosine ({SFACE_NOTE})", True)
# The independent identity judge beside SFace: dlib's ResNet. On the SR tasks it scores the first
# INDEPENDENT_ID_FACES faces (about 80 ms a face; all 1,000 per row would break the benchmark's time
# budget; standard error of the mean cosine difference of two rows over these 100 faces: about
# 0.001). On the expression tasks it scores every face, with the same verification protocol as
# SFace (dlib cosines of a kept face sit near 0.96: compare rows, not judges).
ID_COS_DLIB = Metric("id_cosine_dlib", "Identity cosine (dlib judge)", True)
INDEPENDENT_ID_FACES = 100
TAR_1 = Metric("tar_far1", f"TAR@FAR 1% ({SFACE_NOTE})", True, "%")
TAR_01 = Metric("tar_far01", f"TAR@FAR 0.1% ({SFACE_NOTE})", True, "%")
RANK1 = Metric("rank1", f"Rank-1 ({SFACE_NOTE})", True, "%")
TAR_1_DLIB = Metric("tar_far1_dlib", "TAR@FAR 1% (dlib judge)", True, "%")
TAR_01_DLIB = Metric("tar_far01_dlib", "TAR@FAR 0.1% (dlib judge)", True, "%")
RANK1_DLIB = Metric("rank1_dlib", "Rank-1 (dlib judge)", True, "%")
EXPR_FER = Metric("expr_acc_fer", "Expression acc. (FER2013 judge)", True, "%")
EXPR_DOMAIN = Metric("expr_acc_domain", "Expression acc. (in-domain judge)", True, "%")
EIGENFACE = Metric("eigenface_acc", "Eigenface recognition acc. (k=10)", True, "%")
PARAMS = Metric("params", "Parameters (inference)", False)
LATENCY = Metric("latency_ms", "Latency per face", False, "ms")
MACS = Metric("macs_per_face", "MACs per face", False)  # benchmarks.macs (conv/matmul, FlopCounterMode)

_SR_METRICS = (PSNR_Y, SSIM_Y, PSNR_RGB, SSIM_RGB, LPIPS, FID_INCEPTION, KID_INCEPTION, FID_ALEX, KID_ALEX,
               ID_COS, ID_COS_DLIB, TAR_1, TAR_01, PARAMS, LATENCY, MACS)
_EXPR_METRICS = (PSNR_Y, SSIM_Y, PSNR_RGB, SSIM_RGB, LPIPS, FID_INCEPTION, KID_INCEPTION, FID_ALEX, KID_ALEX,
                 EXPR_FER, EXPR_DOMAIN, ID_COS_DLIB, TAR_1_DLIB, TAR_01_DLIB, RANK1_DLIB,
                 ID_COS, TAR_1, TAR_01, RANK1, PARAMS, LATENCY, MACS)
# No ground-truth smile in the wild: no PSNR/SSIM/LPIPS; identity is judged against the input face.
_WILD_METRICS = (EXPR_FER, EXPR_DOMAIN, ID_COS_DLIB, TAR_1_DLIB, ID_COS, TAR_1,
                 FID_INCEPTION, KID_INCEPTION, FID_ALEX, KID_ALEX, PARAMS, LATENCY, MACS)


def _sr(scale: int) -> Task:
    shape = SHAPES[f"sr-x{scale}"]
    return Task(
        **asdict(shape),
        title=f"{scale}x face super-resolution ({shape.in_size} -> {shape.out_size})",
        dataset="celeba_fsrnet",
        split="all 1,000 HR faces of the FSRNet CelebA test set",
        degradation="PIL bicubic down-sampling (antialiased)",
        metrics=_SR_METRICS,
    )


#: Faces of the jitter protocols: the first 300 of the 1,000 (a robustness check beside the
#: standard protocol; the standard error of a row's mean PSNR gain over 300 faces is about 0.04 dB).
JITTER_FACES = 300
_DISTRIBUTION = {FID_INCEPTION.key, KID_INCEPTION.key, FID_ALEX.key, KID_ALEX.key}
_STANDARD_ONLY = _DISTRIBUTION | {ID_COS_DLIB.key}


def _sr_jitter(scale: int) -> Task:
    """The SR task under framing change (benchmarks.jitter): the first JITTER_FACES faces, the same
    models and metrics but FID/KID (biased on fewer than 1,000 images, and about the set, not the
    framing) and the dlib identity judge (its 100 faces are the standard protocol's cross-check)."""
    base = _sr(scale)
    return Task(
        **{**asdict(SHAPES[base.id]), "id": f"{base.id}-jitter"},
        title=f"{scale}x face super-resolution under framing change ({base.in_size} -> {base.out_size})",
        dataset=base.dataset,
        split=f"the first {JITTER_FACES} of the 1,000 HR faces of the FSRNet CelebA test set, each under {JITTER}",
        degradation=f"HR transformed first (benchmarks.jitter), then {base.degradation}",
        metrics=tuple(m for m in base.metrics if m.key not in _STANDARD_ONLY),
        base=base.id,
        items=JITTER_FACES,
    )


# The light of the face box against the reference face (smile-wild: the input's neutral photo): a
# smile opens the mouth and raises the cheeks, it does not make the face lighter or darker.
LIGHT = Metric("light_change", "Face light change", False, "grey levels")

# Each jitter task follows its standard task, so the leaderboard shows them side by side.
TASKS: dict[str, Task] = {
    "sr-x8": _sr(8),
    "sr-x8-jitter": _sr_jitter(8),
    "sr-x4": _sr(4),
    "sr-x4-jitter": _sr_jitter(4),
    "sr-x2": _sr(2),
    "sr-x2-jitter": _sr_jitter(2),
    "smile": Task(
        **asdict(SHAPES["smile"]),
        title="Neutral -> smiling at twice the resolution (64 -> 128)",
        dataset="jaffe+rafd_subset",
        split="neutral->happy pairs of held-out subjects",
        degradation="neutral face PIL-bicubic down-sampled to the input size",
        metrics=_EXPR_METRICS,
    ),
    "expression": Task(
        **asdict(SHAPES["expression"]),
        title="Neutral -> each basic expression (128 -> 128)",
        dataset="jaffe+rafd_subset",
        split="neutral->expression pairs of held-out subjects",
        degradation="none",
        metrics=_EXPR_METRICS + (EIGENFACE,),
    ),
    "smile-wild": Task(
        **{**asdict(SHAPES["smile"]), "id": "smile-wild"},
        title="Neutral -> smiling on in-the-wild photos, no ground truth (64 -> 128)",
        dataset="lfw_expressions",
        split="neutral LFW photos of the held-out identities (facegen.data.wild.wild_test_faces)",
        degradation="neutral face aligned as for smile, PIL-bicubic down-sampled to the input size",
        metrics=_WILD_METRICS + (LIGHT,),
        base="smile",
        ground_truth=False,
    ),
    "expression-wild": Task(
        **{**asdict(SHAPES["expression"]), "id": "expression-wild"},
        title="Neutral -> each basic expression on in-the-wild photos, no ground truth (128 -> 128)",
        dataset="lfw_expressions",
        split="neutral LFW photos of the held-out identities (facegen.data.wild.wild_test_faces), each to six expressions",
        degradation="none (neutral face aligned as for expression)",
        metrics=_WILD_METRICS,
        base="expression",
        ground_truth=False,
    ),
}


def get(task_id: str) -> Task:
    try:
        return TASKS[task_id]
    except KeyError:
        raise KeyError(f"unknown task {task_id!r}; known: {sorted(TASKS)}") from None
