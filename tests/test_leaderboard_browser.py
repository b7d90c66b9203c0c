"""The leaderboard in a real browser: headless Chromium (Debian's ``chromium`` package) opens a site
built from a real run and is driven over the Chrome DevTools Protocol: the tables and the values of
summary.json are in the DOM, clicking a header sorts, the URL hash sorts, a hostile pipeline name
stays text, the site's images and CSS load under its Content-Security-Policy, and a screenshot is
written.

The protocol runs over a pipe (``--remote-debugging-pipe``: Chromium reads NUL-terminated JSON
commands on file descriptor 3 and writes replies and events on 4; Chrome DevTools Protocol,
https://chromedevtools.github.io/devtools-protocol/), so no extra Python package is needed.
Skipped, with the reason, where Chromium is not installed (``apt-get install chromium``).
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from bench.leaderboard.pages import build_site
from tests.conftest import write_suite

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--window-size=1280,1000")
EVIL = "<img src=x onerror=alert(1)>"
TIMEOUT = 30.0


class Chromium:
    """Headless Chromium with one page, driven over the DevTools protocol on a pipe."""

    def __init__(self, binary: str, profile: Path):
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()
        # the browser expects the pipe on fds 3 and 4: the pipe ends come in as stdin and stdout,
        # and the shell moves them there before it execs the browser
        script = 'exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null'
        self.proc = subprocess.Popen(["/bin/sh", "-c", script, binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe"],
                                     stdin=to_browser, stdout=from_browser, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._id, self.events = b"", 0, []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable", page=True)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def send(self, method: str, page: bool = False, **params) -> dict:
        """Send a command (to the page's session with ``page``) and return its result; events seen meanwhile are kept."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params} | ({"sessionId": self.session} if page else {})
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def open(self, url: str) -> None:
        """Load ``url`` afresh (through about:blank, so that a change of the URL hash alone loads the page too)."""
        for target in ("about:blank", url):
            self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
            self.send("Page.navigate", page=True, url=target)
            deadline = time.monotonic() + TIMEOUT
            while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
                self.events.append(self._read(deadline))

    def js(self, expression: str):
        """The value of a JavaScript expression in the page."""
        result = self.send("Runtime.evaluate", page=True, expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the centre of the element."""
        x, y = self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView({{block: 'center'}});"
                       " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", page=True, type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", page=True, format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._in)
        os.close(self._out)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium); the browser test needs it")
    chromium = Chromium(CHROMIUM, tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory, objects_root) -> tuple[Path, dict]:
    """A site built from a real run of the tiny suite with identity, oracle_reproject and a hostile name."""
    from bench.runner.execute import run
    from bench.runner.plan import RunOptions

    folder = tmp_path_factory.mktemp("lb")
    evil = folder / "evil.yaml"
    evil.write_text(f"name: '{EVIL}'\nstages:\n  - stage: copy_source\n")
    suite = write_suite(folder, objects_root, "primary_metric: psnr\n", name="name: srn_cars")  # shows SRN cars' published rows
    summary, out = run(suite, RunOptions(pipelines=["identity", "oracle_reproject", str(evil)], out=folder / "res", progress=False, visuals=2))
    return build_site([out], folder / "site").parent, summary


def rows(browser: Chromium, table: str = "t-image") -> list[list[str]]:
    """[pipeline, data-sort of each cell...] of the measured rows, in DOM order."""
    return browser.js(f"Array.from(document.querySelectorAll('#{table} tbody.measured tr')).map(r => "
                      "[r.cells[0].textContent.trim(), ...Array.from(r.cells).slice(1).map(c => c.dataset.sort)])")


def by(summary: dict, metric: str, desc: bool) -> list[str]:
    means = {p: r[metric]["mean"] for p, r in summary["results"].items()}
    return sorted(means, key=lambda p: -means[p] if desc else means[p])


def test_tables_hold_the_values_of_summary_json(browser, built):
    site, summary = built
    browser.open((site / "suite-srn_cars.html").as_uri())
    keys = browser.js("Array.from(document.querySelectorAll('#t-image thead th')).map(th => th.dataset.key)")
    assert keys == ["pipeline", "psnr", "ssim", "l1", "failures"]
    got = rows(browser)
    assert [r[0] for r in got] == by(summary, "psnr", desc=True)
    for name, *values in got:
        assert [float(v) for v in values[:3]] == [summary["results"][name][m]["mean"] for m in ("psnr", "ssim", "l1")]
    texts = browser.js("Array.from(document.querySelectorAll('#t-image tbody.measured td:nth-child(2)')).map(c => c.textContent)")
    assert all(f"({summary['results'][r[0]]['psnr']['n']})" in t for r, t in zip(got, texts))
    # published rows: a separate body, after the measured rows, styled apart by the site's CSS
    assert browser.js("document.querySelectorAll('#t-image tbody.published tr').length") >= 5
    assert browser.js("getComputedStyle(document.querySelector('tbody.published')).backgroundColor") == "rgb(246, 243, 234)"


def test_clicking_a_header_sorts_the_measured_rows(browser, built):
    site, summary = built
    browser.open((site / "suite-srn_cars.html").as_uri())
    published = browser.js("document.querySelector('#t-image tbody.published').textContent")
    browser.click("#t-image th[data-key=l1] button")
    assert [r[0] for r in rows(browser)] == by(summary, "l1", desc=False)  # lower is better: best first
    assert browser.js("location.hash") == "#sort=t-image:l1:asc"
    browser.click("#t-image th[data-key=l1] button")
    assert [r[0] for r in rows(browser)] == by(summary, "l1", desc=True)
    assert browser.js("document.querySelector('#t-image th[data-key=l1]').getAttribute('aria-sort')") == "descending"
    assert browser.js("document.querySelector('#t-image tbody.published').textContent") == published  # never reordered


def test_the_url_hash_sorts_on_load(browser, built):
    site, _ = built
    browser.open((site / "suite-srn_cars.html").as_uri() + "#sort=t-image:pipeline:desc")
    assert [r[0] for r in rows(browser)] == ["oracle_reproject", "identity", EVIL]


def test_a_hostile_pipeline_name_is_text(browser, built):
    site, _ = built
    pipeline_page = next(site.glob("pipeline-srn_cars._img*.html"))
    for url in ((site / "suite-srn_cars.html").as_uri(), pipeline_page.as_uri()):
        browser.open(url)
        assert browser.js("document.querySelectorAll('img[src=\"x\"], img[onerror]').length") == 0
        assert EVIL in browser.js("document.body.textContent")
    assert browser.js("document.querySelector('h1').firstChild.textContent.trim()") == EVIL
    assert not [e for e in browser.events if e.get("method") == "Page.javascriptDialogOpening"]
    # its sample grids were copied under a safe name and load under the page's policy
    assert browser.js("document.images.length") == 2
    assert browser.js("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")


def test_screenshot(browser, built, tmp_path):
    site, _ = built
    browser.open((site / "suite-srn_cars.html").as_uri())
    shot = browser.screenshot(tmp_path / "suite.png")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(data[16:20], "big") == 1280
    assert browser.js("document.querySelectorAll('figure.plot > svg').length") == 2  # angle and radius plots drawn
