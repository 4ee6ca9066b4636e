"""The directory as a browser sees it: headless Chromium (Debian's, ``/usr/bin/chromium``) against the
real app served over HTTP from this process (a threaded WSGI server, static files included).

- ``directory_load_3000_vs_10``: navigation start to DOMContentLoaded of ``/links/`` (the browser's
  own Navigation Timing, deferred scripts included) for the 3,000-link person ÷ the 10-link person.
- ``directory_filter_vs_frame``: from a typed character's ``input`` event to the second animation
  frame after it, in the directory's filter ÷ the same in an input nothing listens to (the floor
  the browser's own typing and frame rate set). Median ÷ median; the 90th percentile ÷ the
  floor's 90th percentile is checked against 1.5 (the floor's own spread, an event landing just
  before or just after a frame, is in both).
"""

from __future__ import annotations

import os
import shutil
import statistics
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application
from django.urls import NoReverseMatch, reverse

from bench.report import Result
from bench.seed import Seeded

CHROMIUM = os.environ.get("SWITCHYARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
# Typed into both inputs, one character at a time; "\b" clears the field (one input event).
TYPED = ("globex retail\bprod eng\bstark labs on\bacme 00\b")

# Installed in the page: for every input event on ``el``, the time from the event to the second
# animation frame after it. Registered in the capture phase on the window, so it runs before the
# page's own listener and its rAF requests are queued first.
_MEASURE_JS = """
(selector) => {
  const el = document.querySelector(selector);
  window.__bench = window.__bench || {times: {}, pending: 0};
  window.__bench.times[selector] = [];
  window.addEventListener("input", (event) => {
    if (event.target !== el) return;
    const start = event.timeStamp;
    window.__bench.pending += 1;
    requestAnimationFrame(() => requestAnimationFrame(() => {
      window.__bench.times[selector].push(performance.now() - start);
      window.__bench.pending -= 1;
    }));
  }, true);
}
"""


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@contextmanager
def _serving() -> Iterator[str]:
    server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler, allow_reuse_address=False)
    server.set_app(StaticFilesHandler(get_wsgi_application()))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _session_cookie(user: Any, base: str) -> dict[str, Any]:
    from bench.metrics import signed_in

    client = signed_in(user)
    return {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
            "url": base}


def _dom_content_loaded_ms(page: Any, url: str) -> float:
    page.goto(url, wait_until="domcontentloaded")
    return float(page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return n.domContentLoadedEventEnd - n.startTime; }"
    ))


def _type_and_measure(page: Any, selector: str) -> list[float]:
    page.evaluate(_MEASURE_JS, selector)
    page.focus(selector)
    for char in TYPED:
        if char == "\b":
            page.keyboard.press("Control+A")
            page.keyboard.press("Delete")
        else:
            page.keyboard.type(char)
        page.wait_for_function("() => window.__bench.pending === 0")
        page.wait_for_timeout(40)
    return [float(t) for t in page.evaluate("(s) => window.__bench.times[s]", selector)]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def directory_in_browser(seeded: Seeded, *, repeats: int) -> list[Result]:
    load = Result("directory_load_3000_vs_10", target=3, unit="x")
    typing = Result("directory_filter_vs_frame", target=1.1, unit="x")
    try:
        path = reverse("switchroles:directory")
    except NoReverseMatch:
        for result in (load, typing):
            result.missing = "the directory (URL name switchroles:directory, /links/) does not exist yet"
        return [load, typing]
    if not shutil.which(CHROMIUM):
        for result in (load, typing):
            result.missing = f"headless Chromium ({CHROMIUM}) is not installed"
        return [load, typing]
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the ORM runs beside Playwright's loop
    with _serving() as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            times: dict[str, list[float]] = {}
            counts: dict[str, int] = {}
            for who, person in (("10", seeded.ten), ("3000", seeded.many)):
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.add_cookies([_session_cookie(person, base)])
                page = context.new_page()
                _dom_content_loaded_ms(page, base + path)  # warm-up: caches, connections, compiled code
                counts[who] = int(page.evaluate(
                    "() => JSON.parse(document.getElementById('directory-index').textContent).links.length"))
                times[who] = [_dom_content_loaded_ms(page, base + path) for _ in range(repeats)]
                if who == "3000":
                    page.evaluate("() => { const i = document.createElement('input'); i.id = 'bench-idle';"
                                  " document.body.appendChild(i); }")
                    idle = _type_and_measure(page, "#bench-idle")
                    filtered = _type_and_measure(page, "#link-filter")
                context.close()
        finally:
            browser.close()
    small, large = statistics.median(times["10"]), statistics.median(times["3000"])
    load.value = large / small
    load.details = {"dcl_ms_10": small, "dcl_ms_3000": large, "times_ms_10": times["10"],
                    "times_ms_3000": times["3000"], "links": counts,
                    "summary": f"DOMContentLoaded {large:.0f} ms at {counts['3000']} links / {small:.0f} ms at "
                               f"{counts['10']}"}
    load.checks = {"pages_list_the_expected_links": counts == {"10": len(seeded.role_ids_for(0)),
                                                                "3000": len(seeded.role_ids_for(1))}}
    floor = statistics.median(idle)
    typing.value = statistics.median(filtered) / floor
    p90 = _percentile(filtered, 0.9) / _percentile(idle, 0.9)
    typing.details = {"filter_median_ms": statistics.median(filtered), "filter_p90_ms": _percentile(filtered, 0.9),
                      "floor_median_ms": floor, "floor_p90_ms": _percentile(idle, 0.9), "p90_vs_floor_p90": p90,
                      "keystrokes": len(filtered),
                      "summary": f"input to 2nd frame: filter {statistics.median(filtered):.1f} ms (p90 "
                                 f"{_percentile(filtered, 0.9):.1f}) / idle input {floor:.1f} ms"}
    typing.checks = {"p90_within_1.5x_floor_p90": p90 <= 1.5, "every_keystroke_measured": len(filtered) == len(idle)}
    return [load, typing]
