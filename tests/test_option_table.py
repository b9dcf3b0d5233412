"""One table of options: Config, the C core's table, its stub and the Options TypedDict agree.

``Config`` (aiowsgi/config.py) holds every default and validation; the C core has its own table
of the options it parses (``aiowsgi._core.OPTIONS``: {name: (default, minimum, maximum)}), the
stub ``_core.pyi`` writes defaults again for readers and type checkers, and ``Options`` restates
Config's fields statically for type checkers.  These tests hold all four to Config.
"""

from __future__ import annotations

import ast
import math
import os
import socket
import typing
from typing import Any, Dict, Iterator, List, Sequence, Tuple, Union

import pytest

import aiowsgi
from aiowsgi import _core
from aiowsgi.config import (Config, ConfigError, Options, StaticOption, default_of, limits,
                            options)
from aiowsgi.master import with_jitter

STUB = os.path.join(os.path.dirname(os.path.abspath(aiowsgi.__file__)), "_core.pyi")
DERIVED = {"multiprocess"}  # core options Config computes (workers > 1) rather than holds


def config_fields() -> Dict[str, Any]:
    return {field.name: field for field in options()}


def core_fields() -> List[str]:
    """Config's fields that it passes straight to the core (``core=True``)."""
    return [field.name for field in options() if field.metadata["core"]]


def app(environ: Any, start_response: Any) -> List[bytes]:
    start_response("200 OK", [])
    return []


@pytest.fixture(scope="module")
def listening() -> Iterator[socket.socket]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


# -- Config and the core's table -----------------------------------------------------------

def test_every_core_option_is_a_config_field_or_derived_from_one():
    numeric_or_flag = {name for name in core_fields()
                       if isinstance(default_of(config_fields()[name]), (int, float))}
    assert set(_core.OPTIONS) == numeric_or_flag | DERIVED


def test_config_defaults_are_the_cores():
    for name, (core_default, _, _) in _core.OPTIONS.items():
        if name in DERIVED:
            ours = Config().core_options()[name]
        else:
            ours = default_of(config_fields()[name])
        assert (ours, type(ours)) == (core_default, type(core_default)), name


def test_configs_limits_are_the_cores():
    for name, (_, minimum, maximum) in _core.OPTIONS.items():
        if name not in DERIVED and not isinstance(minimum, bool):
            assert limits(name) == (minimum, maximum), name


def edges() -> Iterator[Any]:
    """(option, value, accepted) at each end of every numeric core option's range."""
    for name, (core_default, minimum, maximum) in sorted(_core.OPTIONS.items()):
        if isinstance(core_default, bool):
            continue
        if isinstance(core_default, float):
            below, above = math.nextafter(minimum, -math.inf), math.nextafter(maximum, math.inf)
        else:
            below, above = minimum - 1, maximum + 1
        yield pytest.param(name, minimum, True, id="%s=min" % name)
        yield pytest.param(name, below, False, id="%s=min-" % name)
        yield pytest.param(name, maximum, True, id="%s=max" % name)
        yield pytest.param(name, above, False, id="%s=max+" % name)


@pytest.mark.parametrize("name, value, accepted", list(edges()))
def test_config_and_core_accept_the_same_values_at_the_edges(listening, name, value, accepted):
    try:
        Config(**{name: value})
        config_accepts = True
    except ConfigError:
        config_accepts = False
    try:
        _core.Server(app, [listening.fileno()], **{name: value})
        core_accepts = True
    except ValueError:
        core_accepts = False
    assert (config_accepts, core_accepts) == (accepted, accepted)


def test_config_passes_every_core_option_it_holds():
    passed = Config(workers=2).core_options()
    assert set(passed) == set(core_fields()) | DERIVED
    assert passed["multiprocess"] is True


def test_a_workers_jittered_max_requests_stays_within_the_cores_limit():
    _, _, maximum = _core.OPTIONS["max_requests"]
    assert with_jitter(0) == 0
    assert all(100 <= with_jitter(100) <= 110 for _ in range(200))
    assert with_jitter(maximum) == maximum
    assert with_jitter(maximum - 1) in (maximum - 1, maximum)


# -- the stub --------------------------------------------------------------------------------

def stub_server_init() -> Dict[str, Tuple[str, Any]]:
    """{keyword-only parameter: (annotation, default)} of ``Server.__init__`` in _core.pyi."""
    with open(STUB, encoding="utf-8") as f:
        tree = ast.parse(f.read(), STUB)
    (server,) = [node for node in tree.body
                 if isinstance(node, ast.ClassDef) and node.name == "Server"]
    (init,) = [node for node in server.body
               if isinstance(node, ast.FunctionDef) and node.name == "__init__"]
    return {arg.arg: (ast.unparse(arg.annotation) if arg.annotation else "",
                      ast.literal_eval(value) if value is not None else None)
            for arg, value in zip(init.args.kwonlyargs, init.args.kw_defaults)}


def test_stub_defaults_and_types_are_the_cores():
    stub = stub_server_init()
    for name, (core_default, _, _) in _core.OPTIONS.items():
        annotation, stub_default = stub[name]
        assert (stub_default, type(stub_default)) == (core_default, type(core_default)), name
        assert annotation == type(core_default).__name__, name


def test_stub_declares_what_config_passes_with_configs_defaults():
    stub = stub_server_init()
    config = Config()
    for name, value in config.core_options().items():
        assert name in stub
        assert stub[name][1] == value, name


# -- the Options TypedDict -------------------------------------------------------------------

# Where the API accepts more than Config keeps (Config normalises the value).
ACCEPTED: Dict[str, Any] = {"forwarded_allow_ips": Union[str, Sequence[str]],
                            "static": StaticOption}


def test_options_typed_dict_has_configs_python_api_fields_and_types():
    config_types = typing.get_type_hints(Config)
    option_types = typing.get_type_hints(Options)
    assert set(option_types) == set(config_types) - {"bind"}  # bind is a parameter of its own
    for name, accepted in option_types.items():
        assert accepted == ACCEPTED.get(name, config_types[name]), name
    assert config_types["forwarded_allow_ips"] == Tuple[str, ...]
    assert config_types["static"] == Tuple[Tuple[str, str], ...]
