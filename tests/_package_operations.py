"""The generated operations the package itself calls, told apart from those a user adds to the spec.

The extending guide's "Extend the client by editing the YAML" has a user add operations to
spec/userdatastream.yaml and regenerate, and promises that `make test` stays green. So the tests
that hold the whole spec to something (the simulator serves every operation, none of them is
signed) hold it for the package's own operations: the generated operation modules that a module
of `binance_userstream` imports (the market table's and the client's). An operation only a user
added is one the package never calls.
"""

from __future__ import annotations

import importlib
import pkgutil
import types
from functools import cache

import binance_userstream

_API = "binance_userstream_client.api."


@cache
def package_operations() -> frozenset[str]:
    """The names (the spec's operationIds) of the generated operations the package imports."""
    found: set[str] = set()
    for info in pkgutil.walk_packages(binance_userstream.__path__, "binance_userstream."):
        if info.name.rpartition(".")[2] == "__main__":  # importing it would run the CLI
            continue
        for value in vars(importlib.import_module(info.name)).values():
            if isinstance(value, types.ModuleType) and value.__name__.startswith(_API):
                found.add(value.__name__.rpartition(".")[2])
    return frozenset(found)
