"""The repository cites only what a reader of the repository can open."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import ROOT

#: Notes that live beside the project's checkout, not in it: a file citing them sends readers nowhere.
OUTSIDE = ("binance-facts.md", "binance-streams.md")


def _tracked_text_files() -> dict[str, str]:
    names = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    texts = {}
    for name in names:
        try:
            texts[name] = (ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
    return texts


def test_no_file_cites_notes_outside_the_repository() -> None:
    offenders = [
        name
        for name, text in _tracked_text_files().items()
        if name != "tests/test_docs.py" and any(note in text for note in OUTSIDE)
    ]
    assert offenders == []


def test_every_requirements_file_a_file_names_exists() -> None:
    missing = {
        (name, cited)
        for name, text in _tracked_text_files().items()
        for cited in re.findall(r"requirements/[\w.-]+\.txt", text)
        if not (ROOT / cited).exists()
    }
    assert missing == set()
