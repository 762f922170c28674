"""The client package generated from the spec plus an extending guide's YAML, for the guide's tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT

#: Operations by path, then by method, as under the spec's `paths:`.
Operations = Mapping[str, Mapping[str, Any]]
GENERATED = ROOT / "generated" / "binance-userstream-client"


def extended_client(tmp: Path, added: Operations) -> Path:
    """A folder for PYTHONPATH whose `binance_userstream_client` is generated from spec/ plus `added`.

    When the spec holds those operations already (the extension walkthrough's copy of the project,
    once it followed the guide), that package is the project's own generated/, which `make generate`
    wrote from that spec (and `make check` keeps in step with it): it is used, not generated again.
    """
    spec = yaml.safe_load((ROOT / "spec" / "userdatastream.yaml").read_text())
    paths = spec["paths"]
    if all(
        paths.get(path, {}).get(method) == operation
        for path, item in added.items()
        for method, operation in item.items()
    ):
        return GENERATED
    for path, item in added.items():
        paths.setdefault(path, {}).update(item)
    (tmp / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp / "binance-userstream-client"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "generate.py"),
            "--spec",
            str(tmp / "spec.yaml"),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return out
