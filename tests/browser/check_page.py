#!/usr/bin/env python3
"""Opens an HTML page in headless Chromium and checks it as a reader would see it.

    check_page.py PAGE.html SCREENSHOT.png

Drives the browser over the DevTools protocol on a pipe (--remote-debugging-pipe: no port, no
websocket library; the standard library only). Checks that every <img> decoded, that every
<svg> was laid out with a size and text, that nothing was logged as an error or thrown, and
that the page asked for nothing outside itself (data: URIs only). Takes a full-page screenshot.
Prints one JSON object of what it found; exits 0 when all is well, 1 when something failed,
77 when no Chromium is installed (CHROMIUM names one explicitly).
"""

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TIMEOUT_S = 60
WIDTH = 1400
MAX_HEIGHT = 16000

PROBE = """(() => {
  const imgs = [...document.images].map(i => ({
    alt: i.alt, ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth, h: i.naturalHeight,
    src: i.src.slice(0, 30)}));
  const svgs = [...document.querySelectorAll('svg')].map(s => {
    const r = s.getBoundingClientRect();
    const texts = [...s.querySelectorAll('text')].map(t => t.textContent);
    return {w: r.width, h: r.height, texts: texts.length, title: texts[0] || ''};
  });
  const sections = [...document.querySelectorAll('section h2')].map(h => h.textContent);
  return {imgs, svgs, sections, height: document.documentElement.scrollHeight,
          title: document.title};
})()"""


def find_browser():
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """A headless Chromium and its DevTools pipe (messages are JSON ended by a NUL byte)."""

    def __init__(self, exe, profile):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        # The browser's ends moved above 9, so that putting them at 3 and 4 overwrites neither.
        to_chrome_r, from_chrome_w = (self._high(to_chrome_r), self._high(from_chrome_w))
        args = [
            "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}",
            f"--window-size={WIDTH},900", "about:blank",
        ]
        # fds 3 and 4 are the protocol's: bash (dash takes no fd above 9) puts the pipe ends there before exec.
        script = f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w} {to_chrome_r}<&- {from_chrome_w}>&-'
        self.proc = subprocess.Popen(
            ["bash", "-c", script, exe, *args],
            pass_fds=(to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.next_id = 0
        self.inbox = queue.Queue()
        self.events = []
        threading.Thread(target=self._read, daemon=True).start()
        self.stderr = []
        threading.Thread(target=self._read_stderr, daemon=True).start()

    @staticmethod
    def _high(fd):
        high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
        os.close(fd)
        return high

    def _read(self):
        buf = b""
        while True:
            chunk = os.read(self.from_chrome, 1 << 16)
            if not chunk:
                self.inbox.put(None)
                return
            buf += chunk
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                self.inbox.put(json.loads(msg))

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.stderr.append(line.decode(errors="replace").rstrip())

    def _next(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the browser did not answer in time")
        msg = self.inbox.get(timeout=left)
        if msg is None:
            raise RuntimeError("the browser closed its pipe:\n" + "\n".join(self.stderr[-20:]))
        return msg

    def call(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            m = self._next(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_for(self, method):
        for m in self.events:
            if m.get("method") == method:
                return m
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            m = self._next(deadline)
            self.events.append(m)
            if m.get("method") == method:
                return m

    def close(self):
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def problems_in(events, page_url):
    """Errors the page logged or threw, and anything it fetched from outside itself."""
    out = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            out.append("exception: " + d.get("exception", {}).get("description", d.get("text", "")))
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console error: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
            out.append(f"log error ({p['entry'].get('source')}): {p['entry'].get('text')} {p['entry'].get('url', '')}")
        elif m == "Network.loadingFailed":
            out.append(f"failed to load: {p.get('errorText')}")
        elif m == "Network.requestWillBeSent":
            url = p["request"]["url"]
            if not url.startswith("data:") and url != page_url:
                out.append("fetched from outside the page: " + url)
    return out


def check(exe, page, shot):
    url = page.resolve().as_uri()
    with tempfile.TemporaryDirectory() as profile:
        b = Browser(exe, profile)
        try:
            target = b.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            s = b.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime", "Log", "Page", "Network"):
                b.call(f"{domain}.enable", session=s)
            b.call("Page.navigate", {"url": url}, session=s)
            b.wait_for("Page.loadEventFired")
            found = b.call("Runtime.evaluate", {"expression": PROBE, "returnByValue": True}, session=s)
            found = found["result"]["value"]
            height = min(int(found["height"]), MAX_HEIGHT)
            b.call("Emulation.setDeviceMetricsOverride",
                   {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=s)
            png = b.call("Page.captureScreenshot", {"format": "png"}, session=s)["data"]
            Path(shot).write_bytes(base64.b64decode(png))
            found["problems"] = problems_in(b.events, url)
        finally:
            b.close()
    bad_imgs = [i for i in found["imgs"] if not i["ok"]]
    bad_svgs = [s for s in found["svgs"] if s["w"] <= 0 or s["h"] <= 0 or s["texts"] == 0]
    found["problems"] += [f"image not decoded: {i['alt']} ({i['src']}…)" for i in bad_imgs]
    found["problems"] += [f"svg without size or text: {s['title']!r}" for s in bad_svgs]
    found["screenshot"] = str(shot)
    found["browser"] = exe
    return found


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    page, shot = Path(sys.argv[1]), Path(sys.argv[2])
    if not page.is_file():
        sys.exit(f"check_page: {page}: no such file")
    exe = find_browser()
    if exe is None:
        print("check_page: no Chromium found (install Debian's chromium, e.g. `make browser`, or set CHROMIUM)")
        sys.exit(77)
    found = check(exe, page, shot)
    print(json.dumps(found, indent=1))
    sys.exit(1 if found["problems"] else 0)


if __name__ == "__main__":
    main()
