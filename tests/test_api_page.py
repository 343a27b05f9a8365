"""The API reference page (book/api.md): every public name of the core is on it, each has a
docstring, and every docstring it renders is valid reST after napoleon (the book builds with -W,
so a malformed docstring would fail the build; this finds it without building the book)."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import yaml

import koopman_lib
import koopman_lib.fit

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "api.md"
DIRECTIVE = re.compile(r"^\.\. auto(?:class|function|exception|data|module)::\s+(\S+)", re.M)


def documented() -> list[str]:
    """The objects the page's autodoc directives name."""
    return DIRECTIVE.findall(PAGE.read_text())


def test_the_page_documents_every_public_name_and_nothing_private():
    names = documented()
    public = {f"koopman_lib.{n}" for n in koopman_lib.__all__}
    assert public <= set(names), f"missing from book/api.md: {sorted(public - set(names))}"
    extra = set(names) - public - {"koopman_lib", "koopman_lib.fit"}
    assert not extra, f"not in koopman_lib.__all__: {sorted(extra)}"
    assert len(names) == len(set(names)), "a name is documented twice"
    assert "koopman_lib.fit" in names                    # the cutoff table, in the module docstring


def test_the_page_is_in_the_toc_after_the_chapters_before_the_bibliography():
    files = [c["file"] for c in yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())["chapters"]]
    assert files[-2:] == ["api", "bibliography"]


def test_the_book_loads_autodoc_and_napoleon():
    sphinx = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]
    assert {"sphinx.ext.autodoc", "sphinx.ext.napoleon"} <= set(sphinx["extra_extensions"])
    assert sphinx["config"]["napoleon_numpy_docstring"] is True


@pytest.mark.parametrize("name", koopman_lib.__all__)
def test_every_public_name_has_its_own_docstring(name):
    obj = getattr(koopman_lib, name)
    doc = inspect.getdoc(obj) or ""
    assert len(doc.split()) >= 3, f"koopman_lib.{name} has no docstring"
    assert not doc.startswith(f"{name}("), f"koopman_lib.{name}: only the dataclass's generated signature"


def _rest_problems(text: str) -> list[str]:
    """docutils' warnings and errors for ``text`` (Sphinx's cross-reference roles accepted)."""
    from docutils import nodes
    from docutils.core import publish_doctree
    from docutils.parsers.rst import roles

    for role in ("class", "func", "meth", "mod", "data", "attr", "exc", "obj", "math", "ref", "doc", "cite"):
        roles.register_generic_role(role, nodes.literal)
    tree = publish_doctree(text, settings_overrides={"report_level": 5, "halt_level": 5, "warning_stream": False})
    return [m.astext() for m in tree.findall(nodes.system_message) if m["level"] >= 2]


def _napoleon(doc: str, what: str) -> str:
    from sphinx.ext.napoleon import Config
    from sphinx.ext.napoleon.docstring import NumpyDocstring
    return str(NumpyDocstring(doc, Config(napoleon_numpy_docstring=True, napoleon_google_docstring=False), what=what))


def test_the_rest_check_catches_a_malformed_table():
    bad = "Table\n\n=====  =====\na      b\n      c\n=====  =====\n\n====  ==\nx     y\n===\n"
    assert _rest_problems(bad)


@pytest.mark.parametrize("name", ["koopman_lib", "koopman_lib.fit"] + [f"koopman_lib.{n}" for n in koopman_lib.__all__])
def test_every_rendered_docstring_is_valid_rest(name):
    obj = koopman_lib if name == "koopman_lib" else koopman_lib.fit if name == "koopman_lib.fit" \
        else getattr(koopman_lib, name.split(".", 1)[1])
    docs = [(inspect.getdoc(obj) or "", "module" if inspect.ismodule(obj) else "class" if inspect.isclass(obj)
             else "function")]
    if inspect.isclass(obj) and not issubclass(obj, Exception):      # members rendered with :members:
        for attr, raw in vars(obj).items():
            member = raw.fget if isinstance(raw, property) else getattr(obj, attr)
            if not attr.startswith("_") and callable(member) and member.__doc__:
                docs.append((inspect.getdoc(member), "method"))
    problems = [p for doc, what in docs for p in _rest_problems(_napoleon(doc, what))]
    assert not problems, f"{name}: {problems}"
