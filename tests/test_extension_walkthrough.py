"""The extending guide's "Extend the client by editing the YAML", followed as written, keeps the suite
green.

The guide (docs/guides/extending.md) has a user add operations to spec/userdatastream.yaml (the
margin risk listenKey, then the signed margin account) and run `make generate`, and promises that
`make test` stays green. This test does exactly that on a copy of the project (spec/, generated/,
scripts/, tests/, docs/, the README and pyproject.toml in a temporary folder): it puts both YAML
blocks under `paths:`, regenerates with the copy's scripts/generate.py, and runs the tests an added
operation touches, in a process whose `binance_userstream_client` is the copy's (PYTHONPATH; nothing
is installed). The package itself (src/) is the one under test: the walkthrough does not touch it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests._docs import section
from tests.conftest import ROOT

SECTION = section("docs/guides/extending.md", "## Extend the client by editing the YAML")
#: Both walkthroughs' YAML: the margin risk listenKey, then the signed margin account.
YAML_BLOCKS = re.findall(r"```yaml\n(.*?)```", SECTION, re.DOTALL)
#: The tests that read the spec whole or the walkthroughs (each failed or erred before).
AFFECTED = [
    "tests/test_conformance.py",
    "tests/test_extension.py",
    "tests/test_extension_signed.py",
    "tests/test_signed_requests.py",
]
#: Left to the suite's own run, as they would only repeat it here: mypy on the guide's Python checks
#: the same package in either state (the spec plus the guide's YAML); and schemathesis's probes of
#: the simulator (`..._as_the_spec_says`) draw the same cases, since they probe only the operations
#: the simulator serves, which the guide's YAML leaves as they are (it adds two it does not serve).
#: Their collection still loads the extended spec; the rest of those files runs here.
DESELECTED = "not passes_mypy_strict and not as_the_spec_says"
PACKAGE = Path("generated") / "binance-userstream-client"


def _copy_of_the_project(tmp: Path) -> Path:
    copy = tmp / "project"
    skip = shutil.ignore_patterns("__pycache__", ".pdm-build", ".pytest_cache")
    for folder in ("spec", "generated", "scripts", "tests", "docs"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=skip)
    for name in ("README.md", "pyproject.toml"):
        shutil.copy(ROOT / name, copy / name)
    return copy


def _follow_the_walkthroughs(copy: Path) -> None:
    """Add each YAML block under `paths:`, as the guide says, then `make generate`'s step."""
    spec = copy / "spec" / "userdatastream.yaml"
    text = spec.read_text(encoding="utf-8")
    assert text.count("\npaths:\n") == 1
    for block in YAML_BLOCKS:  # a path the spec has already would be a duplicate key, not an extension
        assert "\n" + block.splitlines()[0] + "\n" not in text
    spec.write_text(text.replace("\npaths:\n", "\npaths:\n" + "".join(YAML_BLOCKS)), encoding="utf-8")
    subprocess.run([sys.executable, str(copy / "scripts" / "generate.py")], check=True, capture_output=True)


def test_following_both_walkthroughs_keeps_the_affected_tests_green(tmp_path: Path) -> None:
    assert len(YAML_BLOCKS) == 2
    copy = _copy_of_the_project(tmp_path)
    _follow_the_walkthroughs(copy)
    api = copy / PACKAGE / "binance_userstream_client" / "api"
    assert (api / "margin_risk" / "create_margin_risk_listen_key.py").is_file()
    assert (api / "margin" / "get_margin_trade_coeff.py").is_file()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "BINANCE_"))}
    env["PYTHONPATH"] = str(copy / PACKAGE)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", DESELECTED, *AFFECTED],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert "passed" in summary
    assert "failed" not in summary
    assert "error" not in summary
