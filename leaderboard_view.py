"""The app's Leaderboard and Models tabs (gradio), read from benchmarks/results; no metric is computed here.

``leaderboard_tab(results_dir, new_folder)`` and ``models_tab()`` are called by ``app.build_demo``;
``new_folder()`` gives a fresh per-request folder for CSV downloads. The plain functions
(``leaderboard_view``, ``scatter_data``, ``provenance``...) are what the events call and what the
tests check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import gradio as gr
import pandas as pd

from benchmarks import leaderboard, protocols
from benchmarks.recommend import recommended_model
from benchmarks.tasks import TASKS, Task
from facegen import deviations, registry

ID_TITLES = {"model": "model", "paper": "paper", "kind": "type", "given": "given", "n": "n"}
DEFAULT_ID = ("model", "given")  # shown by default; paper, type and n are behind the Columns control
MAX_DEFAULT_COLUMNS = 8  # id + metric columns shown before the reader asks for more
_PREFERRED = ("psnr_y", "expr_acc_domain", "expr_acc_fer", "ssim_y", "lpips_alex", "fid_inception", "fid_alexnet224",
              "id_cosine", "id_cosine_dlib", "tar_far1", "latency_ms")
# Tasks that dlib verifies (expression tasks): its columns are the headline identity columns, shown
# before the pixel and distribution metrics; SFace's (a training loss of some models) come after.
_PREFERRED_DLIB = ("expr_acc_domain", "expr_acc_fer", "id_cosine_dlib", "tar_far1_dlib", "light_change", "lpips_alex",
                   "fid_inception", "fid_alexnet224", "ssim_y", "id_cosine", "tar_far1", "latency_ms")
_SFACE = "OpenCV SFace, a training loss of some models (each model's deviations say which)"
_DLIB = "dlib ResNet (150 px chips at the reference face's 68 landmarks), which no model trains with"
NO_PAPER = "—"  # baselines and reference rows

#: metric key -> (what it measures, the judge or reference behind it). Direction comes from the task.
METRIC_HELP = {
    "psnr_y": ("pixel fidelity to the ground truth on luminance", "BT.601 Y, BasicSR convention"),
    "ssim_y": ("structural similarity to the ground truth on luminance", "11x11 Gaussian window, BasicSR"),
    "psnr_rgb": ("pixel fidelity to the ground truth on RGB", "BasicSR convention"),
    "ssim_rgb": ("structural similarity on RGB", "BasicSR convention"),
    "lpips_alex": ("perceptual distance to the ground truth", "LPIPS v0.1, AlexNet"),
    "fid_inception": ("distance between the output and real image distributions", "clean-fid Inception"),
    "kid_inception": ("unbiased distribution distance (small n)", "clean-fid Inception"),
    "fid_alexnet224": ("distribution distance (offline fallback; not comparable to Inception FID)", "AlexNet conv5 at 224 px"),
    "kid_alexnet224": ("unbiased distribution distance (offline fallback)", "AlexNet conv5 at 224 px"),
    "id_cosine": ("identity kept: cosine of the output's and the reference face's embeddings (the ground truth; "
                  "smile-wild: the input's neutral photo)", _SFACE),
    "id_cosine_dlib": ("identity kept: cosine of the output's and the reference face's embeddings (super-resolution: "
                       "first 100 faces)", _DLIB),
    "tar_far1": ("genuine pairs accepted at the threshold that lets 1 % of the task's impostors through", _SFACE),
    "tar_far01": ("as TAR@FAR 1 %, at 0.1 % of the task's impostors", _SFACE),
    "rank1": ("output identified as its subject among ground truths + 1,000 LFW faces", _SFACE),
    "tar_far1_dlib": ("genuine pairs accepted at the threshold that lets 1 % of the task's impostors through "
                      "(the headline identity column)", _DLIB),
    "tar_far01_dlib": ("as TAR@FAR 1 %, at 0.1 % of the task's impostors", _DLIB),
    "rank1_dlib": ("output identified as its subject among ground truths + 1,000 LFW faces", _DLIB),
    "expr_acc_fer": ("target expression recognised", "FER2013 mini-Xception judge"),
    "expr_acc_domain": ("target expression recognised", "judge trained on the task's own datasets"),
    "light_change": ("light of the face box made lighter or darker than the input face's: mean absolute change of its "
                     "4x4 block means (a smile moves detail, not light)", "full-range BT.601 luma, in grey levels"),
    "eigenface_acc": ("subject recognised by eigenfaces (paper 001's PCA test)", "k = 10 eigenfaces of the neutral faces"),
    "params": ("parameters of the network run at inference", "counted"),
    "latency_ms": ("median time per face at batch 1", "the benchmark machine (see provenance)"),
    "macs_per_face": ("multiply-accumulates for one face (convolutions and matrix products)",
                      "torch FlopCounterMode; none for the PIL bicubic baseline"),
}

PROVENANCE_FIELDS = ("model", "kind", "paper", "given", "given_label", "privileged_inputs", "dataset", "split", "n",
                     "limit", "judges", "identity_thresholds", "commit", "date", "hardware", "device", "checkpoint",
                     "protocol", "task_protocol", "deviations", "versions", "notes", "test_set_fingerprint")

REPRODUCE = """Every number in these tables was measured by the benchmark and is read from `benchmarks/results/`
(the app recomputes none of them). With the face data root in `FACEGEN_DATA`:

