"""Where options come from (SPEC sections 2 and 9): ``-c/--config FILE`` (a Python file),
``AIOWSGI_<OPTION>`` variables, their precedence (command line, environment, file, default),
``--print-config`` and ``--check-config``; all through the real command."""

import sys
import textwrap

import pytest

from aiowsgi.config import Config
from aiowsgi.configfile import from_environment, merge, read_file
from tests.support.client import get_json
from tests.support.server import run_command, write_cli_app


def run_cli(*args, cwd, env=None):
    return run_command([sys.executable, "-m", "aiowsgi", *args], cwd=cwd, env=env)


def write_config(directory, text, name="conf.py"):
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def printed(result):
    """--print-config's lines as {name: (value as written, source)}."""
    rows = {}
    for line in result.stdout.splitlines():
        setting, _, source = line.partition("  # ")
        name, _, value = setting.partition(" = ")
        rows[name.strip()] = (value.strip(), source.strip())
    return rows


# -- the config file -------------------------------------------------------------------------

def test_config_file_options_and_app_serve(start, tmp_path):
    write_cli_app(tmp_path, version="from-file")
    write_config(tmp_path, """
        import multiprocessing  # a module: not an option
        workers = 2
        bind = ["127.0.0.1:0"]
        wsgi_app = "app:app"
        _helper = multiprocessing.cpu_count()  # a leading underscore: not an option
    """)
    server = start.cli("-c", "conf.py")
    assert "(2 workers)" in server.stderr()
    assert get_json(server.address)["version"] == "from-file"
    assert len(server.children()) == 2


