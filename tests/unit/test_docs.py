"""The documentation keeps up with the code: every setting is documented, every link works."""

from __future__ import annotations

import re
from pathlib import Path

from conversa.app.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_configuration_page() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    missing = [
        PREFIX + name.upper() for name in Settings.model_fields if PREFIX + name.upper() not in page
    ]
    assert not missing, f"undocumented settings: {missing}"


def test_every_relative_link_of_the_readme_and_docs_leads_to_a_file() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, broken