```
python -m benchmarks.run --task sr-x4          # one task: every registered model + the reference rows
python -m benchmarks.run                       # every task and the LFW calibration
python -m benchmarks.leaderboard               # leaderboard.csv/.md again from the JSON files alone
```"""

ROWS_EXPLAINED = f"""**Rows.** *identity* (reference) is the input returned unchanged (bicubically up-sampled where
the task enlarges): the floor a model must beat. *real* (reference) is the ground truth scored against itself: the
ceiling; its PSNR is infinite, so the cell is blank, and its SSIM/LPIPS/FID are the perfect values. Rows marked
{leaderboard.PRIVILEGED_MARK} are given inputs taken from the ground truth (the *given* column: the HR neutral face,
the target's landmarks); they follow the papers but are ranked among themselves, after the rows given nothing."""


def metric_title(task: Task, key: str) -> str:
    for m in task.metrics:
        if m.key == key:
            return m.header
    return key


def sface_trained(task_id: str) -> list[str]:
    """The registered models whose shipped checkpoint for the task (its base task) was trained with
    the SFace identity loss (``identity_weight`` > 0 in facegen.deviations' shipped options)."""
    served = TASKS[task_id].base or task_id
    out = []
    for spec in registry.models_for(served):
        try:
            options = deviations.shipped_options(spec.id, served)
        except KeyError:  # baselines: no training run
            continue
        if options.get("identity_weight", 0) > 0:
            out.append(spec.id)
    return out


def legend_markdown(task: Task) -> str:
    """What every metric column measures, which way is better and the judge behind it, and which of
    the task's models train with SFace (so that its columns cannot judge them alone)."""
    lines = ["| column | measures | better | judge |", "|---|---|---|---|"]
    for m in task.metrics:
        what, judge = METRIC_HELP.get(m.key, (m.title, ""))
        lines.append(f"| {metric_title(task, m.key)} | {what} | {'higher' if m.higher_is_better else 'lower'} | {judge} |")
    if any(m.key.startswith(("id_cosine", "tar_far")) for m in task.metrics):
        trained = sface_trained(task.id)
        lines += ["", "SFace identity loss in training on this task: "
                  + (", ".join(f"`{m}`" for m in trained) if trained else "no shipped model")
                  + " (facegen.deviations). dlib's ResNet judges every model independently."]
    return "\n".join(lines)


def read_leaderboard(results_dir: Path) -> pd.DataFrame:
    """leaderboard.csv as written by the benchmark (empty frame when there is none)."""
    path = results_dir / "leaderboard.csv"
    if not path.is_file():
        return pd.DataFrame(columns=list(leaderboard.ID_COLUMNS))
    df = pd.read_csv(path, dtype={"paper": str, "given": str})
    df["paper"] = df["paper"].fillna("")
    if "given" not in df.columns:  # a leaderboard written before the given inputs were recorded
        df.insert(list(df.columns).index("kind") + 1, "given",
                  [leaderboard.given_of({"model": m}) for m in df["model"]])
    df["given"] = df["given"].fillna("none")
    return df


def task_rows(results_dir: Path, task_id: str) -> pd.DataFrame:
    """The rows of one task, with the metric columns it has values for, keys as column names."""
    df = read_leaderboard(results_dir)
    df = df[df["task"] == task_id].drop(columns=["task"]).dropna(axis=1, how="all")
    return df.reset_index(drop=True)


def _paper_label(paper: str) -> str:
    return paper if paper else NO_PAPER


def default_columns(results_dir: Path, task_id: str) -> list[str]:
    """Display titles of the metric columns shown by default: the headline first, at most
    MAX_DEFAULT_COLUMNS columns in all with the default id columns."""
    task = TASKS[task_id]
    have = [k for k in task_rows(results_dir, task_id).columns if k not in ID_TITLES]
    head = protocols.headline(task_id)
    preferred = _PREFERRED_DLIB if any(m.key == "tar_far1_dlib" for m in task.metrics) else _PREFERRED
    order = [head] + [k for k in preferred if k != head] + [m.key for m in task.metrics]
    keys = list(dict.fromkeys(k for k in order if k in have))[:MAX_DEFAULT_COLUMNS - len(DEFAULT_ID)]
    return [metric_title(task, k) for k in keys]


def leaderboard_view(results_dir: Path, task_id: str, search: str = "", columns: list[str] | None = None,
                     papers: list[str] | None = None, kinds: list[str] | None = None) -> pd.DataFrame:
    """One task's table for people: filtered by model name, paper and type; chosen columns (display
    titles; id columns model, paper, type, given and n may be chosen too, model always shows);
    reference rows and rows given privileged inputs marked."""
    task = TASKS[task_id]
    df = task_rows(results_dir, task_id)
    if df.empty:
        return pd.DataFrame({"model": [], "note": []})
    if search:
        df = df[df["model"].str.contains(search, case=False, regex=False)]
    if papers is not None:
        df = df[[_paper_label(p) in papers for p in df["paper"]]]
    if kinds is not None:
        df = df[df["kind"].isin(kinds)]
    df = df.copy()
    mark = leaderboard.PRIVILEGED_MARK
    df["model"] = [f"{m} (reference)" if k == "reference" else (f"{m} {mark}" if g not in ("none", "") else m)
                   for m, k, g in zip(df["model"], df["kind"], df["given"].fillna("none"))]
    df["paper"] = [_paper_label(p) for p in df["paper"]]
    df = df.rename(columns={**ID_TITLES, **{c: metric_title(task, c) for c in df.columns if c not in ID_TITLES}})
    if columns is not None:
        df = df[[c for c in df.columns if c == "model" or c in columns]]
    return df.reset_index(drop=True)


def scatter_data(results_dir: Path, task_id: str, quality: str) -> pd.DataFrame:
    """model, type, latency and one quality metric of the rows that have both (one named point per model)."""
    df = task_rows(results_dir, task_id)
    if df.empty or quality not in df.columns or "latency_ms" not in df.columns:
        return pd.DataFrame({"model": [], "type": [], "latency_ms": [], "quality": []})
    out = pd.DataFrame({"model": df["model"], "type": df["kind"], "latency_ms": df["latency_ms"], "quality": df[quality]})
    return out.dropna().reset_index(drop=True)


def quality_metrics(results_dir: Path, task_id: str) -> list[str]:
    df = task_rows(results_dir, task_id)
    return [m.key for m in TASKS[task_id].metrics if m.key in df.columns and m.key not in ("params", "latency_ms", "macs_per_face")]


def default_quality(task_id: str, keys: list[str]) -> str | None:
    head = protocols.headline(task_id)
    return head if head in keys else (keys[0] if keys else None)


def provenance(results_dir: Path, task_id: str, model: str | None) -> dict:
    """Where one row comes from: data, n, given inputs, judges and TAR thresholds, deviations, commit,
    date, hardware (from its result JSON)."""
    if not model:
        return {}
    model = model.removesuffix(" (reference)").removesuffix(f" {leaderboard.PRIVILEGED_MARK}")
    path = leaderboard.result_path(task_id, model, results_dir)
    if not path.is_file():
        raise gr.Error(f"There is no result file for {model} on {task_id}.")
    data = json.loads(path.read_text(encoding="utf-8"))
    return {k: data[k] for k in PROVENANCE_FIELDS if k in data}


def csv_file(df: pd.DataFrame, name: str, folder: Path) -> str:
    path = folder / f"{name}.csv"
    df.to_csv(path, index=False)
    return str(path)


def _panel(results_dir: Path, task: Task, new_folder: Callable[[], Path]) -> None:
    slug = task.id.replace("-", "_")
    rows = task_rows(results_dir, task.id)
    if rows.empty:
        gr.Markdown(f"No results for {task.id} yet: run `python -m benchmarks.run --task {task.id}`.")
    all_columns = [ID_TITLES[c] for c in ("paper", "kind", "given", "n") if c in rows.columns]
    all_columns += [metric_title(task, c) for c in rows.columns if c not in ID_TITLES]
    shown = [ID_TITLES[c] for c in DEFAULT_ID if c != "model"] + default_columns(results_dir, task.id)
    papers = sorted({_paper_label(p) for p in rows.get("paper", [])})
    kinds = sorted(set(rows.get("kind", [])))
    best = recommended_model(task.id, results_dir)
    gr.Markdown(f"**{task.title}**: {task.dataset}, {task.split}; inputs: {task.degradation}. "
                + (f"Recommended (best by `{protocols.headline(task.id)}` without privileged inputs): **{best}**."
                   if best else ""))
    with gr.Row():
        search = gr.Textbox(label="Search models", placeholder="model name", scale=2)
        paper = gr.CheckboxGroup(papers, value=papers, label=f"Paper ({NO_PAPER}: baseline or reference)", scale=2)
        kind = gr.CheckboxGroup(kinds, value=kinds, label="Model type", scale=2)
    with gr.Accordion(f"Columns ({len(shown)} of {len(all_columns) + 1} shown)", open=False):
        columns = gr.CheckboxGroup(all_columns, value=shown, label="Columns")
    view = leaderboard_view(results_dir, task.id, columns=shown)
    table = gr.Dataframe(view, interactive=False, label=f"{task.id} leaderboard", max_height=480, wrap=True)
    download = gr.DownloadButton("Download this table (CSV)", value=csv_file(view, f"leaderboard-{task.id}", new_folder()))
    with gr.Accordion("What the columns and rows mean", open=False):
        gr.Markdown(legend_markdown(task) + "\n\n" + ROWS_EXPLAINED)
    if task.id in protocols.CARDS:
        with gr.Accordion("Protocol: how this task differs from the papers' evaluations", open=False):
            gr.Markdown("\n".join(protocols.CARDS[task.id].markdown()))
    qualities = quality_metrics(results_dir, task.id)
    q0 = default_quality(task.id, qualities)
    with gr.Row():
        with gr.Column(scale=3):
            plot = gr.ScatterPlot(scatter_data(results_dir, task.id, q0) if q0 else None, x="latency_ms", y="quality",
                                  color="model", tooltip=["model", "type", "latency_ms", "quality"],
                                  x_title="latency per face (ms)", y_title=metric_title(task, q0) if q0 else "quality",
                                  label="Quality vs latency (one colour per model)", height=320)
            quality = gr.Dropdown([(metric_title(task, k), k) for k in qualities], value=q0, label="Quality axis")
        with gr.Column(scale=2):
            which = gr.Dropdown(list(rows.get("model", [])), value=None, label="Provenance of a row")
            prov = gr.JSON(label="Data, n, given inputs, judges and TAR thresholds, deviations, commit, hardware")

    def refresh(search: str, columns: list[str], papers: list[str], kinds: list[str]):
        df = leaderboard_view(results_dir, task.id, search, columns, papers, kinds)
        return df, csv_file(df, f"leaderboard-{task.id}", new_folder())

    def replot(metric: str):
        return gr.ScatterPlot(scatter_data(results_dir, task.id, metric), y_title=metric_title(task, metric))

    def row_provenance(model: str | None) -> dict:
        return provenance(results_dir, task.id, model)

    inputs = [search, columns, paper, kind]
    gr.on([c.change for c in inputs], refresh, inputs, [table, download], api_name=f"leaderboard_{slug}")
    quality.change(replot, quality, plot, api_name=f"leaderboard_plot_{slug}")
    which.change(row_provenance, which, prov, api_name=f"provenance_{slug}")


def leaderboard_tab(results_dir: Path, new_folder: Callable[[], Path]) -> None:
    with gr.Accordion("How to reproduce", open=False):
        gr.Markdown(REPRODUCE)
    for task in TASKS.values():
        with gr.Tab(task.id):
            _panel(results_dir, task, new_folder)


# ---------------------------------------------------------------------------------------------
# Models tab
# ---------------------------------------------------------------------------------------------


def models_table() -> pd.DataFrame:
    """One short row per registered model (fits 1,400 px): the long title is in the model card."""
    rows = []
    for spec in registry.REGISTRY.values():
        rows.append({"model": spec.id, "paper": spec.paper or NO_PAPER, "family": spec.family,
                     "tasks": ", ".join(spec.tasks), "given at test time": registry.given_label(spec.given),
                     "checkpoint": ", ".join(sorted({c for c in spec.checkpoints.values() if c})) or "none needed"})
    return pd.DataFrame(rows)


MODELS_COLUMN_WIDTHS = ["22%", "7%", "10%", "18%", "18%", "25%"]


def model_cards() -> dict[str, str]:
    """Checkpoint folder name -> its model card (Markdown, YAML header dropped)."""
    cards = {}
    for card in sorted(registry.CHECKPOINT_ROOT.glob("*/README.md")):
        text = card.read_text(encoding="utf-8")
        if text.startswith("---"):  # drop the YAML header of the Hub model card
            text = text.split("---", 2)[-1]
        cards[card.parent.name] = text.strip()
    return cards


def models_tab() -> None:
    gr.Dataframe(models_table(), label="Registered models", interactive=False, wrap=True,
                 column_widths=MODELS_COLUMN_WIDTHS)
    cards = model_cards()
    if not cards:
        gr.Markdown("No trained checkpoints are shipped yet; the `bicubic` baseline needs none.")
    for name, text in cards.items():
        with gr.Accordion(f"Model card: {name}", open=False):
            gr.Markdown(text)
