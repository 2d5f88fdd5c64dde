"""The domain imports nothing that does IO and nothing from the outer layers."""

from __future__ import annotations

import ast
from pathlib import Path

import conversa.domain

FORBIDDEN = (
    "conversa.app",
    "conversa.adapters",
    "os",
    "httpx",
    "psycopg",
    "starlette",
    "sqlite3",
    "socket",
    "logging",
)
DOMAIN_DIR = Path(conversa.domain.__file__).parent


def imported_modules(source: str, package: str) -> set[str]:
    """Every module a source file imports, absolute, including ``from x import y`` as x.y."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def forbidden_in(modules: set[str]) -> set[str]:
    return {
        module
        for module in modules
        for banned in FORBIDDEN
        if module == banned or module.startswith(banned + ".")
    }


def test_the_checker_catches_forbidden_imports() -> None:
    source = (
        "import os.path\n"
        "from conversa import adapters\n"
        "from ..app.settings import Settings\n"
        "from logging import getLogger\n"
        "import phonenumbers\n"
        "from conversa.domain.status import Status\n"
    )
    modules = imported_modules(source, "conversa.domain")
    assert forbidden_in(modules) == {
        "os.path",
        "conversa.adapters",
        "conversa.app.settings",
        "conversa.app.settings.Settings",
        "logging",
        "logging.getLogger",
    }
    assert forbidden_in({"osmosis", "logginglike", "conversa.application"}) == set()


def test_the_domain_imports_nothing_impure() -> None:
    files = sorted(DOMAIN_DIR.glob("**/*.py"))
    names = {f.name for f in files}
    assert {"message.py", "phone.py", "status.py", "content.py", "channel.py"} <= names
    problems = {}
    for path in files:
        package = "conversa.domain"
        modules = imported_modules(path.read_text(encoding="utf-8"), package)
        bad = forbidden_in(modules)
        if bad:
            problems[path.name] = sorted(bad)
    assert problems == {}
