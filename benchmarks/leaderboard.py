"""Result files and the leaderboard built from them.

One JSON per (task, model) under ``benchmarks/results/<task>/<model>.json``, written atomically by
``benchmarks.run``; ``leaderboard.csv`` and ``leaderboard.md`` are regenerated from those files
alone, so the table always matches what was measured.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import protocols
from benchmarks.tasks import TASKS
from facegen import registry
from facegen.io import atomic_write_bytes

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
REFERENCE_ROWS = ("identity", "real")  # input returned unchanged (up-sampled) / the ground truth
ID_COLUMNS = ("task", "model", "paper", "kind", "given", "n")
PRIVILEGED_MARK = "†"  # rows given inputs taken from the ground truth (see the "given" column)


#: What a result depends on (code, checkpoints, data lists, pins): a tracked change or an untracked
#: (not git-ignored) file here marks a run ``-dirty``. Excluded by design: the result files the run
#: writes and the model cards (prose; `python -m benchmarks.cards` rewrites their benchmark section).
DEPENDS_ON = ("facegen", "benchmarks", "checkpoints", "pyproject.toml", "requirements.txt",
              "requirements-assets.txt", "overrides.txt")
NOT_DEPENDED_ON = ("benchmarks/results", "checkpoints/*/README.md")


def git_commit(repo: Path = REPO) -> str:
    """The checkout's commit, with ``-dirty`` when a tracked or untracked file the results depend on
    (:data:`DEPENDS_ON`) differs from it; ``unknown`` outside a git checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        spec = [*DEPENDS_ON, *(f":(exclude,glob){p}" + ("/**" if "*" not in p else "") for p in NOT_DEPENDED_ON)]
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", *spec],
                               cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def result_path(task: str, model: str, root: Path = RESULTS_DIR, variant: str = "") -> Path:
    """``task/model.json``; a model's row under its paper's protocol (``variant`` "paper") is ``task/model@paper.json``."""
    return root / task / (f"{model}@{variant}.json" if variant else f"{model}.json")


def write_result(result: dict[str, Any], root: Path = RESULTS_DIR) -> Path:
    """Write one result JSON atomically (readers see the old file or the new one, never half)."""
    path = result_path(result["task"], result["model"], root, result.get("variant", ""))
    atomic_write_bytes(path, (json.dumps(result, indent=2, sort_keys=True, allow_nan=False) + "\n").encode())
    return path


def read_results(root: Path = RESULTS_DIR) -> list[dict[str, Any]]:
    """Every result file under ``root``, task by task in TASKS order; unreadable files are skipped."""
    out = []
    for task in TASKS:
        folder = root / task
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            try:
                out.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, json.JSONDecodeError):
                continue
    return out


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        text = f"{value:.4f}"
        # A value that rounds to zero is shown as 0 whatever its sign (e.g. FID of the `real` row,
        # 0 up to float rounding); the JSON files keep the exact number.
        return "0.0000" if text == "-0.0000" else text
    return str(value)


def given_of(result: dict[str, Any]) -> str:
    """The row's "given" cell from its result (``none``, or the privileged inputs it saw)."""
    if "given" in result:
        return registry.given_label(result["given"])
    spec = registry.REGISTRY.get(result.get("model", ""))  # results written before inputs were recorded
    return registry.given_label(spec.given) if spec is not None else "none"


def is_privileged(row: dict[str, Any]) -> bool:
    return row.get("given", "none") not in ("none", "")


