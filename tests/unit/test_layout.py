"""Rules of the code base that a reviewer would otherwise have to remember."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import assistline

PACKAGE = Path(assistline.__file__).parent
SUBPACKAGES = ["media", "signalling", "sip", "ivr", "queue", "speech", "store", "webrtc"]


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_each_subpackage_says_what_it_owns(name: str) -> None:
    module = importlib.import_module(f"assistline.{name}")
    doc = module.__doc__ or ""
    assert len(doc.split()) >= 30, f"assistline.{name} needs a paragraph saying what it owns"


def _python_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_library_code_never_reads_the_environment() -> None:
    offenders = []
    for path in _python_files():
        if path.name == "__main__.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
                if isinstance(node.value, ast.Name) and node.value.id == "os":
                    offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []


def test_modules_stay_under_600_lines() -> None:
    long = [
        f"{p.relative_to(PACKAGE)} ({n})"
        for p in _python_files()
        if (n := len(p.read_text().splitlines())) > 600
    ]
    assert long == []


def test_media_core_is_sans_io() -> None:
    forbidden = {"asyncio", "pjsua2", "aiortc", "asyncpg", "aiohttp"}
    offenders = []
    for path in sorted((PACKAGE / "media").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in forbidden]
    assert offenders == []
