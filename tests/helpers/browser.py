"""Headless Chromium driven over the DevTools protocol: load a page at a width, in screen or print media,
run a layout check in it, take a full-page screenshot, print it to PDF.

`Browser()` skips the test (with the reason) when Chromium or `websocket-client` is missing.
"""

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

# Layout check run in the page: every element and every text stays inside its parent horizontally (and
# the page does not scroll sideways); in every <svg>, every <text> lies inside the svg and no two texts
# overlap.
LAYOUT_JS = r"""
(() => {
  const problems = [];
  const docW = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > docW + 1)
    problems.push(`page scrolls sideways: ${document.documentElement.scrollWidth} > ${docW}`);
  const name = (e) => e.tagName.toLowerCase() + (e.className && typeof e.className === 'string' ? '.' + e.className.split(' ').join('.') : '') + ' "' + (e.textContent || '').trim().slice(0, 40) + '"';
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest('svg') && el.tagName.toLowerCase() !== 'svg') continue;
    const parent = el.parentElement;
    if (!parent || getComputedStyle(el).display === 'none') continue;
    const r = el.getBoundingClientRect(), p = parent.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.right > p.right + 1 || r.left < p.left - 1)
      problems.push(`overflow: ${name(el)} [${r.left.toFixed(0)}, ${r.right.toFixed(0)}] outside ${name(parent)} [${p.left.toFixed(0)}, ${p.right.toFixed(0)}]`);
    if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== 'visible')
      problems.push(`scrolls: ${name(el)} ${el.scrollWidth} > ${el.clientWidth}`);
  }
  // text is no element: check every text node against the element that holds it
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const holder = node.parentElement;
    if (!node.textContent.trim() || holder.closest('svg') || holder.closest('title')) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const r = range.getBoundingClientRect(), p = holder.getBoundingClientRect();
    if (r.right > p.right + 1 || r.left < p.left - 1)
      problems.push(`text overflows: "${node.textContent.trim().slice(0, 40)}" [${r.left.toFixed(0)}, ${r.right.toFixed(0)}] outside ${name(holder)} [${p.left.toFixed(0)}, ${p.right.toFixed(0)}]`);
  }
  let texts = 0;
  for (const svg of document.querySelectorAll('svg')) {
    const box = svg.getBoundingClientRect();
    const rects = [];
    for (const t of svg.querySelectorAll('text')) {
      const r = t.getBoundingClientRect();
      if (!t.textContent.trim()) continue;
      texts++;
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)
        problems.push(`clipped label "${t.textContent}" [${r.left.toFixed(1)}, ${r.right.toFixed(1)}] outside svg [${box.left.toFixed(1)}, ${box.right.toFixed(1)}]`);
      for (const [o, other] of rects) {
        const w = Math.min(r.right, o.right) - Math.max(r.left, o.left);
        const h = Math.min(r.bottom, o.bottom) - Math.max(r.top, o.top);
        if (w > 0.5 && h > 0.5) problems.push(`labels overlap: "${t.textContent}" and "${other}"`);
      }
      if (t.dataset.right !== undefined) {  // the room the label was given, in the svg's units
        const pt = svg.createSVGPoint();
        pt.x = parseFloat(t.dataset.right);
        pt.y = 0;
        const limit = pt.matrixTransform(svg.getScreenCTM()).x;
        if (r.right > limit + 0.5) problems.push(`label "${t.textContent}" exceeds its room: ${r.right.toFixed(1)} > ${limit.toFixed(1)}`);
      }
      rects.push([r, t.textContent]);
    }
  }
  return JSON.stringify({problems: problems.slice(0, 50), count: problems.length, texts,
                         svgs: document.querySelectorAll('svg').length, width: docW});
})()
"""


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium is not installed (CI installs it with `apt-get install -y chromium`)")
    return ""


class Browser:
    """One headless Chromium and one page, driven over the DevTools protocol."""

    def __init__(self) -> None:
        websocket = pytest.importorskip(
            "websocket", reason="websocket-client drives Chromium's DevTools protocol"
        )
        self.profile = Path(tempfile.mkdtemp(prefix="chaosstream-chromium-"))
        self.proc = subprocess.Popen(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-port=0",
             "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                pytest.fail("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            pages = [t for t in json.load(resp) if t.get("type") == "page"]
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60)
        self.next_id = 0

    def call(self, method: str, **params: Any) -> Dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def viewport(self, width: int, height: int) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def open(self, url: str, width: int, media: str = "screen", height: int = 1000) -> None:
        self.viewport(width, height)
        self.call("Emulation.setEmulatedMedia", media=media)
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        while self.evaluate("document.readyState") != "complete":
            if time.monotonic() > deadline:
                pytest.fail(f"{url} did not load")
            time.sleep(0.05)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def layout(self) -> Dict[str, Any]:
        return json.loads(self.evaluate(LAYOUT_JS))

    def screenshot(self, path: Path, width: int) -> None:
        self.viewport(width, int(self.evaluate("document.documentElement.scrollHeight") or 1000))
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def pdf(self, path: Path) -> None:
        data = self.call("Page.printToPDF", paperWidth=8.27, paperHeight=11.69, marginTop=0, marginBottom=0,
                         marginLeft=0, marginRight=0, preferCSSPageSize=True, printBackground=True)["data"]  # fmt: skip
        path.write_bytes(base64.b64decode(data))

    def close(self, _: Optional[Any] = None) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)
