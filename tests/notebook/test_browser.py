"""A real browser opens an HTML report: it renders, and its audio players know their duration."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

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


def test_report_renders_and_audio_has_duration_in_chromium(demo_run, tmp_path):
    _require_chromium()
    report = demo_run / "02_convert_and_listen.html"
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    dom = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            probe_page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
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
