"""The course book: built from every lesson in fast mode, then read page by page in Debian Chromium.

The build itself is the check that every notebook runs top to bottom without an error output (it
refuses to publish a lesson that shows one). The browser then opens each page from disk, offline, as
a student would: the page renders with its title, no error or stderr output, every plotly figure has
data, at least the figures and videos the live lesson shows, the videos play, the images load.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from lab_browser import CHROME_ARGS, CHROMIUM, EXPECTED, VIEWPORT, browser_missing, plot_defects, plots_js

from mbdpo_lab.widgets.book import _index, build, execute_lesson
from mbdpo_lab.errors import LessonFailed

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    lessons = build(out, ROOT / "notebooks", fast=True)
    return out / "html", lessons


def test_every_lesson_is_a_page_of_the_book(book):
    html, lessons = book
    assert [lesson.path.stem for lesson in lessons] == [p.stem for p in NOTEBOOKS]
    index = (html / "index.html").read_text()
    for lesson in lessons:
        assert (html / f"{lesson.path.stem}.html").exists()
        assert f'href="{lesson.path.stem}.html"' in index  # the table of lessons links every page
    assert (html / "_static" / "plotly.min.js").exists()  # offline: plotly.js comes with the site
    assert "cdn.plot.ly" not in "".join((html / f"{p.stem}.html").read_text() for p in NOTEBOOKS)


def test_a_lesson_with_an_error_is_not_published(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 99 · Broken"),
                                         nbformat.v4.new_code_cell("1 / 0")])
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(nb, folder / "99_broken.ipynb")
    with pytest.raises(LessonFailed, match="99_broken.ipynb shows an error.*ZeroDivisionError"):
        build(tmp_path / "out", folder)


def test_widgets_are_frozen_into_their_final_state(tmp_path):
    """A widget whose figure is filled after it was displayed appears with that figure; controls appear
    disabled; an error printed inside a widget's Output stops the lesson."""
    cells = ["import ipywidgets as W, plotly.graph_objects as go\n"
             "fig = go.FigureWidget()\nbox = W.VBox([W.IntSlider(description='level', value=3), fig])\nbox",
             "_ = fig.add_scatter(x=[0, 1, 2], y=[1, 3, 2], name='filled later')"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    path = tmp_path / "98_widgets.ipynb"
    nbformat.write(nb, path)
    executed, lesson = execute_lesson(path, tmp_path)
    assert lesson.widgets == 1 and not lesson.errors
    html = executed.cells[0].outputs[0]["data"]["text/html"]
    assert "filled later" in html and "Plotly.newPlot" in html
    assert "level" in html and "type='range' disabled min='0' max='100' step='1' value='3'" in html
    nb.cells.append(nbformat.v4.new_code_cell(
        "out = W.Output()\ndisplay(out)\nwith out:\n    raise ValueError('inside a widget')"))
    nbformat.write(nb, path)
    _, lesson = execute_lesson(path, tmp_path)
    assert lesson.errors


def test_the_index_lists_lessons_in_order(tmp_path):
    from mbdpo_lab.widgets.book import Lesson

    text = _index([Lesson(tmp_path / "00_a.ipynb", "00 · A", 3.2), Lesson(tmp_path / "01_b.ipynb", "01 · B", 5)])
    assert text.index("[00 · A](00_a)") < text.index("[01 · B](01_b)") and "00_a\n01_b" in text


_PAGE_JS = """() => ({
  title: (document.querySelector('article h1') || {}).textContent || '',
  errors: Array.from(document.querySelectorAll('.mbdpo-static-error, .output.traceback, .output.error'))
          .map(e => e.innerText.slice(0, 300)),
  stderr: Array.from(document.querySelectorAll('.output.stderr')).map(e => e.innerText.slice(0, 300)),
  images: Array.from(document.querySelectorAll('article img')).map(i => i.complete && i.naturalWidth > 0),
  videos: document.querySelectorAll('article video').length,
})"""

_PLAY_JS = """async v => { v.muted = true; try { await v.play(); } catch (e) { return -1; }
  await new Promise(r => setTimeout(r, 1500)); return v.currentTime; }"""


@pytest.mark.skipif(bool(browser_missing()), reason=f"needs {' and '.join(browser_missing())}")
def test_every_page_reads_offline_in_a_browser(book):
    from playwright.sync_api import sync_playwright

    html, lessons = book
    problems = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        context = browser.new_context(viewport=VIEWPORT, offline=True)
        for lesson in lessons:
            name = lesson.path.stem
            page = context.new_page()
            page.goto((html / f"{name}.html").as_uri())
            page.wait_for_load_state("load")
            page.wait_for_timeout(1000)  # plotly draws after load
            seen = page.evaluate(_PAGE_JS)
            plots = page.evaluate(plots_js("article"))
            found = dict(plots=len(plots), videos=seen["videos"])
            lines = [f"title {seen['title']!r} is not the lesson's {lesson.title!r}"] if lesson.title not in seen[
                "title"] else []
            lines += [f"error output: {e}" for e in seen["errors"]] + [f"stderr output: {e}" for e in seen["stderr"]]
            lines += plot_defects(plots)
            lines += [f"{sum(not ok for ok in seen['images'])} image(s) did not load"] if not all(seen["images"]) else []
            for what in ("plots", "videos"):
                least = EXPECTED.get(name, {}).get(what, 0)
                if found[what] < least:
                    lines.append(f"{found[what]} {what} on the page, the lesson shows {least}")
            for i, video in enumerate(page.locator("article video").all()):
                video.scroll_into_view_if_needed()
                played = video.evaluate(_PLAY_JS)
                if not played > 0:
                    lines.append(f"video {i} does not play (currentTime {played})")
            problems += [f"{name}: {line}" for line in lines]
            page.close()
        browser.close()
    assert not problems, json.dumps(problems, indent=1, ensure_ascii=False)
