"""Task protocol cards: each task's source papers' evaluation and every way ours differs.

A card states, per task, the protocol of the paper(s) whose models it scores (test set, sizes,
degradation, identity gallery/probe) and each difference from it, and the task's headline
metric (what "best model" means for it). The leaderboard prints the card beside the task's
table and every result JSON carries it (``task_protocol``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.jitter import DESCRIPTION as JITTER
from benchmarks.tasks import JITTER_FACES
from benchmarks.tasks import TASKS

_SR_PAPERS = (
    "Paper 002 (stackedgan): CelebA faces, bicubic LR, '16 to 64', '32 to 128' and '64 to 256'; PSNR/SSIM of the "
    "SR output against the ground truth; no identity or distribution metric.",
    "Paper 003 (psgan): 500 random FFHQ faces split 50/30/20 (150 test faces), 512 -> 1024 (2x), LR made by a "
    "7x7 Gaussian blur (sigma 5) and resize; PSNR on the validation faces.",
)


@dataclass(frozen=True)
class Difference:
    aspect: str  # "test set" | "sizes" | "degradation" | "gallery/probe" | "metrics"
    paper: str  # what the paper did
    here: str  # what this benchmark does


@dataclass(frozen=True)
class ProtocolCard:
    task: str
    headline: str  # metric key that ranks the task's shipped models (the recommended model)
    papers: tuple[str, ...]  # the source papers' evaluation protocols, one line per paper
    differences: tuple[Difference, ...]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> list[str]:
        lines = [f"**Protocol.** Headline metric: `{self.headline}`. Source papers' evaluation:", ""]
        lines += [f"- {p}" for p in self.papers]
        lines += ["", "| differs in | paper | here |", "|---|---|---|"]
        lines += [f"| {d.aspect} | {d.paper} | {d.here} |" for d in self.differences]
        return lines + [""]


_ID_HERE = ("SFace identity of each output against its own ground truth (genuine) and against every other test "
            "subject's ground truth and 1,000 LFW distractors (impostors); TAR thresholds from those impostors")
_ID_DLIB_HERE = ("dlib's ResNet (no model trains with it) is the headline identity judge: each output against its own "
                 "ground truth (genuine) and against every other test subject's ground truth and 1,000 LFW distractors "
                 "(impostors), TAR thresholds from those impostors; SFace's columns follow the same protocol beside it "
                 "and are marked as a training loss of some models (facegen.deviations)")


def _sr(scale: int) -> ProtocolCard:
    size = 128 // scale
    return ProtocolCard(
        task=f"sr-x{scale}", headline="psnr_y", papers=_SR_PAPERS,
        differences=(
            Difference("test set", "002: CelebA faces (its own split); 003: 150 random FFHQ faces",
                       "the 1,000 HR faces of the FSRNet CelebA test set, each face its own identity"),
            Difference("sizes", "002: 16->64, 32->128, 64->256; 003: 512->1024 (2x)", f"{size} -> 128"),
            Difference("degradation", "002: bicubic; 003: 7x7 Gaussian blur (sigma 5) then resize",
                       "PIL bicubic down-sampling (antialiased) for every model, psgan included"),
            Difference("metrics", "PSNR (and 002: SSIM), colour space unstated",
                       "PSNR/SSIM on Y (BT.601) and RGB, LPIPS, FID/KID, identity (SFace; dlib's ResNet on the "
                       "first 100 faces as an independent judge), params, latency"),
            Difference("gallery/probe", "no identity evaluation", _ID_HERE),
        ),
    )


def _sr_jitter(scale: int) -> ProtocolCard:
    base = _sr(scale)
    return ProtocolCard(
        task=f"sr-x{scale}-jitter", headline=base.headline, papers=base.papers,
        differences=base.differences + (
            Difference("framing", "faces aligned as in training (no framing change is tested)",
                       f"{JITTER}; metrics over the whole crop, edge-padded where the moved face leaves it"),
            Difference("faces and columns", "(no such protocol)",
                       f"the first {JITTER_FACES} of the 1,000 faces; no FID/KID (biased on fewer than 1,000 images) and no dlib "
                       "judge (its 100 faces are the standard protocol's cross-check): "
                       "a robustness check of each row's gain and identity beside the standard protocol"),
        ),
    )


_PAPER_000 = ("Paper 000 (p2p-*): its own recorded neutral->smile video frames; test = one male and one female "
              "low-resolution neutral face not in training; PSNR and SSIM of the HR smile against the ground truth.")
_PAPER_000_TEST = "2 held-out subjects of its own video data (one image each)"

_OWN_CROP = ("a model trained on the tight 5-point crop (its config's template 'celeba') is given each face cut "
             "from its photo by that template, as in the app, and its change is pasted back into the task's crop "
             "inside the inner-face mask (benchmarks.frames), so every row is judged on the same crops")

CARDS: dict[str, ProtocolCard] = {
    **{f"sr-x{s}": _sr(s) for s in (2, 4, 8)},
    **{f"sr-x{s}-jitter": _sr_jitter(s) for s in (2, 4, 8)},
    "smile": ProtocolCard(
        task="smile", headline="expr_acc_domain",
        papers=(_PAPER_000,),
        differences=(
            Difference("test set", _PAPER_000_TEST,
                       "neutral->happy pairs of the held-out JAFFE and RaFD subjects (facegen.data.splits)"),
            Difference("sizes", "low-resolution neutral in, 2x smiling out (the paper's 256 px models)", "64 -> 128"),
            Difference("crop", "a square of 6.4 times the eye distance (the face about 40 % of its width)",
                       "the 5-point 'celeba' template (the face fills the crop), the crop the shipped models trained on"),
            Difference("degradation", "its low-resolution frames", "the aligned 128 px neutral face, PIL-bicubic down-sampled"),
            Difference("given inputs", "p2p-sge reads the HR neutral face (self-supervised guidance), as in the paper",
                       "p2p-sge is given the 128 px neutral face it was made from (privileged; marked on the leaderboard)"),
            Difference("metrics", "PSNR, SSIM",
                       "also LPIPS, FID/KID, two expression judges, identity (dlib headline, SFace), params, latency"),
            Difference("gallery/probe", "no identity evaluation", _ID_DLIB_HERE),
        ),
    ),
    "smile-wild": ProtocolCard(
        task="smile-wild", headline="expr_acc_fer",
        papers=(_PAPER_000,),
        differences=(
            Difference("test set", _PAPER_000_TEST,
                       "in-the-wild photos: the neutral LFW photos (the first 3 of each, 301 photos) of the 159 held-out LFW identities "
                       "(facegen.data.wild.LFW_TEST_IDENTITIES), which no smile model trains on"),
            Difference("sizes", "low-resolution neutral in, 2x smiling out (the paper's 256 px models)",
                       "as the smile task: aligned with its template at its output size, input at its input size"),
            Difference("degradation", "its low-resolution frames",
                       "the aligned neutral photo, PIL-bicubic down-sampled (as the smile task)"),
            Difference("given inputs", "p2p-sge reads the HR neutral face (self-supervised guidance), as in the paper",
                       "p2p-sge is given the aligned neutral photo the input was made from (privileged; marked)"),
            Difference("ground truth", "the person's real smile",
                       "none exists: no PSNR/SSIM/LPIPS and no `real` row; the `identity` row (the input "
                       "up-sampled) is the reference"),
            Difference("metrics", "PSNR, SSIM",
                       "happy accuracy by the FER2013 and in-domain judges (headline: FER2013, which has never seen "
                       "these photos; the in-domain judge trained on all lfw_expressions photos, these people's "
                       "included, never on outputs), identity to the input face (dlib headline, SFace beside it), FID/KID against the "
                       "real happy LFW photos of the test identities, the face box's change of light against the "
                       "input's neutral photo (grey levels), params, latency"),
            Difference("gallery/probe", "no identity evaluation",
                       "genuine = each output against the aligned neutral photo its input was made from; impostors = "
                       "every other test identity's neutral photos and the 1,000 LFW distractors less those of the "
                       "test identities (a photo of the same person would be a false impostor); TAR thresholds from "
                       "those impostors; dlib headline, SFace (a training loss of some models) beside it"),
        ),
    ),
    "expression": ProtocolCard(
        task="expression", headline="expr_acc_domain",
        papers=("Paper 001 (exprgan*): Oulu-CASIA, 90/10 split (144 test images; 6 test persons x 6 expressions shown); "
                "CNN expression classifier, PCA (eigenface) recognition, Inception FID.",
                "Paper 004 (lmk-guided*): CK+ (PSNR, SSIM, FID) and Oulu-CASIA (expression recognition with generated "
                "images as augmentation); identity preserved judged against a gallery of non-transformed images; the "
                "generator is given the target's landmarks."),
        differences=(
            Difference("test set", "001: Oulu-CASIA 10 %; 004: CK+ and Oulu-CASIA",
                       "neutral->expression pairs of the held-out JAFFE and RaFD subjects (facegen.data.splits)"),
            Difference("sizes", "001: 128 px; 004: 128 px crops", "128 -> 128, aligned with the 'expression' template; "
                       + _OWN_CROP),
            Difference("degradation", "none", "none"),
            Difference("gallery/probe", "004: gallery of the non-transformed (neutral) images",
                       _ID_DLIB_HERE + "; the gallery holds the ground-truth targets, not the neutral inputs"),
            Difference("given inputs", "004: the target's landmarks (from the target image)",
                       "the headline rows get the target label only, as in the app: lmk-guided* fit their stored "
                       "expression template to the landmarks found on the input face; each lmk-guided* model is "
                       "scored a second time given the ground-truth target's 68 dlib landmarks (the paper's protocol; "
                       "privileged, marked)"),
            Difference("metrics", "001: its CNN classifier, PCA k=10, Inception FID; 004: PSNR/SSIM/FID",
                       "FER2013 and in-domain judges, eigenface k=10, FID on AlexNet-224 features offline, identity "
                       "(dlib headline, SFace)"),
        ),
    ),
    "expression-wild": ProtocolCard(
        task="expression-wild", headline="expr_acc_fer",
        papers=("Paper 001 (exprgan*): Oulu-CASIA, 90/10 split; CNN expression classifier, PCA recognition, Inception FID.",
                "Paper 004 (lmk-guided*): CK+ and Oulu-CASIA; the generator is given the target's landmarks."),
        differences=(
            Difference("test set", "001: Oulu-CASIA 10 %; 004: CK+ and Oulu-CASIA (studio faces)",
                       "in-the-wild photos: the neutral LFW photos (the first 3 of each, 301 photos) of the 159 held-out "
                       "LFW identities (facegen.data.wild.LFW_TEST_IDENTITIES), each to each of the six basic "
                       "expressions; no expression model trains on these people"),
            Difference("sizes", "128 px", "as the expression task: aligned with its template, 128 -> 128; " + _OWN_CROP),
            Difference("degradation", "none", "none (LFW's own JPEG photos)"),
            Difference("given inputs", "004: the target's landmarks (from the target image)",
                       "the target label only, as in the app: lmk-guided* fit their stored expression template to the "
                       "landmarks found on the input face"),
            Difference("ground truth", "the person's real expression",
                       "none exists: no PSNR/SSIM/LPIPS and no `real` row; the `identity` row (the input unchanged) is "
                       "the reference"),
            Difference("metrics", "001: its CNN classifier, PCA recognition, Inception FID; 004: PSNR/SSIM/FID",
                       "accuracy of the FER2013 and in-domain judges against the requested expression, per expression "
                       "in the result's expression_detail (headline: FER2013, which has never seen these photos; the "
                       "in-domain judge trained on all lfw_expressions photos, these people's included, never on "
                       "outputs), identity to the input face (dlib headline, SFace beside it), FID/KID against the real "
                       "non-neutral LFW photos of the test identities (mostly happy: LFW has few of the others), "
                       "params, latency"),
            Difference("gallery/probe", "004: gallery of the non-transformed (neutral) images",
                       "genuine = each output against the aligned neutral photo it was made from; impostors = every "
                       "other test identity's neutral photos and the 1,000 LFW distractors less those of the test "
                       "identities; TAR thresholds from those impostors; dlib headline, SFace beside it"),
        ),
    ),
}


def headline(task_id: str) -> str:
    """The task's headline metric: its card's, else the task's first metric."""
    c = CARDS.get(task_id)
    return c.headline if c is not None else TASKS[task_id].metrics[0].key


def card(task_id: str) -> ProtocolCard:
    """The protocol card of ``task_id``; a task without one is an error (every task must state it)."""
    if task_id not in TASKS:
        raise KeyError(f"unknown task {task_id!r}; known: {sorted(TASKS)}")
    try:
        return CARDS[task_id]
    except KeyError:
        raise KeyError(f"task {task_id!r} has no protocol card in benchmarks.protocols.CARDS") from None
