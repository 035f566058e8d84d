"""A real browser opens an HTML report: it renders, and its audio players know their duration."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]  # fmt: skip

# Appended to a copy of the report: once every <audio> has loaded its metadata, list the durations.
PROBE = """
<script>
window.addEventListener('load', () => {
  const players = Array.from(document.querySelectorAll('audio'));
  const done = () => {
    const out = document.createElement('pre');
    out.id = 'wb-durations';
    out.textContent = 'DURATIONS:' + players.map(a => a.duration).join(',');
    document.body.appendChild(out);
  };
  let pending = players.length;
  if (!pending) { done(); return; }
  players.forEach(a => {
    const finish = () => { if (--pending === 0) done(); };
    if (a.readyState >= 1) { finish(); } else {
      a.addEventListener('loadedmetadata', finish, {once: true});
      a.addEventListener('error', finish, {once: true});
      a.load();
    }
  });
});
</script>
"""


def _require_chromium():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is required in CI (.ci/run installs Debian's chromium package)")
        pytest.skip("Chromium not installed (apt-get install chromium); CI runs this test")


def dom_with_probe(report: Path, probe: str, tmp_path: Path, *flags: str) -> str:
    """The DOM headless Chromium holds once ``report``, with ``probe`` appended to its body, has run."""
    page = tmp_path / f"probe-{report.stem}.html"
    page.write_text(report.read_text().replace("</body>", probe + "</body>"))
    return subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            *flags,
            "--virtual-time-budget=20000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout


def test_report_renders_and_audio_has_duration_in_chromium(demo_run, tmp_path):
    _require_chromium()
    report = demo_run / "02_convert_and_listen.html"
    dom = dom_with_probe(report, PROBE, tmp_path)
    match = re.search(r'<pre id="wb-durations">DURATIONS:([^<]*)</pre>', dom)
    assert match, "the page did not finish loading its audio players"
    durations = [float(x) for x in match.group(1).split(",") if x]
    assert len(durations) >= 2
    assert all(d > 0.5 for d in durations), durations
    assert "Convert &amp; listen" in dom or "Convert & listen" in dom

    shot = tmp_path / "report.png"
    subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile2'}",
            "--window-size=1280,2400",
            f"--screenshot={shot}",
            report.as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 20_000  # a rendered page, not a blank one


# Appended to a copy of report 05: once the page (its images included) has loaded, say what the first
# screen of a 1280x900 window shows and where the parameters, logs and warnings are.
FIRST_SCREEN_PROBE = """
<script>
window.addEventListener('load', () => {
  const height = window.innerHeight;
  const shown = el => !!el && el.getClientRects().length > 0;
  const onFirstScreen = el => {
    if (!shown(el)) return false;
    const r = el.getBoundingClientRect();
    return r.height > 0 && r.top >= 0 && r.bottom <= height;
  };
  const details = cls => Array.from(document.querySelectorAll('details.' + cls)).map(d => ({
    open: d.open, text: d.textContent, rows: d.querySelectorAll('tr').length}));
  const verdict = document.querySelector('.wb-verdict');
  const codeInputs = Array.from(document.querySelectorAll(
    '.jp-CodeMirrorEditor, .jp-InputPrompt, .jp-Cell-inputWrapper .highlight')).filter(shown);
  const stderr = document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]');
  const out = document.createElement('pre');
  out.id = 'wb-first-screen';
  out.textContent = JSON.stringify({
    height: height,
    width: window.innerWidth,
    verdict: verdict ? verdict.textContent : null,
    verdictOnFirstScreen: onFirstScreen(verdict),
    audioOnFirstScreen: Array.from(document.querySelectorAll('audio')).filter(onFirstScreen).length,
    codeInputsShown: codeInputs.length,
    parameters: details('wb-parameters'),
    log: details('wb-log'),
    stderrBoxes: stderr.length,
    visibleText: document.body.innerText,
  });
  document.body.appendChild(out);
});
</script>
"""


def test_evaluation_report_opens_with_the_verdict_and_a_player_in_chromium(demo_run, tmp_path):
    """The first screen of report 05 answers: the verdict and a player; code, parameters and logs are out of the way."""
    _require_chromium()
    import html as html_module
    import json

    report = demo_run / "05_evaluate" / "05_evaluate.html"
    dom = dom_with_probe(report, FIRST_SCREEN_PROBE, tmp_path, "--window-size=1280,900")
    match = re.search(r'<pre id="wb-first-screen">([^<]*)</pre>', dom)
    assert match, "the report did not finish loading"
    seen = json.loads(html_module.unescape(match.group(1)))
    assert seen["width"] == 1280 and 0 < seen["height"] <= 900, seen["height"]

    # The answer: the verdict on the first screen, and a player there too.
    executed = json.loads((demo_run / "05_evaluate" / "05_evaluate.ipynb").read_text())
    answer = next(c for c in executed["cells"] if "answer" in c["metadata"].get("tags", []))
    answer_html = "".join(answer["outputs"][0]["data"]["text/html"])
    assert seen["verdict"] and seen["verdict"] in html_module.unescape(answer_html)
    assert re.match(r"(Yes|No|No verdict|Best adapter)\b", seen["verdict"]), seen["verdict"]
    assert seen["verdictOnFirstScreen"], "the verdict is below the first screen"
    assert seen["audioOnFirstScreen"] >= 1, "no audio player on the first screen"

    # No code; the parameters in one collapsed table; logs and warnings in one collapsed section.
    assert seen["codeInputsShown"] == 0
    assert len(seen["parameters"]) == 1 and not seen["parameters"][0]["open"]
    assert "max_new_tokens" in seen["parameters"][0]["text"] and seen["parameters"][0]["rows"] > 10
    visible = seen["visibleText"]
    assert "max_new_tokens" not in visible and "codes_cache_dir" not in visible  # folded away
    assert len(seen["log"]) == 1 and not seen["log"][0]["open"] and seen["stderrBoxes"] == 0
    logged = [
        "".join(o["text"])
        for c in executed["cells"]
        for o in c.get("outputs", [])
        if o["output_type"] == "stream" and o["name"] == "stderr"
    ]
    assert logged, "the evaluation logs at INFO level: its notebook has stderr output"
    for text in logged:  # every log line and warning is in the log section, none on the page
        for line in (ln.strip() for ln in text.splitlines()):
            if len(line) > 20:  # long enough not to occur on the page by chance
                assert line in seen["log"][0]["text"], line
                assert line not in visible, line
    assert not re.search(r"\b\w*Warning\b:", visible)
