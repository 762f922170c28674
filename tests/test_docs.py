"""The repository cites only what a reader of the repository can open."""

from __future__ import annotations

import re
import subprocess

from binance_userstream import MARKETS
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


def test_the_readmes_event_table_is_what_each_markets_stream_decodes() -> None:
    """README's "which events each market sends" is each row's `event_types`, model names included."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| `market=` | events: wire name") :].split("\n\n")[0]
    rows = {}
    for line in table.splitlines()[2:]:
        market, events = re.fullmatch(r'\| `"(\w+)"` \| (.*) \|', line).groups()  # type: ignore[union-attr]
        rows[market] = dict(re.findall(r"`(\w+)` (\w+)", events))
    assert rows == {
        name: {wire: model.__name__ for wire, model in market.event_types.items()}
        for name, market in MARKETS.items()
    }
