"""The reStructuredText documents render as written: docutils (the parser behind PyPI's and
Sphinx's rendering) reports no warning or error for README.rst and docs/*.rst.  A list that
ends early, a table whose columns do not line up or a broken link target makes text vanish
or change meaning on the rendered page without any other sign."""

import glob
import io
import os

import docutils.core
import docutils.utils
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENTS = ["README.rst"] + sorted(os.path.relpath(p, ROOT)
                                    for p in glob.glob(os.path.join(ROOT, "docs", "*.rst")))


def problems(text, source):
    """docutils' messages of level WARNING and above for ``text``, one per line."""
    stream = io.StringIO()
    docutils.core.publish_doctree(text, source_path=source, settings_overrides={
        "report_level": docutils.utils.Reporter.WARNING_LEVEL,
        "halt_level": docutils.utils.Reporter.SEVERE_LEVEL + 1,
        "warning_stream": stream,
        "file_insertion_enabled": False,
        "raw_enabled": False,
    })
    return stream.getvalue().strip()


@pytest.mark.parametrize("name", DOCUMENTS)
def test_the_document_renders_without_warnings(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as f:
        text = f.read()
    assert problems(text, name) == ""


def test_the_check_sees_a_definition_list_that_ends_early():
    broken = "Terms\n=====\n\n``a``\n    the first\n``b`` (no definition)\nNext paragraph.\n"
    assert "Definition list ends without a blank line" in problems(broken, "broken.rst")
