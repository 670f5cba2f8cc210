"""suspend_app.py with two Python threads competing for the GIL.

The first request starts two daemon threads that keep running Python code, so the
GIL is contended on every switch between green threads. Answers exactly as
suspend_app.py.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import suspend_app  # noqa: E402

_lock = threading.Lock()
_started = []
SPINS = [0]


def _spin():
    while True:
        total = 0
        for i in range(20000):
            total += i
        SPINS[0] += 1
        time.sleep(0.0005)


def application(environ, start_response):
    with _lock:
        if not _started:
            for _ in range(2):
                threading.Thread(target=_spin, daemon=True).start()
            _started.append(True)
    return suspend_app.application(environ, start_response)
