"""Every lesson notebook in a real JupyterLab, driven by Debian Chromium through Playwright (fast mode).

Run All in a fresh server and kernel per notebook (`lab_browser`), then the classes of defect a student
notices fail the test: error or stderr outputs, entries in the log console (what widget callbacks
print where no cell shows it), empty plots, line plots of single points, a toolbar over a legend or a
title, numbers with float noise in captions. A few controls are moved the way a student would (the
denoising level, the projection) so their callbacks run too. Screenshots of each notebook's final
state go to $MBDPO_SCREENSHOTS when set.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from lab_browser import EXPECTED, VIEWPORT, LabServer, browser_missing, run_notebook
from limits import HANG_S

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _plot_data(plot) -> str:
    return plot.evaluate("e => JSON.stringify(e.data.map(t => [t.x, t.y]))")


def _wait_for_change(read, before: str) -> bool:
    deadline = time.time() + HANG_S
    while time.time() < deadline:
        time.sleep(0.25)
        if read() != before:
            return True
    return False


def _move_level_slider(page) -> None:
    """The denoising stepper's level slider to its last level: the candidate figure must change."""
    stepper = page.locator(".jp-OutputArea-child:has(.widget-slider:has-text('level'))").first
    stepper.scroll_into_view_if_needed()
    plot = stepper.locator(".js-plotly-plot").first
    before = _plot_data(plot)
    handle = stepper.locator(".widget-slider:has-text('level') .noUi-handle").first
    handle.focus()
    page.keyboard.press("End")
    assert _wait_for_change(lambda: _plot_data(plot), before), "the level slider did not change the figure"


def _switch_projection(page) -> None:
    """The latent contrast, then the detailed explorer, to PCA and back: live fits from a control's callback."""
    explorer = page.locator(".jp-OutputArea-child:has(.widget-slider:has-text('time step'))").first
    explorer.scroll_into_view_if_needed()
    for which in (0, 1):  # the contrast on top, the one-agent view below
        plot = explorer.locator(".js-plotly-plot").nth(which)
        before = _plot_data(plot)
        explorer.locator("button:has-text('pca')").nth(which).click()
        assert _wait_for_change(lambda: _plot_data(plot), before), f"switching plot {which} to PCA did not redraw it"
        explorer.locator("button:has-text('umap')").nth(which).click()
        time.sleep(2)


def _show_a_solution(page) -> None:
    """The first exercise's solution button: the answer's code must appear, with its check above it."""
    assert page.locator("text=nothing written yet").count() >= 3, "the blank exercises did not say what to do"
    button = page.locator("button:has-text('show the solution')").first
    button.scroll_into_view_if_needed()
    button.click()
    page.locator("pre:has-text('def reverse_step(')").first.wait_for(state="visible")


def _step_and_check_physics(page) -> None:
    """The level slider, then the stepper's physics check: its figure must appear with data in it."""
    _move_level_slider(page)
    stepper = page.locator(".jp-OutputArea-child:has(button:has-text('check against physics'))").first
    stepper.locator("button:has-text('check against physics')").first.click()
    stepper.locator("text=earned").first.wait_for(state="visible")
    traces = json.loads(_plot_data(stepper.locator(".js-plotly-plot").last))
    assert sum(len(y or []) for _, y in traces) >= 4, "the physics figure is empty"


INTERACT = {"00_tour": _move_level_slider, "02_diffusion_denoising": _step_and_check_physics,
            "04_latent_trajectories": _switch_projection, "07_exercises": _show_a_solution}


@pytest.fixture(scope="module")
def browser():
    missing = browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: missing {', '.join(missing)} (make setup installs them)")
        pytest.skip(f"missing {', '.join(missing)}; run `make setup`")
    from playwright.sync_api import sync_playwright

    from lab_browser import CHROME_ARGS, CHROMIUM

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_jupyterlab_without_a_visible_defect(path, browser, tmp_path):
    work = tmp_path / "repo" / "notebooks"  # relative paths (../runs) stay inside the test's folder
    work.mkdir(parents=True)
    shutil.copy(path, work / path.name)
    shots = Path(os.environ["MBDPO_SCREENSHOTS"]) if os.environ.get("MBDPO_SCREENSHOTS") else None
    env = {"MBDPO_FAST": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with LabServer(work, env, hang_s=HANG_S) as lab:
        page = browser.new_page(viewport=VIEWPORT)
        page.set_default_timeout(HANG_S * 1000)  # a busy machine is slow, not broken
        report = run_notebook(page, lab.url(path.name), path.stem, HANG_S,
                              shots / f"{path.stem}.jpg" if shots else None, INTERACT.get(path.stem))
        page.close()
    assert report.finished, f"{path.stem}: Run All did not finish"
    assert not report.defects(), "\n".join(report.defects())
    for what, least in EXPECTED.get(path.stem, {}).items():
        assert report.counts[what] >= least, f"{path.stem}: {report.counts[what]} {what} rendered, expected {least}+"
