"""``python main.py --workers N``: N processes serving one port (issue 17, docs/SCALING.md).

The parent binds one listening socket per worker on the same address with ``SO_REUSEPORT`` (the kernel spreads
new connections across them; a busy port fails here, before any fork), then forks the workers. Each worker is
an ordinary bkvy process on its socket: its own services and config, uvicorn's graceful SIGINT/SIGTERM, its own
SIGHUP reload. The parent only relays: SIGTERM and SIGHUP go to every worker (SIGINT from a terminal reaches the
whole process group already), and it exits once every worker has, with the first non-zero status.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Callable

WORKERS_NEED_REDIS = (
    "bkvy: --workers {count} needs REDIS_URL: without shared state each worker would allow every key's full rate "
    "limits (and keep its own circuits, client keys and spend). Fix: set REDIS_URL, or run one worker"
)


def bind_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets = []
    for _ in range(count):
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind((host, port))
        listener.listen(2048)
        listener.set_inheritable(True)
        sockets.append(listener)
    return sockets


def serve_workers(sockets: list[socket.socket], run_worker: Callable[[socket.socket], int]) -> int:
    """Fork one worker per socket (``run_worker(sock)`` is its whole life); relay signals; reap them."""
    children: list[int] = []
    for index, listener in enumerate(sockets):
        pid = os.fork()
        if pid == 0:  # the worker
            for other in sockets[:index] + sockets[index + 1 :]:
                other.close()
            code = 1
            try:
                code = run_worker(listener)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
    for listener in sockets:
        listener.close()

    def relay(signum: int, _frame: object) -> None:
        for child in children:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, relay)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, relay)
    signal.signal(signal.SIGINT, lambda _signum, _frame: None)  # the workers got it too: wait for them
    status = 0
    for child in children:
        _pid, wait_status = os.waitpid(child, 0)
        code = os.waitstatus_to_exitcode(wait_status)
        if code not in (0, -signal.SIGTERM, -signal.SIGINT) and status == 0:
            status = code if code > 0 else 1
    return status
