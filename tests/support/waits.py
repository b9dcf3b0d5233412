"""The one way the tests wait: poll a condition until it holds or a deadline passes.

Every time limit of the suite goes through ``scaled``: under a sanitizer or valgrind the
servers are slower, and ``AIOWSGI_SLOW=N`` (tools/sanitizer-test.sh sets 2, tools/valgrind.sh 5)
multiplies the limits instead of each test guessing.
"""

import os
import time

SLOW = float(os.environ.get("AIOWSGI_SLOW", "1"))


def scaled(seconds):
    """A time limit, stretched by ``AIOWSGI_SLOW``."""
    return seconds * SLOW


def wait_for(predicate, timeout=10.0, interval=0.02):
    """Call ``predicate()`` until it returns a true value, and return that value; once
    ``timeout`` seconds (scaled) have passed, return its last, false, value."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
