"""--reload (the workers restart when an imported module's source, or an extra file, changes;
a change that does not compile keeps the old workers), --max-rss (a worker grown past it is
replaced gracefully) and --preload (the app is imported once, in the master), through the
real command."""

import os
import signal
import sys
import threading
import time

from tests.support.client import get, get_json
from tests.support.server import proc_status_kib, run_command, write_cli_app
from tests.support.waits import wait_for

RELOAD_TIMEOUT = 20


def version_is(server, version):
    def check():
        try:
            return get_json(server.address, timeout=5)["version"] == version
        except (OSError, AssertionError):
            return False
    return check


# -- --reload -------------------------------------------------------------------------------

def test_reload_restarts_the_workers_when_the_app_source_changes(start, tmp_path):
    server = start.cli("-b", "127.0.0.1:0", "-w", "2", "--reload", "app:app")
    old = set(server.children())
    assert get_json(server.address)["version"] == "1"
    time.sleep(0.5)  # the workers have told the master what they imported
    write_cli_app(tmp_path, version="2")
    assert wait_for(version_is(server, "2"), timeout=RELOAD_TIMEOUT)
    assert wait_for(lambda: not old & set(server.children())
                    and len(server.children()) == 2, timeout=RELOAD_TIMEOUT)
    assert "Changed: %s" % (tmp_path / "app.py") in server.stderr()


def test_reload_sees_a_module_imported_on_a_first_request(start, tmp_path):
    (tmp_path / "late.py").write_text("ANSWER = b'first'\n")
    (tmp_path / "lazy.py").write_text(
        "def app(environ, start_response):\n"
        "    import late\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [late.ANSWER]\n")
    server = start.cli("-b", "127.0.0.1:0", "--reload", "lazy:app")
    assert get(server.address).body == b"first"
    time.sleep(2)  # the worker looks at sys.modules every second
    (tmp_path / "late.py").write_text("ANSWER = b'second'\n")
    assert wait_for(lambda: get(server.address).body == b"second", timeout=RELOAD_TIMEOUT)


def test_reload_keeps_the_old_workers_when_the_new_code_does_not_compile(start, tmp_path):
    server = start.cli("-b", "127.0.0.1:0", "--reload", "app:app")
    old = set(server.children())
    time.sleep(0.5)
    (tmp_path / "app.py").write_text("def app(:\n")
    assert server.wait_stderr("The running workers keep serving", timeout=RELOAD_TIMEOUT)
    assert "Not reloading: SyntaxError in %s, line 1" % (tmp_path / "app.py") \
        in server.stderr()
    assert get_json(server.address)["version"] == "1"
    assert set(server.children()) == old
    write_cli_app(tmp_path, version="fixed")
    assert wait_for(version_is(server, "fixed"), timeout=RELOAD_TIMEOUT)


def test_reload_extra_file_and_replaced_files(start, tmp_path):
    extra = tmp_path / "settings.txt"
    extra.write_text("a")
    server = start.cli("-b", "127.0.0.1:0", "--reload", "--reload-extra-file", str(extra),
                       "app:app")
    old = set(server.children())
    (tmp_path / "new-settings.txt").write_text("b")
    os.replace(tmp_path / "new-settings.txt", extra)  # as editors save: a new file renamed
    assert wait_for(lambda: server.children() and not old & set(server.children()),
                    timeout=RELOAD_TIMEOUT)
    assert "Changed: %s" % extra in server.stderr()


def test_reload_needs_an_import_string_and_not_preload(tmp_path):
    write_cli_app(tmp_path)
    result = run_command([sys.executable, "-m", "aiowsgi", "--reload", "--preload", "app:app"],
                         cwd=tmp_path)
    assert result.returncode == 2
    assert "--reload and --preload cannot be used together" in result.stderr


# -- --max-rss -----------------------------------------------------------------------------

GROWING_APP = """
import os
from tests.support.apps import reporting_app

_hoard = []
_report = reporting_app("grows")

def app(environ, start_response):
    if environ["PATH_INFO"] == "/grow":
        _hoard.append(bytearray(60 * 1024 * 1024))  # touched: resident
    return _report(environ, start_response)
"""


def test_max_rss_replaces_a_grown_worker_after_its_requests(start, tmp_path):
    (tmp_path / "growing.py").write_text(GROWING_APP)
    # the limit: 30 MB over what a fresh worker holds here (much more under a sanitizer), so
    # that only /grow's 60 MB passes it
    probe = start.cli("-b", "127.0.0.1:0", "growing:app")
    get_json(probe.address)
    limit = proc_status_kib(probe.children()[0], "VmRSS") // 1024 + 30
    probe.stop()
    server = start.cli("-b", "127.0.0.1:0", "--max-rss", str(limit), "--graceful-timeout", "10",
                       "growing:app")
    (old,) = server.children()
    finished = {}

    def slow():  # in flight when the worker is told to go: it must still be answered
        finished["pid"] = get_json(server.address, "/sleep?1.5", timeout=15)["pid"]

    assert get_json(server.address, "/grow")["pid"] == old
    thread = threading.Thread(target=slow)
    thread.start()
    assert server.wait_stderr("more than --max-rss %d; replacing it" % limit, timeout=10)
    thread.join(15)
    assert finished.get("pid") == old  # answered by the big worker, before it left
    assert wait_for(lambda: server.children() and old not in server.children(), timeout=20)
    assert get_json(server.address)["pid"] != old


# -- --preload -----------------------------------------------------------------------------

PRELOADED_APP = """
import os
from tests.support.apps import reporting_app

IMPORTED_IN = os.getpid()
_report = reporting_app("preloaded")

def app(environ, start_response):
    environ["PATH_INFO"] = "/imported-in-%d" % IMPORTED_IN
    return _report(environ, start_response)
"""


def test_preload_imports_the_app_once_in_the_master(start, tmp_path):
    (tmp_path / "pre.py").write_text(PRELOADED_APP)
    server = start.cli("-b", "127.0.0.1:0", "-w", "2", "--preload", "pre:app")
    answer = get_json(server.address)
    assert answer["path"] == "/imported-in-%d" % server.pid
    assert answer["ppid"] == server.pid and answer["pid"] != server.pid
    # SIGHUP restarts the workers with the code the master holds, not the code on disk
    old = set(server.children())
    (tmp_path / "pre.py").write_text(PRELOADED_APP.replace('"preloaded"', '"edited"'))
    server.signal(signal.SIGHUP)
    assert wait_for(lambda: len(server.children()) == 2 and not old & set(server.children()),
                    timeout=20)
    assert get_json(server.address)["version"] == "preloaded"


def test_preload_reports_an_import_error_before_any_worker_starts(tmp_path):
    (tmp_path / "broken.py").write_text("1 / 0\n")
    result = run_command([sys.executable, "-m", "aiowsgi", "--preload", "-b", "127.0.0.1:0",
                          "broken:app"], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "aiowsgi: cannot import 'broken:app': ZeroDivisionError: division by zero"]
