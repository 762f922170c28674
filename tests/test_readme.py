"""The README's examples run as written."""

from __future__ import annotations

import re

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.DOTALL)


def test_the_simulator_example_runs() -> None:
    [block] = [b for b in python_blocks() if "from binance_userstream.simulator import" in b]
    exec(compile(block, "README.md", "exec"), {})  # noqa: S102 (our own README)


def test_the_readme_starts_with_the_facade_example_and_the_retirement_notice() -> None:
    head = README[: README.index("## The two commands")]
    assert "uds.create()" in python_blocks()[0]
    assert "2026-02-20" in head
    assert "userDataStream.subscribe" in head
