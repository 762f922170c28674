"""The package's dependency bounds: an upper bound only where a release is known to break it.

A cap with no known break only blocks users' environments: `cryptography<47` could not be installed
beside ccxt 4.5.90, which needs cryptography>=50. `make test-latest` runs the suite against the
newest releases, so a cap is added when one of them breaks the package, with a comment saying why.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
#: The only capped dependencies, and why: the stream overrides an internal of websockets'
#: connection class; the generated client's major version changes with its API.
CAPPED = {"websockets", "binance-userstream-client"}


def requirements(pyproject: Path) -> list[Requirement]:
    with pyproject.open("rb") as file:
        return [Requirement(line) for line in tomllib.load(file)["project"]["dependencies"]]


def upper_bounded(requirement: Requirement) -> bool:
    return any(spec.operator in ("<", "<=", "==", "~=") for spec in requirement.specifier)


def test_only_the_dependencies_known_to_break_have_an_upper_bound() -> None:
    capped = {r.name for r in requirements(ROOT / "pyproject.toml") if upper_bounded(r)}
    assert capped == CAPPED


def test_the_generated_client_caps_none_of_its_dependencies() -> None:
    generated = ROOT / "generated" / "binance-userstream-client" / "pyproject.toml"
    assert [str(r) for r in requirements(generated) if upper_bounded(r)] == []


def test_the_package_installs_beside_ccxt_4_5_90s_cryptography() -> None:
    """ccxt 4.5.90 requires cryptography>=50 (its published metadata)."""
    (cryptography,) = [r for r in requirements(ROOT / "pyproject.toml") if r.name == "cryptography"]
    assert cryptography.specifier.contains(Version("50.0.2"))
