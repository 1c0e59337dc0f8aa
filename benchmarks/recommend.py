"""The model a person should see first: the best shipped model of a task on the leaderboard."""

from __future__ import annotations

from pathlib import Path

from benchmarks.leaderboard import read_results

# The metric that ranks each task's models for the app's default choice: what a person asks of it
# first (PSNR for super-resolution; keeping the person for the smile; the target expression,
# judged in-domain, for the expression task), and whether higher is better.
HEADLINE: dict[str, tuple[str, bool]] = {
    "sr-x2": ("psnr_y", True),
    "sr-x4": ("psnr_y", True),
    "sr-x8": ("psnr_y", True),
    "smile": ("tar_far1", True),
    "expression": ("expr_acc_domain", True),
}


def best_model(results_dir: Path, task_id: str, candidates: list[str]) -> str | None:
    """The candidate with the best headline metric in ``results_dir`` (None without results).

    Ties go to the earlier candidate (registry order). Reference rows are never candidates.
    """
    if task_id not in HEADLINE:
        return None
    key, higher = HEADLINE[task_id]
    scored = {r["model"]: r["metrics"].get(key) for r in read_results(results_dir)
              if r.get("task") == task_id and r.get("kind") == "model"}
    ranked = [(scored[m], i, m) for i, m in enumerate(candidates) if isinstance(scored.get(m), (int, float))]
    if not ranked:
        return None
    return min(ranked, key=lambda t: ((-t[0] if higher else t[0]), t[1]))[2]
