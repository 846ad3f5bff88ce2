"""Tests for the layout: docs/design.md's map matches the tree; ``sonosd.gena`` stays public."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import sonosd.gena
from sonosd.gena import subscription
from tests.paths import ROOT

PACKAGE = ROOT / "sonosd"


def _map_block() -> list[str]:
    """The lines of the layout block that opens docs/design.md."""
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- layout:.*?-->\n```text\nsonosd/\n(.*?)```", text, re.S)
    assert match, "docs/design.md has no layout block"
    return match.group(1).splitlines()


def _documented() -> dict[str, set[str]]:
    """``{package: modules}`` as the map lists them (``""`` for the top level)."""
    listed: dict[str, set[str]] = {}
    package = ""
    for line in _map_block():
        words = line.split()
        if not words:
            continue
        if words[0].endswith("/"):
            package, names = words[0].rstrip("/"), words[1:]
        elif line.startswith("  ") and not line.startswith("    "):
            # A top-level line: module names, then two or more spaces, then what they hold.
            package, names = "", re.split(r"\s{2,}", line.strip())[0].split()
        else:
            names = words  # a continuation of the package above
        listed.setdefault(package, set()).update(names)
    return listed


def _actual() -> dict[str, set[str]]:
    """``{package: modules}`` as they are on disk (Python modules and C extensions' sources)."""
    found: dict[str, set[str]] = {}
    # A C extension's source is a module too (sonosd/gena/_shape.c).
    for path in [*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.c")]:
        if path.name == "__init__.py" or "data" in path.parts:
            continue
        package = "/".join(path.relative_to(PACKAGE).parts[:-1])
        found.setdefault(package, set()).add(path.stem)
    return found


def test_map_lists_every_module_and_only_those() -> None:
    """The design page's map names each module of sonosd/ in its package, and nothing else."""
    assert _documented() == _actual()


def test_every_module_names_an_existing_test_module() -> None:
    """Each implementation module's first line names its test module, and that module exists."""
    # A C extension's source is a module too (sonosd/gena/_shape.c).
    for path in [*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.c")]:
        if path.name == "__init__.py":
            continue
        first = path.read_text(encoding="utf-8").splitlines()[0]
        # Python's comment, or C's: /* -*- test-case-name: ... -*- */
        match = re.fullmatch(r"(?:# |/\* )-\*- test-case-name: ([\w.,]+) -\*-(?: \*/)?", first)
        assert match, f"{path}: no test-case-name line"
        for name in match.group(1).split(","):
            target = ROOT / Path(*name.split(".")).with_suffix(".py")
            assert target.is_file(), f"{path} names {name}, which does not exist"


def test_every_package_says_what_it_may_import() -> None:
    """Each subpackage's docstring says what it holds and what it may import."""
    for init in PACKAGE.glob("*/__init__.py"):
        module = importlib.import_module(f"sonosd.{init.parent.name}")
        assert module.__doc__ and "May import:" in module.__doc__, init


@pytest.mark.parametrize("name", sonosd.gena.__all__)
def test_gena_public_names(name: str) -> None:
    """Every public name of ``sonosd.gena`` is the object its implementation module holds."""
    holder = importlib.import_module(sonosd.gena._PUBLIC[name])
    assert getattr(sonosd.gena, name) is getattr(holder, name)


def test_gena_keeps_the_events_module_api() -> None:
    """``sonosd.gena`` has what SoCo uses of an events module, and refuses unknown names."""
    assert sonosd.gena.Subscription is subscription.Subscription
    assert "event_listener" in dir(sonosd.gena)
    with pytest.raises(AttributeError):
        _ = sonosd.gena.no_such_name  # type: ignore[attr-defined]
