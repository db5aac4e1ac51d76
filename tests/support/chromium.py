"""Headless Chromium for tests: the DOM after the page's scripts ran, and screenshots.

Each call starts a fresh browser with a fresh profile and lets it run the page for a *virtual*
time budget: timers (``setTimeout``/``setInterval``) fast-forward through it, while virtual time
stands still as long as a network fetch is pending. So a page that fetches on load and then polls
is dumped after its fetches answered, however slow the machine, and without any sleep here. The
only wall-clock bound is the subprocess timeout, for a browser that hangs.

Chromium comes from Debian's ``chromium`` package (``scripts/ensure-tools.sh`` installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["ChromiumError", "dump_dom", "find_chromium", "screenshot"]

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")

# What every run passes. --no-sandbox: Chromium refuses to start as root with its sandbox on
# (and containers rarely allow the user namespaces it needs otherwise). The rest keep a test
# browser from talking to the internet or to a desktop: no component updates, no background
# requests, no first-run UI, no /dev/shm (often tiny in containers).
BASE_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
)

STDERR_TAIL_CHARS = 2000


class ChromiumError(RuntimeError):
    """Chromium failed, timed out, or produced nothing; the message carries its stderr tail."""


def find_chromium() -> str:
    """The path of a Chromium (or Chrome) executable on PATH."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError(
        f"no headless browser found: looked for {', '.join(CANDIDATES)} on PATH. Install "
        "Chromium (Debian: apt-get install --no-install-recommends chromium, or run "
        "scripts/ensure-tools.sh as root)."
    )


def dump_dom(url: str, *, budget_ms: int = 10000, timeout_s: float = 60.0) -> str:
    """The serialized DOM of ``url`` once ``budget_ms`` of virtual time has passed."""
    out, err = _run(["--dump-dom", url], budget_ms=budget_ms, timeout_s=timeout_s)
    if "<html" not in out.lower():
        # E.g. connection refused: Chromium still exits 0, prints nothing, logs the error.
        raise ChromiumError(f"chromium --dump-dom printed no document for {url}{_tail(err)}")
    return out


def screenshot(
    url: str,
    path: Path,
    *,
    width: int = 1280,
    height: int = 900,
    budget_ms: int = 10000,
    timeout_s: float = 60.0,
) -> None:
    """Save a PNG of the ``width``x``height`` viewport of ``url`` after ``budget_ms``."""
    path = path.resolve()
    path.unlink(missing_ok=True)
    _, err = _run(
        [f"--screenshot={path}", f"--window-size={width},{height}", "--hide-scrollbars", url],
        budget_ms=budget_ms,
        timeout_s=timeout_s,
    )
    if not path.is_file() or path.stat().st_size == 0:
        raise ChromiumError(f"chromium wrote no screenshot to {path} for {url}{_tail(err)}")


def _run(args: Sequence[str], *, budget_ms: int, timeout_s: float) -> tuple[str, str]:
    """Run Chromium with ``args`` in a fresh profile; its stdout and stderr, or ChromiumError."""
    if budget_ms <= 0:
        raise ValueError("budget_ms must be positive")
    executable = find_chromium()
    with tempfile.TemporaryDirectory(
        prefix="liaison-chromium-", ignore_cleanup_errors=True
    ) as profile:
        command = [
            executable,
            *BASE_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            *args,
        ]
        # Its own session, so a hung browser is stopped with all its helper processes. Helpers
        # inherit stdout/stderr, so communicate() returns only once they are all gone too.
        with subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            start_new_session=True,
            env={**os.environ, "HOME": profile},
        ) as process:
            try:
                out, err = process.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                # Still running, so the group is still ours: stop it with its helpers.
                os.killpg(process.pid, signal.SIGKILL)
                _, err = process.communicate()
                raise ChromiumError(
                    f"chromium did not finish within {timeout_s:g} s for {args[-1]}{_tail(err)}"
                ) from None
    if process.returncode != 0:
        raise ChromiumError(
            f"chromium exited with status {process.returncode} for {args[-1]}{_tail(err)}"
        )
    return out, err


def _tail(stderr: str) -> str:
    # Without a desktop session Chromium logs a screenful of D-Bus connection errors; they are
    # never the cause, and would push the line that is out of the tail.
    lines = [line for line in stderr.splitlines() if "dbus/" not in line and line.strip()]
    tail = "\n".join(lines)[-STDERR_TAIL_CHARS:]
    return f"; stderr ends:\n{tail}" if tail else "; stderr was empty"