def test_unknown_name_in_the_config_file_suggests_the_closest(tmp_path):
    write_cli_app(tmp_path)
    write_config(tmp_path, "worker = 2\n")
    result = run_cli("-c", "conf.py", "app:app", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown option 'worker' in config file conf.py; did you mean 'workers'?" \
        in result.stderr
    write_config(tmp_path, "accesslog = '-'\n")  # gunicorn's spelling
    result = run_cli("-c", "conf.py", "app:app", cwd=tmp_path)
    assert "unknown option 'accesslog' in config file conf.py; did you mean 'access_log'?" \
        in result.stderr


def test_an_error_in_the_config_file_is_reported(tmp_path):
    write_cli_app(tmp_path)
    write_config(tmp_path, "workers = 1 / 0\n")
    result = run_cli("-c", "conf.py", "app:app", cwd=tmp_path)
    assert result.returncode == 2
    assert "error in config file conf.py: ZeroDivisionError: division by zero" in result.stderr
    result = run_cli("-c", "missing.py", "app:app", cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot read config file missing.py: No such file or directory" in result.stderr


def test_an_invalid_value_names_where_it_came_from(tmp_path):
    write_cli_app(tmp_path)
    write_config(tmp_path, "workers = 0\n")
    result = run_cli("-c", "conf.py", "app:app", cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid --workers 0: expected a whole number >= 1 (from the config file conf.py)" \
        in result.stderr
    result = run_cli("app:app", cwd=tmp_path, env={"AIOWSGI_WORKERS": "many"})
    assert result.returncode == 2
    assert "invalid AIOWSGI_WORKERS='many': expected a whole number" in result.stderr


# -- the environment and the precedence -------------------------------------------------------

def test_precedence_is_command_line_then_environment_then_file_then_default(tmp_path):
    write_config(tmp_path, """
        workers = 3
        keepalive = 7
        backlog = 100
    """)
    result = run_cli("-c", "conf.py", "--print-config", "--keepalive", "9", "app:app",
                     cwd=tmp_path, env={"AIOWSGI_KEEPALIVE": "8", "AIOWSGI_BACKLOG": "200",
                                        "AIOWSGI_MAX_REQUESTS": "50"})
    assert result.returncode == 0, result.stderr
    rows = printed(result)
    assert rows["keepalive"] == ("9.0", "command line")
    assert rows["backlog"] == ("200", "environment AIOWSGI_BACKLOG")
    assert rows["max_requests"] == ("50", "environment AIOWSGI_MAX_REQUESTS")
    assert rows["workers"] == ("3", "config file conf.py")
    assert rows["timeout"] == ("30.0", "default")
    assert rows["wsgi_app"] == ("'app:app'", "command line")


def test_environment_variables_of_every_kind(tmp_path):
    values = from_environment({
        "AIOWSGI_STREAM_INPUT": "yes", "AIOWSGI_PRELOAD": "0", "AIOWSGI_BIND":
        "127.0.0.1:1,unix:/tmp/x.sock", "AIOWSGI_GRACEFUL_TIMEOUT": "2.5",
        "AIOWSGI_LOG_LEVEL": "debug", "AIOWSGI_WERROR": "1", "PATH": "/bin"})
    assert values == {"stream_input": True, "preload": False,
                      "bind": ["127.0.0.1:1", "unix:/tmp/x.sock"], "graceful_timeout": 2.5,
                      "log_level": "debug"}  # AIOWSGI_WERROR is not an option: left alone
    config = Config(**values)
    assert config.bind == ("127.0.0.1:1", "unix:/tmp/x.sock")


def test_config_file_from_the_environment(start, tmp_path):
    write_cli_app(tmp_path, version="env-config")
    write_config(tmp_path, "bind = '127.0.0.1:0'\nworkers = 2\n", name="elsewhere.py")
    server = start.cli("app:app", env={"AIOWSGI_CONFIG": "elsewhere.py"})
    assert "(2 workers)" in server.stderr()
    assert get_json(server.address)["version"] == "env-config"


def test_merge_reads_each_layer_once(tmp_path):
    path = write_config(tmp_path, "workers = 2\nthreads = 3\n")
    assert read_file(str(path)) == {"workers": 2, "threads": 3}
    values, sources = merge({"threads": 4}, {"AIOWSGI_WORKERS": "5"}, str(path))
    assert values == {"workers": 5, "threads": 4}
    assert sources == {"workers": "environment AIOWSGI_WORKERS", "threads": "command line"}


# -- --print-config, --check-config ---------------------------------------------------------

def test_print_config_shows_every_option_and_hooks(tmp_path):
    write_config(tmp_path, """
        def post_fork(server, worker):
            pass
    """)
    result = run_cli("-c", "conf.py", "--print-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = printed(result)
    assert rows["post_fork"][0].startswith("<hook post_fork at ")
    assert rows["post_fork"][1] == "config file conf.py"
    assert rows["wsgi_app"] == ("None", "not set")
    for field in ("bind", "workers", "metrics_bind", "access_log_format", "max_rss", "reload"):
        assert rows[field][1] == "default"


@pytest.mark.parametrize("setup, status, message", [
    ("fine", 0, "aiowsgi: configuration OK; 'app:app' imported"),
    ("broken_app", 1, "aiowsgi: cannot import 'app:app': ZeroDivisionError: division by zero"),
    ("bad_value", 1, "aiowsgi: invalid --max-rss -1: expected a whole number >= 0 (from the "
                     "config file conf.py)"),
    ("bad_hook", 1, "aiowsgi: invalid when_ready hook"),
])
def test_check_config_validates_and_imports_the_app(tmp_path, setup, status, message):
    write_cli_app(tmp_path)
    write_config(tmp_path, {"fine": "workers = 2\n", "broken_app": "", "bad_value":
                            "max_rss = -1\n", "bad_hook": "def when_ready():\n    pass\n"}[setup])
    if setup == "broken_app":
        (tmp_path / "app.py").write_text("1 / 0\n")
    result = run_cli("-c", "conf.py", "--check-config", "app:app", cwd=tmp_path)
    assert result.returncode == status, result.stderr
    assert message in (result.stdout + result.stderr)
