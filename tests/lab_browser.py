"""Drive JupyterLab in headless Chromium the way a student does, and report what they would see.

The browser test (fast mode, CI) and the notebook timing measurement (normal mode, docs) share this:
``LabServer`` runs JupyterLab on loopback (random port and token, fresh config, runtime and settings
dirs, the app exposed to the page so the log console can be read) and stops it by its PID;
``run_notebook`` opens one notebook, presses Run All, times the first output and the end, and
collects the classes of defect a student notices: error or stderr outputs, entries in the log console
(output of widget callbacks that no cell shows), empty plots, line plots of single points, legends or
titles under plotly's toolbar, numbers printed with more digits than anyone reads.

    python tests/lab_browser.py notebooks/0*.ipynb --csv docs/data/notebook_times.csv \
        --shots assets/screenshots/notebooks           # normal mode: the README's timing table
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROME_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
               "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}  # a laptop screen, as the lessons were reviewed
# 7 or more significant digits in a caption (0.8399999737739563): nobody reads them, and float32 noise
# shows through; 0.000202 or 853.49 are fine (a seed or a hash has no decimal point)
_NUMBER = re.compile(r"(?<![\w.])-?(\d+)\.(\d+)(?![\w.])")


def unrounded(text: str) -> list[str]:
    out = []
    for m in _NUMBER.finditer(text or ""):
        digits = (m.group(1) + m.group(2)).lstrip("0")
        if len(digits) >= 7:
            out.append(m.group(0))
    return out

# Every plotly figure on the page: traces with points, line traces, and the boxes of the toolbar,
# legend and title (a toolbar over a legend hides it on hover).
def plots_js(scope: str) -> str:
    """JavaScript that describes every plotly figure under the CSS selector ``scope``."""
    return _PLOTS_JS.replace("SCOPE", scope)


_PLOTS_JS = """() => Array.from(document.querySelectorAll('SCOPE .js-plotly-plot')).map((el, i) => {
  const box = e => { if (!e) return null; const r = e.getBoundingClientRect();
    return (r.width && r.height) ? [r.left, r.top, r.right, r.bottom] : null; };
  const len = a => (a && a.length !== undefined) ? a.length : 0;
  // _fullData: the traces as drawn (numpy arrays arrive base64-encoded in el.data, decoded here)
  const traces = (el._fullData || el.data || []).filter(t => t.visible === true || t.visible === undefined).map(t => ({
    type: t.type || 'scatter', mode: t.mode || '', name: t.name || '',
    points: (typeof t._length === 'number') ? t._length : Math.max(len(t.x), len(t.y), len(t.z), len(t.values)), }));
  const title = el.querySelector('.gtitle');
  return { index: i, title: title ? title.textContent : '', traces,
    modebar: box(el.querySelector('.modebar')),
    legend: box(el.querySelector('.legend')), gtitle: box(title) };
})"""


# what each notebook must show at least after Run All (widgets, plotly figures, videos): the lab and the book
EXPECTED = {"00_tour": dict(widgets=1, plots=4, videos=1), "01_world_model": dict(plots=1),
            "02_diffusion_denoising": dict(widgets=1, plots=6), "03_energy_anchor": dict(widgets=2, plots=4, videos=2),
            "04_latent_trajectories": dict(widgets=1, plots=2), "05_train_on_gpu": dict(widgets=1, plots=4),
            "06_planners": dict(plots=1), "07_exercises": dict(widgets=3),
            "08_scaling_and_finetuning": dict(plots=3)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser_missing() -> list[str]:
    """What is missing to drive a browser ([] when it can run)."""
    missing = [] if Path(CHROMIUM).exists() else ["Debian chromium (/usr/bin/chromium)"]
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the playwright package")
    return missing


class LabServer:
    """JupyterLab serving ``work`` on 127.0.0.1; ``url(name)`` opens a notebook; ``stop()`` by PID."""

    def __init__(self, work: Path, env: dict[str, str], hang_s: float = 600):
        self.work, self.scratch = Path(work).resolve(), Path(tempfile.mkdtemp(prefix="mbdpo-lab-"))
        self.port, self.token = _free_port(), secrets.token_hex(16)
        settings = self.scratch / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
        # every cell rendered (not only those in view): the checks read every output, the screenshot shows all
        notebook_settings = self.scratch / "settings" / "@jupyterlab" / "notebook-extension"
        notebook_settings.mkdir(parents=True)
        (notebook_settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
        full_env = dict(os.environ, **env, JUPYTER_CONFIG_DIR=str(self.scratch / "config"),
                        JUPYTERLAB_SETTINGS_DIR=str(self.scratch / "settings"),
                        JUPYTER_RUNTIME_DIR=str(self.scratch / "runtime"),
                        JUPYTERLAB_WORKSPACES_DIR=str(self.scratch / "ws"))
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.work}",
               "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log_path = self.scratch / "lab.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=self.work, env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + hang_s
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={self.token}", timeout=2)
                return
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    self._log.flush()
                    log = self.log_path.read_text()[-2000:]
                    self.stop()
                    raise RuntimeError("JupyterLab did not start:\n" + log)
                time.sleep(0.5)

    def url(self, notebook: str) -> str:
        return f"http://127.0.0.1:{self.port}/lab/tree/{notebook}?token={self.token}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server and the kernels it started
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


@dataclass
class NotebookReport:
    """What a student sees after Run All, and how long it took."""

    name: str
    finished: bool = False
    first_output_s: float | None = None   # Run All -> the first output of a code cell after the set-up cell
    run_all_s: float | None = None        # Run All -> kernel idle, no cell pending
    errors: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    log_console: list[str] = field(default_factory=list)
    plot_defects: list[str] = field(default_factory=list)
    unrounded: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)

    def defects(self) -> list[str]:
        """Every defect as one line (empty when the notebook is clean)."""
        out = [] if self.finished else [f"Run All did not finish within the time limit ({self.run_all_s} s)"]
        out += [f"error output: {e[:300]}" for e in self.errors]
        out += [f"stderr output: {e[:300]}" for e in self.stderr]
        out += [f"log console: {e[:300]}" for e in self.log_console]
        out += self.plot_defects
        out += [f"unrounded number in an output: {e}" for e in self.unrounded]
        return [f"{self.name}: {d}" for d in out]


def plot_defects(plots: list[dict]) -> list[str]:
    """Empty plots, line plots whose every trace is one point, a toolbar over a legend or a title."""
    out = []

    def overlap(a, b):
        return a and b and a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    for p in plots:
        label = f"plot {p['index']}" + (f" ({p['title']!r})" if p["title"] else "")
        traces = p["traces"]
        if not traces or all(t["points"] == 0 for t in traces):
            out.append(f"{label} is empty")
            continue
        lines = [t for t in traces if t["type"] in ("scatter", "scattergl")]
        if lines and len(lines) == len(traces) and all(t["points"] <= 1 for t in lines):
            out.append(f"{label} is a line plot of single points")
        for what in ("legend", "gtitle"):
            if overlap(p["modebar"], p[what]):
                out.append(f"{label}: plotly's toolbar covers the {'title' if what == 'gtitle' else 'legend'}")
    return out


def _settle_kernel(page, timeout_s: float) -> None:
    """Accept the kernel-choice dialog whenever it shows and return once the kernel has been idle,
    with no dialog, for 3 s."""
    deadline = time.time() + timeout_s
    quiet_since = None
    while time.time() < deadline:
        accept = page.locator(".jp-Dialog .jp-mod-accept")
        if accept.count():
            accept.first.click()
            quiet_since = None
        elif page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").count():
            quiet_since = quiet_since or time.time()
            if time.time() - quiet_since >= 3:
                return
        else:
            quiet_since = None
        time.sleep(0.2)
    raise AssertionError("the kernel did not start (no idle kernel within the time limit)")


def _outputs_after_setup(page) -> int:
    """Code cells after the first (the set-up cell) that show an output."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell'))
        .slice(1).filter(c => c.querySelector('.jp-OutputArea-output')).length""")


def log_console_entries(page) -> list[str]:
    """The notebook's log console: output that widget callbacks sent where no cell shows it."""
    page.evaluate("() => window.jupyterapp.commands.execute('logconsole:open', {insertMode: 'split-bottom'})")
    time.sleep(1.0)
    entries = page.evaluate("""() => Array.from(document.querySelectorAll('.jp-LogConsolePanel .jp-OutputArea-child'))
        .map(e => e.innerText.trim()).filter(t => t)""")
    page.evaluate("() => window.jupyterapp.commands.execute('logconsole:open')")  # toggles it closed again
    return [e for e in entries if "Kernel" not in e.split("\n")[0] or "error" in e.lower()]


