"""The option references in docs/cli.rst and README.rst say what ``aiowsgi --help`` says.

The parser (generated from Config) is the truth: every option it has is documented with its
flags and metavar, nothing else is, and a default shown in brackets is the one --help shows.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Dict, FrozenSet, List, Optional, Tuple

import pytest

from aiowsgi.cli import build_parser
from aiowsgi.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

Flags = FrozenSet[str]


class Documented:
    """One mention of an option in a reference: ``-b ADDR, --bind ADDR`` [default]."""

    def __init__(self, literal: str, default: Optional[str]) -> None:
        items = [item.split() for item in re.split(r", |/", literal)]
        self.flags: Flags = frozenset(item[0] for item in items)
        self.metavars = {item[1] for item in items if len(item) > 1}
        self.default = default

    def __repr__(self) -> str:
        return "%s %s [%s]" % ("/".join(sorted(self.flags)), self.metavars, self.default)


def parse_term(term: str) -> List[Documented]:
    """The options in a term such as ``-w N, --workers N`` [1] or ``--factory``, ``--chdir
    DIR``; a bracketed default belongs to a term that names one option."""
    literals = re.findall(r"``(--?[a-z][^`]*)``", term)
    bracket = re.search(r"\[(.*)\]\s*$", term)
    default = None
    if bracket and len(literals) == 1:
        # "[30; 0: off]", "[0 = off]", "[``127.0.0.1:8000``]": the value comes first
        default = re.split(r"; |: | = ", bracket.group(1).replace("``", ""))[0]
    return [Documented(literal, default) for literal in literals]


def documented(path: str) -> List[Documented]:
    """The options of the reference in ``path`` (see REFERENCES)."""
    section, term_pattern = REFERENCES[path]
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        text = f.read()
    match = re.search(section, text, re.MULTILINE | re.DOTALL)
    assert match, "%s: no option reference" % path
    terms = re.findall(term_pattern, match.group(0), re.MULTILINE)
    return [option for term in terms for option in parse_term(term)]


REFERENCES = {  # path: (the reference's part of the file, a term in it)
    # definition-list terms: at the start of a line, the definition indented below
    "docs/cli.rst": (r".*", r"^(``-.*)\n(?=[ \t]+\S)"),
    # the first column of the list-table in "Command line", before "Signals"
    "README.rst": (r"^Command line\n=+\n.*?^Signals\n", r"^\s*\* - (``-.*)$"),
}


def help_options() -> Dict[Flags, Tuple[Optional[str], Optional[str]]]:
    """{flags: (metavar, default as --help shows it)} for every option of the parser."""
    options = {}
    for action in build_parser()._actions:
        if not action.option_strings:
            continue  # APP
        shown = re.search(r"\[default: (.*)\]$", action.help or "")
        metavar = action.metavar if isinstance(action.metavar, str) else None
        if not isinstance(action, (argparse._StoreAction, argparse._AppendAction)):
            metavar = None  # flags, --help, --version take no value
        options[frozenset(action.option_strings)] = (metavar, shown.group(1) if shown else None)
    return options


@pytest.mark.parametrize("path", sorted(REFERENCES))
def test_reference_documents_every_option_of_help_and_no_other(path):
    mentioned = {option.flags for option in documented(path)}
    assert mentioned == set(help_options())


@pytest.mark.parametrize("path", sorted(REFERENCES))
def test_reference_spells_each_option_as_help_does(path):
    options = help_options()
    for option in documented(path):
        metavar, shown = options[option.flags]
        assert option.metavars == ({metavar} if metavar else set()), option
        if option.default is not None:
            assert shown is not None, option
            # --bind's default reads "127.0.0.1:8000, or the sockets systemd passes ..."
            assert shown == option.default or shown.startswith(option.default + ","), option


def test_cli_reference_shows_every_default_of_help():
    options = help_options()
    with_defaults = {option.flags for option in documented("docs/cli.rst")
                     if option.default is not None}
    assert with_defaults == {flags for flags, (_, shown) in options.items() if shown is not None}


def test_a_wrong_default_or_metavar_in_a_term_is_seen():
    (option,) = parse_term("``--keepalive SECONDS`` [5]")
    assert (option.flags, option.metavars, option.default) == (
        frozenset({"--keepalive"}), {"SECONDS"}, "5")
    (option,) = parse_term("``-b, --bind ADDR`` (repeatable) [``127.0.0.1:8000``]")
    assert (option.flags, option.metavars, option.default) == (
        frozenset({"-b", "--bind"}), {"ADDR"}, "127.0.0.1:8000")
    both = parse_term("``--version``, ``-h/--help``")
    assert [o.flags for o in both] == [frozenset({"--version"}), frozenset({"-h", "--help"})]
    assert [o.default for o in both] == [None, None]
    assert parse_term("``--timeout SECONDS`` [30; 0: off]")[0].default == "30"


UNITS = {"": 1, "s": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}


def limits_table() -> Dict[str, str]:
    """{option: default as written} from README.rst's "Limits and timeouts" table."""
    with open(os.path.join(ROOT, "README.rst"), encoding="utf-8") as f:
        text = f.read()
    section = re.search(r"^Limits and timeouts\n=+\n(.*?)\n\S[^\n]*\n=+\n", text,
                        re.MULTILINE | re.DOTALL)
    assert section, "README.rst: no 'Limits and timeouts' section"
    return dict(re.findall(r"^\s*\* - ``(--[a-z-]+)``\n\s*- (.+)$", section.group(1),
                           re.MULTILINE))


def test_readme_limits_table_shows_configs_defaults():
    rows = limits_table()
    assert len(rows) >= 8
    config = Config()
    for flag, written in rows.items():
        expected = getattr(config, flag[2:].replace("-", "_"))
        number, _, unit = written.partition(" ")
        value = 0 if written == "off" else float(number) * UNITS[unit]
        assert value == expected, (flag, written)
