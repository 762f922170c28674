"""The repository cites only what a reader of the repository can open."""

from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path

from tests._docs import DOCS, GENERATED, pages
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


# --- the documentation site's pages ---------------------------------------------------------------

#: A Markdown link's target: [text](target).
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)


def _relative_links(path: Path) -> list[str]:
    page = FENCE.sub("", path.read_text(encoding="utf-8"))
    return [target for target in LINK.findall(page) if not re.match(r"[a-z]+:", target)]


def _anchor(heading: str) -> str:
    """The id MkDocs (Python-Markdown's toc) gives a heading; GitHub gives the same to these."""
    value = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode()
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def _anchors(path: Path) -> set[str]:
    page = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {_anchor(title) for title in re.findall(r"^#+ (.+)$", page, re.MULTILINE)}


def test_no_page_links_outside_the_docs_folder() -> None:
    """MkDocs strict fails on a link to a file outside docs/: source files are named as code text."""
    outside = [
        (str(path.relative_to(ROOT)), target)
        for path in pages()
        for target in _relative_links(path)
        if target.split("#")[0] and not (path.parent / target.split("#")[0]).resolve().is_relative_to(DOCS)
    ]
    assert outside == []


def test_each_link_to_a_written_page_finds_the_page_and_its_heading() -> None:
    """The generated reference (docs/reference/) is the strict site build's to check."""
    broken = []
    for path in pages():
        for target in _relative_links(path):
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            if dest.is_relative_to(GENERATED):
                continue
            if not dest.is_file() or (anchor and anchor not in _anchors(dest)):
                broken.append((str(path.relative_to(ROOT)), target))
    assert broken == []


def test_the_site_s_front_page_is_the_readme_with_its_links_made_relative_to_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert (DOCS / "index.md").read_text(encoding="utf-8") == readme.replace("](docs/", "](")