def sort_rows(task_id: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Like with like: rows given no privileged input first, then privileged rows, then the reference
    rows; within each group by the task's headline metric, best first (rows without it last)."""
    headline = protocols.headline(task_id)
    higher = next((m.higher_is_better for m in TASKS[task_id].metrics if m.key == headline), True)

    def key(row: dict[str, Any]) -> tuple:
        group = 2 if row["kind"] == "reference" else (1 if is_privileged(row) else 0)
        v = row.get(headline)
        missing = v is None or (isinstance(v, float) and math.isnan(v))
        return group, missing, 0.0 if missing else (-v if higher else v), row["model"]

    return sorted(rows, key=key)


def leaderboard_rows(results: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Flatten results into (columns, rows): id columns, then every metric of TASKS in order."""
    metric_cols: list[str] = []
    for task in TASKS.values():
        for m in task.metrics:
            if m.key not in metric_cols:
                metric_cols.append(m.key)
    rows = []
    for r in results:
        row = {"task": r["task"], "model": r["model"], "paper": r.get("paper") or "",
               "kind": r.get("kind", ""), "given": given_of(r), "n": r.get("n", "")}
        for key in metric_cols:
            row[key] = r.get("metrics", {}).get(key)
        rows.append(row)
    rows = [r for task in TASKS for r in sort_rows(task, [r for r in rows if r["task"] == task])]
    used = [c for c in metric_cols if any(row[c] is not None for row in rows)]
    return list(ID_COLUMNS) + used, rows


def calibration_markdown(root: Path = RESULTS_DIR) -> list[str]:
    """Lines of the judges' calibration section: LFW verification of the identity encoders
    (``calibration/lfw-*.json``) and the expression judges on each task's real test images."""
    lines: list[str] = []
    lfw_rows = []
    for path in sorted((root / "calibration").glob("lfw-*.json")):
        try:
            r = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        lfw_rows.append(f"| {r['encoder']} | {r['n_pairs']} | {100 * r['accuracy_mean']:.2f} ± {100 * r['accuracy_std']:.2f} "
                        f"| {100 * r['tar_at_far_1e-2']:.2f} | {100 * r['tar_at_far_1e-3']:.2f} | {r['auc']:.4f} |")
    expr_rows = []
    for task in TASKS:
        path = root / task / "real.json"
        if not path.is_file():  # a wild task: the judges on its real reference photos, in the identity row
            path = root / task / "identity.json"
        if not path.is_file():
            continue
        try:
            cal = json.loads(path.read_text(encoding="utf-8")).get("calibration")
        except (OSError, json.JSONDecodeError):
            continue
        for judge in ("fer2013", "domain"):
            if not cal or judge not in cal:
                continue
            c = cal[judge]
            per = ", ".join(f"{d} {v['accuracy']:.1f}" for d, v in c["per_dataset"].items())
            cls = ", ".join(f"{k} {v['accuracy']:.0f} ({v['n']})" for k, v in c["per_class"].items())
            expr_rows.append(f"| {task} | {judge} | {c['n']} | {c['accuracy']:.1f} | {per} | {cls} |")
    if lfw_rows or expr_rows:
        lines += ["## Judge calibration", ""]
    if lfw_rows:
        lines += ["Identity encoders, LFW verification (`calibration/lfw-*.json`, 10-fold accuracy):", "",
                  "| encoder | pairs | accuracy (%) | TAR@FAR 1% | TAR@FAR 0.1% | AUC |", "|---|---|---|---|---|---|",
                  *lfw_rows, ""]
    if expr_rows:
        lines += ["Expression judges on the real test images (the `real` row's ceiling; the wild tasks, which have "
                  "no ground truth: on the real photos of the expressions of their held-out people, which the in-domain "
                  "judge trained on; accuracy %, per class with its number of images):", "",
                  "| task | judge | n | accuracy | per dataset | per class (n) |", "|---|---|---|---|---|---|",
                  *expr_rows, ""]
    return lines


@dataclass(frozen=True)
class PaperTable:
    """A paper's comparison table measured here: each listed model against ``base`` on ``task``
    (differences in brackets), beside the paper's own numbers.

    ``metrics``: (result key, column title, index into the paper's values or None for a column
    the paper does not report); ``paper``: model id -> the paper's values, in the paper's row order.
    ``order``: when set, the paper's row order is its ranking by the first metric, worst first, and
    a line under the table gives the order measured here (``higher_better`` says which way).
    ``given``: the rows of that "given" cell only (a paper's own protocol, e.g. ``target landmarks``);
    None: every row of the listed models.
    """

    heading: str
    note: str
    task: str
    base: str
    metrics: tuple[tuple[str, str, int | None], ...]
    paper: dict[str, tuple[Any, ...]]
    order: bool = False
    higher_better: bool = True
    given: str | None = None


_ACC = ("expr_acc_domain", "Expression acc., in-domain judge (%)")
_FID = ("fid_alexnet224", "FID (AlexNet-224 fallback)")
_TAR = ("tar_far1", "TAR@FAR 1% (%)")

PAPER_TABLES = (
    # Paper 000's Table II: PSNR and SSIM (male / female test face) of the five methods, the paper's
    # ranking from worst to best.
    PaperTable(
        heading="Paper 000, Table II, measured here",
        note="The five methods against the proposed `p2p-sge` on the `smile` test set; the paper's columns are its "
             "own PSNR and SSIM (male / female test face, its own video data), so compare the order, not the values. "
             "`p2p-sge` is given the 128 px neutral face (privileged, as in the paper). The identity and expression "
             "columns are not in the paper.",
        task="smile", base="p2p-sge",
        metrics=(("psnr_y", "PSNR (Y) (dB)", 0), ("ssim_y", "SSIM (Y)", 1),
                 ("expr_acc_fer", "Happy acc., FER2013 judge (%)", None),
                 ("tar_far1_dlib", "TAR@FAR 1%, dlib judge (%)", None)),
        paper={"p2p-bilinear": ("23.79 / 25.81", "0.809 / 0.851"),
               "p2p-two-step": ("23.93 / 25.84", "0.814 / 0.853"),
               "p2p-serial": ("24.39 / 26.17", "0.820 / 0.858"),
               "p2p-parallel": ("24.68 / 26.41", "0.822 / 0.862"),
               "p2p-sge": ("24.93 / 26.69", "0.832 / 0.869")},
        order=True,
    ),
    # Residual outputs of the wild preset (not in the paper): the ablation without them.
    PaperTable(
        heading="Residual outputs (a departure from paper 000), measured here",
        note="`p2p-parallel` (residual outputs over the resized input) against the same recipe without them "
             "(`p2p-parallel-no-residual`, the networks output the image as in the paper), on the `smile` test set.",
        task="smile", base="p2p-parallel",
        metrics=(("psnr_y", "PSNR (Y) (dB)", None), ("lpips_alex", "LPIPS (AlexNet)", None),
                 ("expr_acc_fer", "Happy acc., FER2013 judge (%)", None),
                 ("expr_acc_domain", "Happy acc., in-domain judge (%)", None),
                 ("tar_far1_dlib", "TAR@FAR 1%, dlib judge (%)", None)),
        paper={"p2p-parallel-no-residual": (), "p2p-parallel": ()},
    ),
    # Paper 001's Table I (ExprGAN, the model without unsharp masking, the proposed model): CNN
    # expression-classifier accuracy (%), PCA recognition accuracy (%) and the eigenfaces it needed, FID.
    PaperTable(
        heading="Paper 001, Table I, measured here",
        note="Each model of the ExprGAN family against `exprgan` on the `expression` test set; the paper's columns "
             "are its own numbers (its CNN classifier, PCA recognition and Inception FID on Oulu-CASIA-like data), "
             "so compare directions, not values; our FID uses the AlexNet-224 fallback features.",
        task="expression", base="exprgan",
        metrics=((*_ACC, 0), ("eigenface_acc", "Eigenface recognition, k=10 (%)", 1), (*_FID, 2), (*_TAR, None)),
        paper={"exprgan": (91.0, "96 (10 eigenfaces and above)", 91.32),
               "exprgan-msd-no-unsharp": (94.0, "100 (14 eigenfaces)", 84.73),
               "exprgan-msd": (97.0, "100 (10 eigenfaces)", 79.10)},
    ),
    # Paper 004's Table 7 (module ablations): FID on its test set.
    PaperTable(
        heading="Paper 004, Table 7, measured here",
        note="The two ablations of `lmk-guided` against the full model on the `expression` test set, each given "
             "the ground-truth target's landmarks as in the paper; the paper's column is its own Inception FID, so "
             "compare directions, not values; our FID uses the AlexNet-224 fallback features. The full model ships "
             "the `wild` recipe (studio and LFW pairs, residual output) and the two ablations the `lite` recipe "
             "(studio pairs only), so each difference here mixes the ablated module with the recipe.",
        task="expression", base="lmk-guided", given="target landmarks",
        metrics=((*_FID, 0), (*_ACC, None), (*_TAR, None)),
        paper={"lmk-guided-no-feature-init": (76.85,), "lmk-guided-no-label": (69.48,), "lmk-guided": (67.69,)},
    ),
)


def _signed(value: float) -> str:
    return f"{value:+.2f}"


def paper_table_markdown(table: PaperTable, rows: list[dict[str, Any]]) -> list[str]:
    """``table`` drawn from the result rows of its task; empty without a ``base`` row and another."""
    found = {r["model"]: r for r in rows
             if r["task"] == table.task and r["model"] in table.paper
             and (table.given is None or r.get("given", "none") == table.given)}
    base = found.get(table.base)
    if base is None or len(found) < 2:
        return []
    head = ["model"]
    for _, title, i in table.metrics:
        head += [f"{title} (vs {table.base})"] + ([] if i is None else ["paper"])
    lines = [f"### {table.heading}", "", table.note, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for model, paper in table.paper.items():
        r = found.get(model)
        if r is None:
            continue
        cells = [model]
        for key, _, i in table.metrics:
            v, b = r.get(key), base.get(key)
            cells.append("" if v is None else _fmt(v) + ("" if model == table.base or b is None else f" ({_signed(v - b)})"))
            if i is not None:
                cells.append(str(paper[i]))
        lines.append("| " + " | ".join(cells) + " |")
    if table.order:
        key, title, _ = table.metrics[0]
        scored = [(m, found[m][key]) for m in table.paper if m in found and found[m].get(key) is not None]
        measured = sorted(scored, key=lambda mv: mv[1] if table.higher_better else -mv[1])
        lines += ["", f"Order by {title}, worst first: the paper {' < '.join(table.paper)}; "
                      f"measured here {' < '.join(m for m, _ in measured)}."]
    return lines + [""]


def task_markdown(task_id: str, task_rows: list[dict[str, Any]]) -> list[str]:
    """One task's section: title, protocol card, table (given column, privileged rows marked), paper tables."""
    if not task_rows:
        return []
    task = TASKS[task_id]
    cols = ["model", "given", "n"] + [m.key for m in task.metrics if any(r.get(m.key) is not None for r in task_rows)]
    titles = {m.key: m.header for m in task.metrics}
    md = [f"## {task.id}: {task.title}", ""]
    if task_id in protocols.CARDS:
        md += protocols.CARDS[task_id].markdown()
    md += ["| " + " | ".join(titles.get(c, c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in task_rows:
        name = f"*{r['model']}* (reference)" if r["kind"] == "reference" else r["model"]
        name += f" {PRIVILEGED_MARK}" if is_privileged(r) else ""
        md.append("| " + " | ".join([name] + [_fmt(r.get(c)) for c in cols[1:]]) + " |")
    md.append("")
    for table in PAPER_TABLES:
        if table.task == task.id:
            md += paper_table_markdown(table, task_rows)
    return md


def deviations_markdown(results: list[dict[str, Any]]) -> list[str]:
    """The deviations view: each model's departures from its paper, as recorded in its results."""
    seen: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        if r.get("deviations") and r["model"] not in seen:
            seen[r["model"]] = r["deviations"]
    if not seen:
        return []
    md = ["## Deviations from the papers", "",
          "Per model (facegen.deviations; the model cards carry the same table):", ""]
    for model, devs in seen.items():
        md += [f"### {model}", "", "| area | paper | here |", "|---|---|---|"]
        md += [f"| {d['area']} | {d['paper']} | {d['here']} |" for d in devs] + [""]
    return md


def write_leaderboard(root: Path = RESULTS_DIR) -> tuple[Path, Path]:
    """Regenerate leaderboard.csv and leaderboard.md from the result files under ``root``."""
    columns, rows = leaderboard_rows(read_results(root))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _fmt(row.get(c)) for c in columns})
    csv_path = root / "leaderboard.csv"
    atomic_write_bytes(csv_path, buf.getvalue().encode())
    md = ["# facegen leaderboard", "",
          "Generated from the JSON files beside it by `python -m benchmarks.leaderboard` (and at the end of "
          "`python -m benchmarks.run`). Rows given no privileged input come first, sorted by the task's headline "
          f"metric; rows marked {PRIVILEGED_MARK} see inputs taken from the ground truth (the *given* column) and are "
          "ranked among themselves; reference rows come last.", ""]
    for task in TASKS.values():
        md += task_markdown(task.id, [r for r in rows if r["task"] == task.id])
    md += deviations_markdown(read_results(root))
    md += calibration_markdown(root)
    md_path = root / "leaderboard.md"
    atomic_write_bytes(md_path, "\n".join(md).encode())
    return csv_path, md_path


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.leaderboard [--results DIR]`: regenerate leaderboard.csv/.md from the JSON files."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.leaderboard", description=main.__doc__)
    p.add_argument("--results", type=Path, default=RESULTS_DIR, help="results folder (default: benchmarks/results)")
    args = p.parse_args(argv)
    if not args.results.is_dir():
        print(f"error: there is no results folder at {args.results}", file=sys.stderr)
        return 2
    for path in write_leaderboard(args.results):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