def text_outputs(page) -> list[str]:
    """Every text a student reads in the outputs: printed text, HTML, widget labels and values."""
    return page.evaluate("""() => Array.from(document.querySelectorAll(
        '.jp-OutputArea-child .jp-RenderedText, .jp-OutputArea-child .jp-RenderedHTMLCommon, ' +
        '.jp-OutputArea-child .widget-label, .jp-OutputArea-child .widget-readout, ' +
        '.jp-OutputArea-child .widget-html-content, .jp-OutputArea-child .js-plotly-plot text'))
        .map(e => e.textContent)""")


def save_full_notebook(page, path: Path, width: int = 900) -> None:
    """A screenshot of the whole notebook: the window grows to the notebook's height for the shot (the
    notebook scrolls inside the page, so a plain full-page shot stops at the window's edge). A ``.jpg``
    path is scaled to ``width`` pixels and compressed (docs keep every notebook's final state)."""
    import io

    path.parent.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("""() => { const e = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer');
        if (!e) return 0; e.scrollTop = 0; return e.scrollHeight; }""")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": int(min(max(height + 150, VIEWPORT["height"]), 16000))})
    time.sleep(1.5)
    png = page.screenshot(full_page=True)
    page.set_viewport_size(VIEWPORT)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        from PIL import Image

        image = Image.open(io.BytesIO(png)).convert("RGB")
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
        image.save(path, quality=72, optimize=True)
    else:
        path.write_bytes(png)


