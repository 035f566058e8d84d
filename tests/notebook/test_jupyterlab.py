"""A real browser runs notebooks 01 and 03 in JupyterLab and uses their widgets.

JupyterLab is started on a free port of 127.0.0.1 with a random token, over a temporary folder
holding copies of the notebooks; headless Chromium (Debian's package, driven by Playwright)
runs every cell, then changes a format dropdown, picks samples, filters the issue table and
clicks a fix button, checking that the kernel's answer reaches the page each time.
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
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from workbench.notebook.report import run_notebook

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
WAIT_MS = 60_000

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None


def _require_browser() -> None:
    missing = []
    if CHROMIUM is None:
        missing.append("Chromium (apt-get install chromium)")
    if sync_playwright is None:
        missing.append("the playwright package (pip install playwright; its browser download is not needed)")
    if not missing:
        return
    if os.environ.get("CI"):
        pytest.fail("the JupyterLab test needs " + " and ".join(missing) + "; CI must provide them")
    pytest.skip("JupyterLab browser test skipped: missing " + " and ".join(missing) + "; CI runs this test")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server bound to 127.0.0.1 serving ``root``; ``stop()`` ends it and its kernels."""

    def __init__(self, root: Path, state: Path):
        self.root, self.port, self.token = root, _free_port(), secrets.token_hex(16)
        settings = state / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        env = {
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "WORKBENCH_CACHE_DIR": str(state / "cache"),
        }
        cmd = [
            sys.executable, "-m", "jupyterlab", "--no-browser",
            "--ip=127.0.0.1", f"--port={self.port}", "--port-retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root}",
            f"--LabApp.user_settings_dir={state / 'settings'}",
            f"--LabApp.workspaces_dir={state / 'workspaces'}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ]  # fmt: skip
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log = state / "jupyterlab.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/status", headers={"Authorization": f"token {self.token}"}
        )
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(request, timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"JupyterLab did not answer within {timeout:g} s:\n{self.log.read_text()}")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/lab/tree/{path}?reset&token={self.token}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # shuts its kernels down too
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:  # anything left in the session it was started in (kernels), then the server itself
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def lab_page(tmp_path_factory):
    """``(lab, page, folder)``: JupyterLab over a folder with copies of the notebooks, and a browser tab."""
    _require_browser()
    folder = tmp_path_factory.mktemp("lab")
    (folder / "notebooks").mkdir()
    for name in ("01_inspect_data.ipynb", "03_validate.ipynb"):
        shutil.copy(NOTEBOOKS / name, folder / "notebooks" / name)
    lab = Lab(folder, tmp_path_factory.mktemp("lab_state"))
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(WAIT_MS)
                yield lab, page, folder
            finally:
                browser.close()
    finally:
        lab.stop()


# The status bar's kernel item reads "No Kernel | Initializing" first, then "Python 3 (ipykernel) | Idle".
KERNEL_IDLE = """() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]
    .some(e => / \\| Idle$/.test(e.textContent.trim()) && !e.textContent.includes('No Kernel'))"""
ALL_RAN = """() => {
  const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
  return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
}"""


def _run_all(page, lab: Lab, notebook: str, shots: Path) -> None:
    """Open ``notebook``, wait for its kernel, run every cell from the Run menu and wait until done."""
    stem = Path(notebook).stem
    page.goto(lab.url(notebook))
    page.wait_for_selector(".jp-Notebook .jp-Cell")
    try:
        page.wait_for_function(KERNEL_IDLE)
        page.click(".lm-MenuBar-itemLabel:text-is('Run')")
        page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
        page.wait_for_function(ALL_RAN, timeout=3 * WAIT_MS)
        page.wait_for_function(KERNEL_IDLE)
    except Exception:
        page.screenshot(path=str(shots / f"{stem}-stuck.png"))
        raise
    page.screenshot(path=str(shots / f"{stem}-ran.png"))
    problems = page.evaluate(
        """() => [...document.querySelectorAll('.jp-OutputArea-output')]
             .map(o => o.textContent)
             .filter(t => /Error displaying widget|Loading widget|Traceback/.test(t))
             .map(t => t.slice(0, 600))"""
    )
    assert not problems, f"{notebook}: failed outputs or widgets that did not render:\n" + "\n".join(problems)


def _widget_root(page, code: str):
    """The top widget view displayed by the code cell whose source contains ``code``."""
    cell = page.locator(".jp-CodeCell").filter(has=page.locator(".jp-InputArea", has_text=code))
    assert cell.count() == 1, f"expected one cell with {code!r}, found {cell.count()}"
    stderr = cell.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    assert stderr.count() == 0, f"the {code!r} cell wrote to stderr: {stderr.first.text_content()}"
    root = cell.locator(".jp-OutputArea-output .jupyter-widgets.widget-vbox").first
    root.scroll_into_view_if_needed()
    return root


def _wait_until(check, what: str, timeout: float = WAIT_MS / 1000):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _audio_state(root) -> list[dict]:
    return root.locator("audio").evaluate_all(
        "els => els.map(a => ({src: a.src, duration: a.duration, shown: a.offsetParent !== null}))"
    )


