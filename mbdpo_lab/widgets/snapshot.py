"""A widget as static HTML: what a reader of the course book sees where the lesson had a live widget.

Widgets draw themselves with JavaScript talking to a kernel; a built page has neither. The book
therefore replaces each displayed widget by a picture of its last state: boxes as flex boxes, plotly
figures as plotly.js divs, images and videos inline, Output widgets with their outputs, and the
controls shown disabled (they say what a student can change when running the notebook). Plotly.js is
loaded once by the page (`include_plotlyjs=False`), so a page with many figures stays small.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any, Iterable

import ipywidgets as W

# how the book marks what this module drew (the browser check reads these classes)
STATIC_CLASS = "mbdpo-static-widget"
ERROR_CLASS = "mbdpo-static-error"


def _hidden(w: W.Widget) -> bool:
    layout = getattr(w, "layout", None)  # a FigureWidget's .layout is plotly's, not a widget Layout
    return isinstance(layout, W.Layout) and (layout.display == "none" or layout.visibility == "hidden")


def _description(w: W.Widget) -> str:
    text = getattr(w, "description", "") or ""
    return f"<span class='mbdpo-static-label'>{html.escape(text)}</span> " if text else ""


def figure_div(fig: Any, config: dict | None = None) -> str:
    """A plotly figure (or its JSON spec) as a div that draws with the page's own plotly.js."""
    import plotly.graph_objects as go

    return go.Figure(fig).to_html(full_html=False, include_plotlyjs=False, config=config)


def _figure_html(fig: Any) -> str:
    if not fig.data:
        return ""  # an empty figure waits for data that the live lesson would bring; the book leaves it out
    return figure_div(fig, dict(getattr(fig, "_config", None) or {}, responsive=True))  # the lesson's config


def _media(data: bytes, kind: str, fmt: str, attrs: str = "") -> str:
    if not data:
        return ""
    src = f"data:{kind}/{fmt};base64,{base64.b64encode(data).decode('ascii')}"
    if kind == "video":
        return f"<video src='{src}' controls loop muted playsinline {attrs}></video>"
    return f"<img src='{src}' {attrs}/>"


def output_html(output: dict[str, Any]) -> str:
    """One Jupyter output (a dict as nbformat stores it) as HTML."""
    kind = output.get("output_type")
    if kind == "stream":
        return f"<pre class='mbdpo-static-stream'>{html.escape(''.join(output.get('text', '')))}</pre>"
    if kind == "error":
        text = "\n".join(output.get("traceback", [])) or f"{output.get('ename')}: {output.get('evalue')}"
        return f"<pre class='{ERROR_CLASS}'>{html.escape(text)}</pre>"
    data = output.get("data", {})
    view = data.get("application/vnd.jupyter.widget-view+json")
    if view and view.get("model_id") in W.Widget.widgets:
        return widget_html(W.Widget.widgets[view["model_id"]])
    if "text/html" in data:
        return "".join(data["text/html"])
    for fmt in ("png", "jpeg"):
        if f"image/{fmt}" in data:
            return f"<img src='data:image/{fmt};base64,{''.join(data[f'image/{fmt}']).strip()}'/>"
    if "image/svg+xml" in data:
        return "".join(data["image/svg+xml"])
    if "text/plain" in data:
        return f"<pre class='mbdpo-static-stream'>{html.escape(''.join(data['text/plain']))}</pre>"
    return ""


def _control_html(w: W.Widget) -> str:
    """A control, disabled: its label and value tell the reader what the live lesson lets them change."""
    if isinstance(w, W.Button):
        return f"<button disabled>{html.escape(w.description or '')}</button>"
    if isinstance(w, W.ToggleButtons):
        buttons = "".join(f"<button disabled{' class=selected' if label == w.label else ''}>{html.escape(str(label))}"
                          "</button>" for label in w._options_labels)
        return f"{_description(w)}<span class='mbdpo-static-toggles'>{buttons}</span>"
    if isinstance(w, (W.Dropdown, W.Select, W.SelectMultiple, W.RadioButtons)):
        chosen = set(w.label if isinstance(w.label, tuple) else (w.label,))
        options = "".join(f"<option{' selected' if label in chosen else ''}>{html.escape(str(label))}</option>"
                          for label in w._options_labels)
        multiple = " multiple" if isinstance(w, W.SelectMultiple) else ""
        return f"{_description(w)}<select disabled{multiple}>{options}</select>"
    if isinstance(w, (W.Checkbox, W.ToggleButton)):
        checked = " checked" if w.value else ""
        return f"<label><input type='checkbox' disabled{checked}/> {html.escape(w.description or '')}</label>"
    if isinstance(w, (W.FloatProgress, W.IntProgress)):
        return f"{_description(w)}<progress value='{w.value - w.min}' max='{w.max - w.min}'></progress>"
    if isinstance(w, (W.IntSlider, W.FloatSlider)):
        return (f"{_description(w)}<input type='range' disabled min='{w.min}' max='{w.max}' step='{w.step}' "
                f"value='{w.value}'/> <span>{html.escape(str(w.value))}</span>")
    if hasattr(w, "value") and isinstance(w.value, (int, float, str)):  # text fields, Play, log sliders
        return f"{_description(w)}<input disabled value='{html.escape(str(w.value))}'/>"
    return ""


def widget_html(w: W.Widget) -> str:
    """A widget and everything inside it as static HTML (hidden parts left out)."""
    import plotly.graph_objects as go

    if _hidden(w):
        return ""
    if isinstance(w, go.FigureWidget):
        return _figure_html(w)
    if isinstance(w, (W.Accordion, W.Tab)):
        parts = [f"<details open><summary>{html.escape(w.get_title(i) or '')}</summary>{widget_html(child)}</details>"
                 for i, child in enumerate(w.children)]
        return f"<div class='{STATIC_CLASS}'>{''.join(parts)}</div>"
    if isinstance(w, W.Box):
        direction = "row" if isinstance(w, W.HBox) else "column"
        inner = "".join(widget_html(child) for child in w.children)
        return (f"<div class='{STATIC_CLASS}' style='display:flex;flex-direction:{direction};gap:4px;"
                f"flex-wrap:wrap'>{inner}</div>") if inner else ""
    if isinstance(w, (W.HTML, W.HTMLMath)):
        return f"<div>{w.value}</div>"
    if isinstance(w, W.Label):
        return f"<span>{html.escape(w.value)}</span>"
    if isinstance(w, W.Image):
        return _media(w.value, "image", w.format or "png")
    if isinstance(w, W.Video):
        return _media(w.value, "video", w.format or "mp4")
    if isinstance(w, W.Output):
        return "".join(output_html(o) for o in w.outputs)
    return _control_html(w)


def write_snapshots(model_ids: Iterable[str], path: str | Path) -> None:
    """Write {model_id: static HTML} of the given live widgets to a JSON file (run inside the kernel)."""
    shots = {mid: widget_html(W.Widget.widgets[mid]) for mid in model_ids if mid in W.Widget.widgets}
    Path(path).write_text(json.dumps(shots))
