"""`make test-latest`: print the version of each dependency the test run is about to use.

The run installs the newest releases the package's bounds allow; this line says which ones they
were, so that a failure can be tied to a release (and a pass to the versions it proves).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, requires, version

from packaging.requirements import Requirement

PACKAGES = ("binance-userstream", "binance-userstream-client")


def main() -> None:
    names: set[str] = set()
    for package in PACKAGES:
        for line in requires(package) or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate():
                names.add(requirement.name)
    shown = []
    for name in sorted(names):
        try:
            shown.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            shown.append(f"{name} (not installed)")
    print("test-latest:", ", ".join(shown))


if __name__ == "__main__":
    main()
