"""The command line (SPEC section 2): --help and --version, usage errors, loading the app
(``module:attribute``, a module alone, a dotted attribute, a factory, --chdir) and one clear
line when it cannot be imported.  Binding, logging, signals and workers have files of their
own."""

import shutil

import pytest

import aiowsgi
from aiowsgi.config import Config, options
from tests.support.client import get, get_json
from tests.support.server import cli_usage_error, run_cli, run_command, write_cli_app


# -- --help, --version ---------------------------------------------------------------------

def test_help_lists_every_option_with_its_default(tmp_path):
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # undo argparse's line wrapping
    for field in options():
        for flag in field.metadata["flags"]:
            assert flag in text
    for shown in ("[default: 127.0.0.1:8000", "[default: 1]", "[default: 2048]",
                  "[default: 5]", "[default: 10]", "[default: 65536]", "[default: 1073741824]",
                  "[default: 1048576]", "[default: 0]", "[default: 30]", "[default: off]",
                  "[default: info]", "[default: 127.0.0.1,::1]"):
        assert shown in text
    assert "--version" in text and "APP" in text


def test_help_defaults_are_configs_defaults(tmp_path):
    text = " ".join(run_cli("--help", cwd=tmp_path).stdout.split())
    config = Config()
    assert "--workers N worker processes" in text
    assert "[default: %d]" % config.backlog in text
    assert "[default: %g]" % config.graceful_timeout in text


def test_version_prints_the_package_version(tmp_path):
    result = run_cli("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == "aiowsgi " + aiowsgi.__version__


def test_console_script_runs_the_same_main(tmp_path):
    script = shutil.which("aiowsgi")
    if script is None:
        pytest.skip("the aiowsgi console script is not installed (pip install .)")
    result = run_command([script, "--version"], cwd=tmp_path)
    assert result.stdout.strip() == "aiowsgi " + aiowsgi.__version__


def test_invalid_option_value_is_a_usage_error(tmp_path):
    assert "invalid --workers 0" in cli_usage_error("--workers", "0", "app:app", cwd=tmp_path)
    assert "invalid --bind 'localhost'" in cli_usage_error("-b", "localhost", "app:app",
                                                           cwd=tmp_path)


# -- app loading --------------------------------------------------------------------------

# how the app is named -> (modules written next to app.py, arguments, what it answers)
APP_FORMS = {
    "module_and_attribute": ({}, ["app:app"], None),
    "module_alone_uses_application_first": ({"both.py": (
        "from app import app\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '11')])\n"
        "    return [b'application']\n")}, ["both"], b"application"),
    "module_alone_falls_back_to_app": ({"only_app.py": "from app import app\n"},
                                       ["only_app"], None),
    "dotted_attribute_in_a_package": ({"pkg/__init__.py": "", "pkg/web.py": (
        "from app import app as _app\n"
        "class Holder:\n"
        "    wsgi = staticmethod(_app)\n")}, ["pkg.web:Holder.wsgi"], None),
    "factory_called_to_make_the_app": ({"factory.py": (
        "def create():\n"
        "    def made(environ, start_response):\n"
        "        start_response('200 OK', [('Content-Length', '4')])\n"
        "        return [b'made']\n"
        "    return made\n")}, ["--factory", "factory:create"], b"made"),
}


@pytest.mark.parametrize("form", sorted(APP_FORMS))
def test_app_is_imported_from_the_current_directory(start, tmp_path, form):
    modules, args, answer = APP_FORMS[form]
    for name, source in modules.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(source)
    server = start.cli("-b", "127.0.0.1:0", *args)
    if answer is None:  # the app of app.py
        assert get_json(server.address)["version"] == "1"
    else:
        assert get(server.address).body == answer


def test_chdir_changes_directory_before_importing(start, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_cli_app(elsewhere, "remote_app", version="chdir")
    server = start.cli("-b", "127.0.0.1:0", "--chdir", str(elsewhere), "remote_app:app")
    assert get_json(server.address)["version"] == "chdir"


@pytest.mark.parametrize("spec, message", [
    ("x.y:app", "aiowsgi: cannot import 'x.y:app': ModuleNotFoundError: No module named 'x'"),
    ("app:nope", "aiowsgi: cannot import 'app:nope': AttributeError: module 'app' has no "
                 "attribute 'nope'"),
    ("empty", "aiowsgi: cannot import 'empty': module 'empty' has neither 'application' nor "
              "'app'; name the app as 'empty:NAME'"),
    ("broken:app", "aiowsgi: cannot import 'broken:app': ZeroDivisionError: division by zero"),
    ("app:VERSION", "aiowsgi: cannot import 'app:VERSION': 'VERSION': not a WSGI application "
                    "(a str is not callable)"),
    ("not a spec", "aiowsgi: cannot import 'not a spec': expected 'package.module:attribute' "
                   "or 'package.module'"),
])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_import_failure_prints_one_line_and_exits_1(tmp_path, spec, message, workers):
    write_cli_app(tmp_path)
    (tmp_path / "empty.py").write_text("")
    (tmp_path / "broken.py").write_text("1 / 0\n")
    result = run_cli("-b", "127.0.0.1:0", "-w", workers, spec, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [message]


def test_python_m_aiowsgi_and_cli_main_are_one_entry_point():
    from aiowsgi import __main__ as entry
    from aiowsgi.cli import main

    assert entry.main is main
