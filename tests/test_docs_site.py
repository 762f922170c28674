"""The documentation site builds strictly, and a strict build refuses what would mislead a reader.

`make test` runs this file: the site (mkdocs.yml, docs/) builds with `mkdocs build --strict` into a
temporary folder, and a copy of it with a link to no page, a link to no heading and a docstring
mkdocstrings cannot render fails the same build, each named in its output.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import binance_userstream
import binance_userstream.errors
import binance_userstream.simulator
from tests.conftest import ROOT


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(config),
            "--site-dir",
            str(site),
        ],
        capture_output=True,
        text=True,
        cwd=config.parent,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": str(Path(sys.executable).parent)},
        check=False,
    )


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    proc = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "site" / "reference" / "events" / "usdm" / "index.html").exists()


#: A module beside the copy whose docstring names a parameter its function does not have.
BROKEN_DOCSTRING = '''"""A module for the strict build to refuse."""


def shout(text: str) -> str:
    """Say it louder.

    Args:
        volume: How loud.
    """
    return text.upper()
'''


@pytest.fixture(scope="module")
def broken_build(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """The site, copied with a link to no page, a link to no heading and an unrenderable docstring."""
    copy = tmp_path_factory.mktemp("broken")
    shutil.copytree(ROOT / "docs", copy / "docs")
    for folder in ("src", "generated"):
        (copy / folder).symlink_to(ROOT / folder)
    (copy / "extra").mkdir()
    (copy / "extra" / "broken_docstring.py").write_text(BROKEN_DOCSTRING)
    config = (ROOT / "mkdocs.yml").read_text()
    paths = "paths: [src, generated/binance-userstream-client]"
    assert paths in config
    (copy / "mkdocs.yml").write_text(
        config.replace(paths, "paths: [src, generated/binance-userstream-client, extra]")
    )
    index = copy / "docs" / "index.md"
    index.write_text(
        index.read_text()
        + "\n[a page](guides/no-such-page.md) and [a field](reference/events/usdm.md#nosuchmodel)\n"
    )
    api = copy / "docs" / "reference" / "api.md"
    api.write_text(api.read_text() + "\n::: broken_docstring\n")
    return build(copy / "mkdocs.yml", copy / "site")


def test_a_link_to_no_page_fails_the_strict_build(broken_build: subprocess.CompletedProcess[str]) -> None:
    assert broken_build.returncode != 0
    assert "link 'guides/no-such-page.md', but the target is not found" in broken_build.stderr


def test_a_link_to_no_heading_fails_the_strict_build(broken_build: subprocess.CompletedProcess[str]) -> None:
    assert broken_build.returncode != 0
    assert "does not contain an anchor '#nosuchmodel'" in broken_build.stderr


def test_a_docstring_mkdocstrings_cannot_render_fails_the_strict_build(
    broken_build: subprocess.CompletedProcess[str],
) -> None:
    assert broken_build.returncode != 0
    assert "Parameter 'volume' does not appear in the function signature" in broken_build.stderr


@pytest.mark.parametrize(
    "module", [binance_userstream, binance_userstream.simulator], ids=lambda m: m.__name__
)
def test_the_api_page_documents_every_public_name(module: ModuleType) -> None:
    """docs/reference/api.md lists each module's members by hand, in a reading order: a name added to
    `__all__` must be added there too (the errors have their own section, `::: binance_userstream.errors`)."""
    page = (ROOT / "docs" / "reference" / "api.md").read_text()
    section = page.split(f"::: {module.__name__}\n", 1)[1].split(":::", 1)[0]
    listed = set(re.findall(r"^ {8}- (\w+)$", section, re.MULTILINE))
    errors = set(binance_userstream.errors.__all__)
    assert "::: binance_userstream.errors\n" in page
    missing = sorted(set(module.__all__) - listed - errors - {"errors"})
    assert missing == []
