"""The course book: every lesson notebook executed (fast mode) and published as a static site.

Sphinx with MyST-NB and the book theme (Jupyter Book's own stack) turns executed notebooks into pages.
Widgets need a kernel, which a static page does not have, so after a notebook has run, each widget it
displayed is replaced by a static picture of its final state (`widgets.snapshot`): the figures, images,
videos and text the student would see, with the controls drawn disabled. Plotly.js is served from the
site itself, so the book reads offline. An error in any cell, or drawn inside a widget, stops the build.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import LessonFailed, UsageError

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PLOTLY_JSON = "application/vnd.plotly.v1+json"
NOTEBOOK_PATTERN = "[0-9][0-9]_*.ipynb"


@dataclass
class Lesson:
    """One executed notebook of the book."""

    path: Path
    title: str
    seconds: float
    widgets: int = 0
    errors: list[str] = field(default_factory=list)


def _title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return "Untitled lesson"


def _widget_ids(outputs) -> list[str]:
    return [o["data"][WIDGET_VIEW]["model_id"] for o in outputs
            if o.get("output_type") in ("display_data", "execute_result") and WIDGET_VIEW in o.get("data", {})]


def execute_lesson(path: Path, work: Path, fast: bool = True, timeout_s: int = 900) -> tuple[object, Lesson]:
    """Run one notebook top to bottom in a fresh kernel (cwd ``work``) and freeze its widgets."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    ids, shots = _run(nb, path.name, work, fast, timeout_s)
    lesson = Lesson(path=path, title=_title(nb), seconds=time.perf_counter() - start, widgets=len(ids))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in (_static_output(out, shots, lesson) for out in cell.outputs) if o]
    nb.metadata.pop("widgets", None)
    return nb, lesson


def _run(nb, name: str, work: Path, fast: bool, timeout_s: int) -> tuple[list[str], dict[str, str]]:
    """Execute every cell, then, in the same kernel, draw each displayed widget's final state: the widgets'
    model ids and {model id: static HTML}."""
    import nbformat
    from nbclient import NotebookClient

    env = dict(os.environ, MBDPO_FAST="1" if fast else "0", MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    client = NotebookClient(nb, timeout=timeout_s, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(work)}})
    shots_path = Path(tempfile.mkstemp(suffix=".json", dir=work)[1])
    with client.setup_kernel(env=env):
        client.wait_for_reply(client.kc.kernel_info())
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
        ids = _widget_ids([o for c in nb.cells if c.cell_type == "code" for o in c.outputs])
        snap = nbformat.v4.new_code_cell("from mbdpo_lab.widgets.snapshot import write_snapshots\n"
                                         f"write_snapshots({json.dumps(ids)}, {json.dumps(str(shots_path))})")
        nb.cells.append(snap)
        try:
            client.execute_cell(snap, len(nb.cells) - 1)
        finally:
            nb.cells.pop()
    shots = json.loads(shots_path.read_text()) if shots_path.stat().st_size else {}
    shots_path.unlink()
    errors = [o.get("evalue") for o in snap.outputs if o.get("output_type") == "error"]
    if errors:
        raise LessonFailed(f"{name}: the widgets could not be drawn as static pages: {errors}")
    return ids, shots


def _static_output(out: dict, shots: dict[str, str], lesson: Lesson) -> dict | None:
    """One output as a page shows it: a widget as its frozen HTML (None when there is nothing to see), a
    plotly figure as a div; errors are noted on ``lesson``."""
    from nbformat import from_dict

    from .snapshot import ERROR_CLASS, figure_div

    data = out.get("data", {})
    if out.get("output_type") == "error":
        lesson.errors.append(f"{out.get('ename')}: {out.get('evalue')}")
    if out.get("output_type") in ("display_data", "execute_result") and WIDGET_VIEW in data:
        html = shots.get(data[WIDGET_VIEW]["model_id"], "")
        if ERROR_CLASS in html:
            lesson.errors.append("an error inside a widget's output")
        return from_dict({**copy.deepcopy(out), "data": {"text/html": html}}) if html else None
    if PLOTLY_JSON in data:  # fig.show()
        spec = data[PLOTLY_JSON]
        fig = {k: spec[k] for k in ("data", "layout", "frames") if k in spec}
        return from_dict({**copy.deepcopy(out), "data": {"text/html": figure_div(fig, spec.get("config"))}})
    return out