def test_inspect_notebook_widgets_work_in_jupyterlab(lab_page, tmp_path):
    lab, page, _ = lab_page
    shots = tmp_path
    _run_all(page, lab, "notebooks/01_inspect_data.ipynb", shots)

    # Format picker: choosing a format in a dropdown re-converts that file's preview in the kernel.
    picker = _widget_root(page, "widgets.FormatPicker(")
    assert picker.locator(".widget-dropdown select").count() >= 2
    first_file = picker.locator(":scope > .widget-vbox").first
    preview = first_file.locator(".widget-html").nth(1)
    before = preview.text_content()
    assert "trainable" in before
    map_box = picker.locator(":scope > .widget-vbox").last
    assert not map_box.is_visible()  # the demo has no ShareGPT data
    first_file.locator(".widget-dropdown select").select_option("sharegpt")
    _wait_until(lambda: preview.text_content() != before, "the preview to follow the dropdown")
    assert "format sharegpt" in preview.text_content()
    _wait_until(map_box.is_visible, "the ShareGPT mapping to appear")
    first_file.screenshot(path=str(shots / "01-format-picker.png"))

    # Sample browser: picking another sample replaces texts, plots and players.
    browser = _widget_root(page, "widgets.SampleBrowser(")
    select = browser.locator(".widget-select select")
    ids = select.evaluate("e => [...e.options].map(o => o.value)")
    assert len(ids) >= 4 and select.input_value() == ids[0]
    audio = _audio_state(browser)
    assert len(audio) == 2 and all(a["src"].startswith("blob:") for a in audio)
    _wait_until(lambda: all(a["duration"] > 0.5 for a in _audio_state(browser)), "the players to load")
    select.select_option(ids[3])
    _wait_until(lambda: _audio_state(browser)[0]["src"] != audio[0]["src"], "new audio for the sample")
    _wait_until(lambda: ids[3] in browser.locator(".wb-sample-texts").text_content(), "the sample's texts")
    _wait_until(lambda: all(a["duration"] > 0.5 for a in _audio_state(browser)), "the new players to load")
    widths = browser.locator("img").evaluate_all("els => els.map(i => i.naturalWidth)")
    assert len(widths) == 2 and all(w > 100 for w in widths), widths
    browser.screenshot(path=str(shots / "01-sample-browser.png"))

    # Its filter: nothing matches, so no sample is shown and no broken player or image either.
    box = browser.locator(".widget-text input")
    box.fill("no-such-sample-zzz")
    _wait_until(lambda: select.evaluate("e => e.options.length") == 0, "the filter to empty the list")
    _wait_until(lambda: not any(a["shown"] for a in _audio_state(browser)), "empty players to hide")
    assert "no sample matches" in browser.text_content()
    box.fill("")
    _wait_until(lambda: select.evaluate("e => e.options.length") == len(ids), "the full list back")
    _wait_until(lambda: all(a["shown"] for a in _audio_state(browser)), "the players to come back")


def test_validate_notebook_filters_and_fix_buttons_work_in_jupyterlab(lab_page, tmp_path):
    lab, page, folder = lab_page
    shots = tmp_path
    converted = folder / "02" / "converted.jsonl"
    step = run_notebook(
        "02_convert_and_listen", folder / "02", {"output_dir": str(folder / "02")}, export=False
    )
    assert step.ok and converted.exists(), step.error
    out = folder / "03_out"
    path = folder / "notebooks" / "03_validate.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source += f"\ninput_data = {str(converted)!r}\noutput_dir = {str(out)!r}\n"
    nbformat.write(nb, path)
    _run_all(page, lab, "notebooks/03_validate.ipynb", shots)

    # Issue table: a code filter narrows the count and the rows.
    issues = _widget_root(page, "widgets.IssueTable(")
    count = issues.locator(":scope > .widget-html").first
    rows = issues.locator(".widget-html table tbody tr")
    total = rows.count()
    assert total >= 2 and re.search(rf"{total} of {total} findings", count.text_content())
    code = issues.locator(".widget-dropdown select").first
    options = code.evaluate("e => [...e.options].map(o => o.value)")
    assert options[0] == "(all)" and len(options) >= 3
    code.select_option(options[1])
    picked = options[1].rsplit(" (", 1)[0]  # the options are labelled "CODE (count)"
    _wait_until(lambda: f"where code = {picked}" in count.text_content(), "the count to follow the filter")
    _wait_until(lambda: 0 < rows.count() < total, "fewer rows")
    issues.screenshot(path=str(shots / "03-issue-table.png"))

    # Fix actions: they act on the filtered samples; a click adds a step to the recipe view.
    actions = _widget_root(page, "widgets.FixActions(")
    targets = actions.locator(".widget-html").first
    recipe = actions.locator(":scope > .widget-html").last
    _wait_until(lambda: "issue table filter" in targets.text_content(), "the buttons' targets")
    assert "(0 steps)" in recipe.text_content()
    actions.locator("button", has_text="drop samples").click()
    _wait_until(lambda: "(1 steps)" in recipe.text_content(), "the recipe to grow")
    assert "drop_samples" in recipe.text_content() and f"flagged {picked}" in recipe.text_content()
    picks = actions.locator(".widget-select-multiple select").first
    first_id = picks.evaluate("e => e.options[0].value")
    picks.select_option([first_id])
    _wait_until(lambda: "(picked)" in targets.text_content(), "the picked sample to become the target")
    actions.locator(".widget-text", has_text="speaker").locator("input").fill("spk_new")
    actions.locator("button", has_text="set speaker").click()
    _wait_until(lambda: "(2 steps)" in recipe.text_content(), "a second step")
    assert "set_speaker" in recipe.text_content() and "spk_new" in recipe.text_content()
    actions.locator("button", has_text="save recipe").click()
    _wait_until(lambda: "saved 2 steps" in actions.text_content(), "the save message")
    saved = (out / "fixes.yaml").read_text()
    assert "drop_samples" in saved and "set_speaker" in saved
    actions.screenshot(path=str(shots / "03-fix-actions.png"))
