"""The results panel of a photo tab (Gradio): progress and notes, the labelled gallery, the before /
after comparison of a chosen result and its full-resolution PNG."""

from __future__ import annotations

import gradio as gr

from facegen.request_results import RequestResults


def present(run: RequestResults):
    """Gallery items, the compare choices, the first comparison and its PNG, and the state to keep."""
    shown = run.shown
    gallery = run.extra + [(s.after, s.label) for s in shown]
    comparable = [s for s in shown if s.before is not None]
    choices = [s.label for s in comparable]
    first = comparable[0] if comparable else None
    state = [s.__dict__ for s in shown]
    return (
        gallery,
        gr.Dropdown(choices=choices, value=first.label if first else None),
        (first.before, first.after) if first else None,
        first.after if first else (shown[0].after if shown else None),
        state,
    )


def show_comparison(label: str | None, state: list[dict] | None):
    """The before/after pair and the downloadable PNG of the chosen result."""
    for s in state or []:
        if s["label"] == label:
            pair = (s["before"], s["after"]) if s["before"] else None
            return pair, s["after"]
    if label:
        raise gr.Error(f"There is no result named {label!r}; run a model first.")
    return None, None


def result_panel(prefix: str):
    """Progress and notes first, then the labelled results, the before/after slider of a chosen one,
    and its full-resolution PNG."""
    info = gr.Markdown(elem_id=f"{prefix}-info", min_height=40)
    gallery = gr.Gallery(label="Results", columns=2, height=420, format="png", object_fit="contain",
                         elem_id=f"{prefix}-results")
    compare = gr.Dropdown([], label="Compare before / after", interactive=True)
    slider = gr.ImageSlider(label="Before / after", type="filepath", height=420, elem_id=f"{prefix}-slider")
    download = gr.DownloadButton("Download the full-resolution PNG", value=None, elem_id=f"{prefix}-download")
    state = gr.State([])
    compare.change(show_comparison, [compare, state], [slider, download], api_name=f"{prefix}_compare")
    return gallery, compare, slider, download, info, state
