"""The five papers behind the models: one table, read by the app, the model cards and the docs.

What each paper ships is not written here: :func:`facegen.registry.paper_models` reads it from the
registry.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Paper:
    number: str  # the seed file number ("002")
    authors: str  # short form for labels ("He et al.")
    citation: str  # authors, title, venue and year as the paper gives them


PAPERS: dict[str, Paper] = {
    p.number: p
    for p in (
        Paper("000", "Hanano et al.", "Hanano, Seo, Chen: Generation of High-Resolution Facial Expression Images Using "
              "a Super-Resolution Technique and Self-Supervised Guidance (2023)"),
        Paper("001", "Nimitha et al.", "Nimitha U. et al.: Enhancing Facial Expression Synthesis through GAN with "
              "Multi-Scale Dilated Feature Extraction and Edge-Enhanced Facial Features"),
        Paper("002", "He et al.", "He, Zheng, Shen, Guo, Zhou: Facial Image Synthesis and Super-Resolution With "
              "Stacked Generative Adversarial Network (Neurocomputing 2020, doi:10.1016/j.neucom.2020.03.107)"),
        Paper("003", "Jiang et al.", "Jiang, Xu, Sun: Image super resolution of Human face images using GAN"),
        Paper("004", "Li et al.", "Li, Qi, Sun: Facial Landmarks and Expression Label Guided Photorealistic Facial "
              "Expression Synthesis (IEEE Access 9, 2021, doi:10.1109/ACCESS.2021.3072057)"),
    )
}

#: Works that a model here reproduces as a seed paper's baseline (not seed papers themselves): model id -> citation.
BASELINES: dict[str, str] = {
    "exprgan": "Ding, Sricharan, Chellappa: ExprGAN: Facial Expression Editing with Controllable Expression "
    "Intensity, AAAI 2018",
}


def model_citation(model_id: str, paper: str) -> str:
    """The paper a model card cites: seed paper ``paper`` (the model's registry entry names it), or the
    model's own source where the model is that paper's baseline (:data:`BASELINES`)."""
    if model_id in BASELINES:
        return f"{BASELINES[model_id]} (the baseline of paper {paper})"
    return PAPERS[paper].citation
