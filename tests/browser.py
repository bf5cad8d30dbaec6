"""A real browser for the tests: headless Chromium (Debian's `chromium`; CI installs it, .ci/run)
driven through the DevTools protocol over a pipe (`--remote-debugging-pipe`: no port, no extra
package). Pages are read as they render: the text of the DOM after its scripts ran, elements
clicked by JavaScript, a screenshot.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.servers import ServerMissing, kill_tree


def chromium_path() -> str:
    # Debian's /usr/bin/chromium is a launcher script; the browser itself is /usr/lib/chromium/chromium.
    for name in ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise ServerMissing("Chromium is not installed (Debian: apt-get install chromium)")


class Browser:
    """One headless Chromium with a fresh profile and one page; `with Browser() as b: b.open(url)`."""

    def __init__(self, width: int = 1600, height: int = 1000):
        self.profile = Path(tempfile.mkdtemp(prefix="matnet-chromium-"))
        # fd 3: what Chromium reads (our commands), fd 4: what it writes (replies and events). Its ends
        # are moved above 10 first, so that putting them at 3 and 4 cannot overwrite one another.
        ends = [os.pipe(), os.pipe()]
        to_chrome_r, from_chrome_w = (fcntl.fcntl(ends[0][0], fcntl.F_DUPFD, 10),
                                      fcntl.fcntl(ends[1][1], fcntl.F_DUPFD, 10))
        os.close(ends[0][0])
        os.close(ends[1][1])
        self._to_chrome, self._from_chrome = ends[0][1], ends[1][0]
        args = [chromium_path(), "--headless", "--remote-debugging-pipe", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root (CI containers)

        def at_3_and_4() -> None:  # in the child, before exec; pass_fds keeps 3 and 4 open
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, pass_fds=(3, 4), preexec_fn=at_3_and_4,
                                     start_new_session=True)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.session = None
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.call("Page.enable")

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        kill_tree(self.proc.pid)
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    # ---- the protocol ----------------------------------------------------------------------------
    def _read_message(self, timeout: float) -> dict:
        import select
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium exited ({self.proc.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, timeout: float = 60, **params: Any) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read_message(timeout)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    # ---- pages -----------------------------------------------------------------------------------
    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 90, what: str = "") -> Any:
        """Evaluate `expression` until it is truthy (the page rendered it); its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText : ''") or ""
                raise TimeoutError(f"{what or expression}: not on the page after {timeout:.0f} s; it shows:\n"
                                   f"{text[:2000]}")
            time.sleep(0.5)

    def click_button_beside(self, selector: str, levels: int = 4) -> bool:
        """Click the first button found walking up from the element `selector` matches (at most `levels`
        parents): the expander of a row in MLflow's runs table, beside the run's link. Whether one was."""
        return bool(self.evaluate(f"""(() => {{
            let cell = document.querySelector({json.dumps(selector)});
            for (let i = 0; i < {levels} && cell; i++) {{
                cell = cell.parentElement;
                const button = cell && cell.querySelector("button");
                if (button) {{ button.click(); return true; }}
            }}
            return false; }})()"""))

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path
