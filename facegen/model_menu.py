"""The models the app offers for a task: those that can run here, their names for people, and which
of them the expression intensity visibly changes. Read from facegen.registry and facegen.papers."""

from __future__ import annotations

import re

from facegen import papers, registry


def runnable(task_id: str) -> list[str]:
    """Ids of the task's models that can run here (optional third-party files installed), registry order."""
    return [s.id for s in registry.models_for(task_id) if registry.unavailable(s) is None]


def model_name(model_id: str) -> str:
    """A person's name for a model: what it is and whose paper, e.g. "Stacked GAN – He et al."."""
    spec = registry.get(model_id)
    name = re.sub(r"\s*\([^)]*\)$", "", spec.title)
    authors = papers.PAPERS[spec.paper].authors if spec.paper in papers.PAPERS else ""
    return f"{name} – {authors}" if authors else name


def intensity_models(model_ids: list[str]) -> list[str]:
    """The models among ``model_ids`` whose output the intensity slider visibly changes."""
    return [m for m in model_ids if m in registry.REGISTRY and registry.get(m).intensity_control]
