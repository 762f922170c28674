"""The documentation's Markdown, where each example lives: the README (the front page) and the site's
pages under docs/ (docs/index.md mirrors the README; the guides are docs/guides/).

docs/reference/ is generated from the spec: its pages are the generator's output, checked with it,
and hold no example of their own, so the runners here leave it out.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GENERATED = DOCS / "reference"
#: A block that another test runs (it needs what that test sets up) is preceded by this comment,
#: which names the test and says why: `<!-- run by tests/test_x.py: why -->`.
RUN_ELSEWHERE = re.compile(r"<!-- run by (tests/[\w/]+\.py): ([^>]+?) -->\n```(\w+)\n(.*?)```", re.DOTALL)


def pages(root: Path = ROOT) -> list[Path]:
    """The README first, then docs/index.md and the guides, in a stable order."""
    docs = root / "docs"
    found = sorted(path for path in docs.rglob("*.md") if not path.is_relative_to(docs / "reference"))
    return [root / "README.md", *found]


def text(relative: str, root: Path = ROOT) -> str:
    return (root / relative).read_text(encoding="utf-8")


def section(relative: str, heading: str, root: Path = ROOT) -> str:
    """From `heading` (a whole line, `## Title`) to the next heading of its level or higher."""
    page = text(relative, root)
    start = page.index(f"\n{heading}\n") + 1
    level = heading.split(" ", 1)[0]
    ends = [m.start() for m in re.finditer(r"\n(#+) ", page[start + 1 :]) if len(m.group(1)) <= len(level)]
    return page[start : start + 1 + ends[0]] if ends else page[start:]


def blocks(page: str, language: str) -> list[str]:
    """The page's ```language blocks, in order, those another test runs included."""
    return re.findall(rf"```{language}\n(.*?)```", page, re.DOTALL)


def run_elsewhere(page: str) -> list[tuple[str, str, str, str]]:
    """(test file, why, language, block) of each block the page says another test runs."""
    return RUN_ELSEWHERE.findall(page)