def run_notebook(page, url: str, name: str, timeout_s: float, screenshot: Path | None = None,
                 interact=None) -> NotebookReport:
    """Open ``url``, Run All, wait for the end, ``interact(page)`` if given, then collect the report."""
    report = NotebookReport(name)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    page.goto(url)
    page.wait_for_selector(".jp-Notebook", timeout=timeout_s * 1000)
    _settle_kernel(page, timeout_s)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    start = time.time()
    idle_since = None
    while time.time() - start < timeout_s:
        if report.first_output_s is None and _outputs_after_setup(page):
            report.first_output_s = round(time.time() - start, 1)
        pending = page.locator(".jp-InputArea-prompt:has-text('[*]')").count()
        busy = page.locator(".jp-Notebook-ExecutionIndicator[data-status='busy']").count()
        if pending or busy:
            idle_since = None
        else:
            idle_since = idle_since or time.time()
            if time.time() - idle_since >= 1.5:
                report.finished = True
                break
        time.sleep(0.2)
    report.run_all_s = round((idle_since or time.time()) - start, 1)
    if interact is not None and report.finished:
        interact(page)
    time.sleep(2)  # late widget and plot renders
    report.errors = page.evaluate("""() => Array.from(document.querySelectorAll(
        ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")).map(e => e.innerText)""")
    report.stderr = page.evaluate("""() => Array.from(document.querySelectorAll(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")).map(e => e.innerText)""")
    report.errors += page.evaluate("""() => Array.from(document.querySelectorAll('.jupyter-widgets'))
        .filter(e => e.textContent.includes('Error displaying widget')).map(e => e.innerText)""")
    report.plot_defects = plot_defects(page.evaluate(plots_js(".jp-OutputArea-child")))
    report.unrounded = sorted({m for t in text_outputs(page) for m in unrounded(t)})
    count = lambda sel: page.locator(sel).count()  # noqa: E731
    report.counts = {"widgets": count(".jp-OutputArea-child .jupyter-widgets"),
                     "plots": count(".jp-OutputArea-child .js-plotly-plot"),
                     "videos": count(".jp-OutputArea-child video"),
                     "images": count(".jp-OutputArea-child img")}
    if screenshot is not None:
        save_full_notebook(page, screenshot)
    report.log_console = log_console_entries(page)
    report.console_errors = console[:20]
    return report