# Sphinx settings of the book (written into the source folder, so `sphinx-build` can be rerun by hand).
CONF = '''\
project = "MBDPO lab: the course book"
author = "mbdpo-lab"
extensions = ["myst_nb"]
html_theme = "sphinx_book_theme"
html_title = "MBDPO lab"
html_static_path = ["_static"]
html_js_files = ["plotly.min.js"]
html_css_files = ["book.css"]
html_theme_options = {"show_toc_level": 2, "use_download_button": False}
nb_execution_mode = "off"  # executed by mbdpo_lab.book, widgets frozen there
myst_enable_extensions = ["dollarmath", "amsmath"]
suppress_warnings = ["myst.header", "myst.xref_missing", "mystnb.unknown_mime_type"]
exclude_patterns = ["_build"]
'''


# The widgets were laid out for a notebook's full width: give the lesson pages the room.
CSS = """\
.bd-page-width { max-width: 100%; }
.bd-main .bd-content .bd-article-container { max-width: 1200px; }
.mbdpo-static-widget { overflow-x: auto; }
"""


def _index(lessons: list[Lesson]) -> str:
    rows = "\n".join(f"| [{lesson.title}]({lesson.path.stem}) | {lesson.seconds:.0f} s |" for lesson in lessons)
    toc = "\n".join(lesson.path.stem for lesson in lessons)
    return f"""# MBDPO lab: the course book

The lessons of mbdpo-lab with their outputs, executed in fast mode (small budgets, the shipped agents)
when this book was built. Widgets appear as pictures of their final state: run the notebooks
(`make lab`) to move the controls, train agents and step through the planner yourself.
`docs/teaching.md` in the repository turns them into a 90-minute class.

| lesson | built in |
|---|---|
{rows}

```{{toctree}}
:maxdepth: 1
:hidden:

{toc}
```
"""


def build(out: Path, notebooks_dir: Path | None = None, fast: bool = True,
          report: Callable[[str], None] = print) -> list[Lesson]:
    """Execute every lesson, freeze its widgets, and build the site into ``out`` (``out/index.html``)."""
    import plotly
    from sphinx.cmd.build import build_main

    notebooks_dir = Path(notebooks_dir or Path(__file__).resolve().parents[2] / "notebooks")
    paths = sorted(notebooks_dir.glob(NOTEBOOK_PATTERN))
    if not paths:
        raise UsageError(f"no lesson notebooks ({NOTEBOOK_PATTERN}) in {notebooks_dir}; pass the notebooks folder")
    out = Path(out)
    source = out / "_source"
    shutil.rmtree(source, ignore_errors=True)
    (source / "_static").mkdir(parents=True)
    import nbformat

    lessons = []
    for path in paths:
        report(f"executing {path.name} ...")
        with tempfile.TemporaryDirectory(prefix="mbdpo-book-") as tmp:
            work = Path(tmp) / "notebooks"  # relative paths in a lesson (../runs) stay inside the scratch folder
            work.mkdir()
            nb, lesson = execute_lesson(path, work, fast=fast)
        if lesson.errors:
            raise LessonFailed(f"{path.name} shows an error, so the book is not built: {lesson.errors[0]}")
        nbformat.write(nb, source / path.name)
        lessons.append(lesson)
        report(f"  {path.name}: {lesson.seconds:.0f} s, {lesson.widgets} widget(s) frozen")
    (source / "conf.py").write_text(CONF)
    (source / "_static" / "book.css").write_text(CSS)
    (source / "index.md").write_text(_index(lessons))
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", source / "_static")
    html = out / "html"
    code = build_main(["-b", "html", "-q", str(source), str(html)])
    if code != 0:
        raise LessonFailed(f"sphinx-build failed (exit {code}); its messages are above")
    report(f"the book: {html / 'index.html'}")
    return lessons
