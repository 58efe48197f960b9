"""Real-browser test: 00_tour in JupyterLab, driven by Debian Chromium through Playwright.

JupyterLab runs on loopback (random free port, random token, fresh config and runtime dirs) with
MBDPO_FAST=1; the test runs all cells, checks that widgets, plotly figures and the video render
without error outputs, moves the denoising level slider and checks that a figure changes, saves
screenshots, and stops the server by its PID. Screenshots go to $MBDPO_SCREENSHOTS when set.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from limits import HANG_S

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROME_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _require_browser():
    missing = [] if Path(CHROMIUM).exists() else ["Debian chromium (/usr/bin/chromium)"]
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the playwright package")
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser test cannot run in CI: missing {', '.join(missing)} (make setup installs them)")
        pytest.skip(f"missing {', '.join(missing)}; run `make setup`")


@pytest.fixture
def lab_server(tmp_path):
    """JupyterLab on 127.0.0.1 serving a copy of 00_tour; yields (url, workdir); stopped by PID."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / "00_tour.ipynb", work / "00_tour.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    env = dict(os.environ, MBDPO_FAST="1", JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"),
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + HANG_S
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text()[-2000:])
                time.sleep(0.5)
        yield f"{base}/lab/tree/00_tour.ipynb?token={token}", tmp_path
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _settle_kernel(page, timeout_s: float) -> None:
    """Accept the kernel-choice dialog whenever it shows (on a fresh config dir it can appear even
    after the kernel reports idle) and return once the kernel has been idle, with no dialog, for 5 s."""
    deadline = time.time() + timeout_s
    quiet_since = None
    while time.time() < deadline:
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        if accept.count():
            accept.first.click()
            quiet_since = None
        elif page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count():
            quiet_since = quiet_since or time.time()
            if time.time() - quiet_since >= 5:
                return
        else:
            quiet_since = None
        time.sleep(0.3)
    raise AssertionError("the kernel did not start (no idle kernel within the time limit)")


def _wait_idle(page, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    time.sleep(2)
    while time.time() < deadline:
        busy = page.locator(".jp-InputArea-prompt:has-text('[*]')").count()
        if not busy:
            return
        time.sleep(1)
    raise TimeoutError("cells still running")


def test_tour_renders_widgets_figures_video_and_slider_moves_figure(lab_server):
    _require_browser()
    from playwright.sync_api import sync_playwright

    url, tmp = lab_server
    shots = Path(os.environ.get("MBDPO_SCREENSHOTS", tmp / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.set_default_timeout(HANG_S * 1000)  # a busy machine is slow, not broken
        console_errors: list[str] = []
        page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
        page.goto(url)
        page.wait_for_selector(".jp-Notebook", timeout=HANG_S * 1000)
        _settle_kernel(page, HANG_S)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        _wait_idle(page, HANG_S)
        time.sleep(3)
        page.screenshot(path=str(shots / "tour_full.png"), full_page=True)

        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] "
                              ":text('Traceback'), .jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
        assert errors.count() == 0, errors.first.inner_text()[:2000]
        assert page.locator(".jupyter-widgets:has-text('Error displaying widget')").count() == 0
        assert page.locator(".jp-OutputArea-output .widget-slider").count() >= 2, "widgets did not render"
        assert page.locator(".jp-OutputArea-output .js-plotly-plot").count() >= 3, "plotly figures did not render"
        assert page.locator(".jp-OutputArea-output video").count() >= 1, "the rollout video did not render"

        stepper = page.locator(".jp-OutputArea-output:has(.widget-slider:has-text('level'))").first
        stepper.scroll_into_view_if_needed()
        stepper.screenshot(path=str(shots / "denoising_stepper.png"))
        plot = stepper.locator(".js-plotly-plot").first
        before = plot.evaluate("e => JSON.stringify(e.data.map(t => [t.x, t.y]))")
        handle = stepper.locator(".widget-slider:has-text('level') .noUi-handle").first
        handle.focus()
        page.keyboard.press("End")
        changed = False
        deadline = time.time() + HANG_S
        while time.time() < deadline:
            time.sleep(0.25)
            if plot.evaluate("e => JSON.stringify(e.data.map(t => [t.x, t.y]))") != before:
                changed = True
                break
        stepper.screenshot(path=str(shots / "denoising_stepper_last_level.png"))
        assert changed, "moving the level slider did not change the candidate figure"

        explorer = page.locator(".jp-OutputArea-output:has(.widget-slider:has-text('time step'))").first
        if explorer.count():
            explorer.scroll_into_view_if_needed()
            explorer.screenshot(path=str(shots / "latent_explorer.png"))
        browser.close()