def measure(notebooks: list[Path], fast: bool, timeout_s: float, shots: Path | None,
            linger_s: float = 0.0) -> list[NotebookReport]:
    """Each notebook in its own fresh JupyterLab and kernel, one torch thread, a copy in a scratch dir
    beside the notebooks (relative paths as in the repository)."""
    from playwright.sync_api import sync_playwright

    reports = []
    env = {"MBDPO_FAST": "1" if fast else "0", "OMP_NUM_THREADS": "1"}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        for path in notebooks:
            work = Path(tempfile.mkdtemp(prefix="mbdpo-lab-notebook-"))  # relative paths (../runs) land here
            (work / "notebooks").mkdir()
            shutil.copy(path, work / "notebooks" / path.name)
            try:
                with LabServer(work / "notebooks", env, hang_s=timeout_s) as lab:
                    page = browser.new_page(viewport=VIEWPORT)
                    page.set_default_timeout(timeout_s * 1000)
                    shot = shots / f"{path.stem}.jpg" if shots else None
                    # linger: leave the page open after Run All (a training dashboard keeps going)
                    wait = (lambda page: time.sleep(linger_s)) if linger_s else None
                    reports.append(run_notebook(page, lab.url(path.name), path.stem, timeout_s, shot, wait))
                    page.close()
            finally:
                shutil.rmtree(work, ignore_errors=True)
    return reports


def main(argv=None) -> int:
    import argparse
    import csv

    ap = argparse.ArgumentParser(description="Run notebooks in JupyterLab in Chromium; time them; list defects.")
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--fast", action="store_true", help="MBDPO_FAST=1 (CI budgets)")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--csv", type=Path, help="append first-output and Run All times here")
    ap.add_argument("--shots", type=Path, help="folder for a full-page screenshot per notebook")
    ap.add_argument("--linger", type=float, default=0.0,
                    help="seconds to keep each notebook open after Run All before the screenshot (training)")
    a = ap.parse_args(argv)
    missing = browser_missing()
    if missing:
        print(f"cannot drive a browser: missing {', '.join(missing)} (make setup installs them)", file=sys.stderr)
        return 2
    reports = measure(a.notebooks, a.fast, a.timeout, a.shots, a.linger)
    for r in reports:
        print(json.dumps({"notebook": r.name, "first_output_s": r.first_output_s, "run_all_s": r.run_all_s,
                          "finished": r.finished, **r.counts}))
        for d in r.defects():
            print("  DEFECT", d)
    if a.csv:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), "?")
        new = not a.csv.exists()
        a.csv.parent.mkdir(parents=True, exist_ok=True)
        with a.csv.open("a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["notebook", "mode", "first_output_s", "run_all_s", "finished", "cpus", "cpu", "load_1min",
                            "date"])
            for r in reports:
                w.writerow([r.name, "fast" if a.fast else "normal", r.first_output_s, r.run_all_s, r.finished,
                            os.cpu_count(), cpu, round(os.getloadavg()[0], 2), time.strftime("%Y-%m-%d")])
    return 0 if all(not r.defects() for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
