"""The spec-to-package pipeline: spec/ validates, generated/ is fresh, the package installs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from tests.conftest import ROOT

SPEC = ROOT / "spec" / "userdatastream.yaml"
GENERATED = ROOT / "generated" / "binance-userstream-client"
OPERATIONS = [
    ("post", "create_spot_listen_key"),
    ("put", "keepalive_spot_listen_key"),
    ("delete", "close_spot_listen_key"),
]


def load_spec() -> dict:
    return yaml.safe_load(SPEC.read_text())


def run_generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate.py"), *args],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generation of the client from the spec into a folder of its own, read (never changed) by
    the tests here that need a generation to compare with or copy: each costs 8 to 20 s."""
    out = tmp_path_factory.mktemp("fresh") / "out"
    proc = run_generate("--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_spec_is_valid_openapi() -> None:
    spec_dict, base_uri = read_from_filename(str(SPEC))
    validate(spec_dict, base_uri=base_uri)


@pytest.mark.parametrize(("method", "operation_id"), OPERATIONS)
def test_each_operation_declares_the_api_key_itself(method: str, operation_id: str) -> None:
    """openapi-python-client ignores root-level `security`: each operation must carry it."""
    spec = load_spec()
    op = spec["paths"]["/api/v3/userDataStream"][method]
    assert op["operationId"] == operation_id
    assert op["security"] == [{"ApiKeyAuth": []}]
    assert spec["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-MBX-APIKEY",
        "description": spec["components"]["securitySchemes"]["ApiKeyAuth"]["description"],
    }


@pytest.mark.parametrize(("method", "operation_id"), OPERATIONS)
def test_each_operation_is_deprecated_and_documents_the_retirement(method: str, operation_id: str) -> None:
    """Binance retired the spot endpoints on 2026-02-20 (spot API CHANGELOG, 2026-01-21)."""
    spec = load_spec()
    op = spec["paths"]["/api/v3/userDataStream"][method]
    assert op["deprecated"] is True
    assert "2026-02-20" in spec["components"]["responses"]["Retired"]["description"]
    assert op["responses"]["410"] == {"$ref": "#/components/responses/Retired"}
    for status in ("400", "401", "403", "418", "429", "5XX"):
        assert status in op["responses"], status
    assert "Weight: 2" in op["description"]


def test_spot_lists_production_alternates_and_testnet_servers() -> None:
    urls = [s["url"] for s in load_spec()["paths"]["/api/v3/userDataStream"]["servers"]]
    assert urls[0] == "https://api.binance.com"
    assert {f"https://api{i}.binance.com" for i in range(1, 5)} <= set(urls)
    assert {"https://api-gcp.binance.com", "https://testnet.binance.vision"} <= set(urls)


def test_rate_limit_answers_document_retry_after() -> None:
    responses = load_spec()["components"]["responses"]
    for name in ("RateLimited", "IpBanned"):
        assert "Retry-After" in responses[name]["headers"]


def test_generated_package_is_up_to_date() -> None:
    proc = run_generate("--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_check_mode_catches_a_changed_spec(tmp_path: Path) -> None:
    changed = tmp_path / "spec.yaml"
    text = SPEC.read_text()
    summary = "summary: Close a USD-M futures user data stream (USER_STREAM)"
    assert summary in text
    changed.write_text(text.replace(summary, "summary: Shut it down"))
    proc = run_generate("--check", "--spec", str(changed))
    assert proc.returncode == 1
    removed = [
        line for line in proc.stdout.splitlines() if line.startswith("-") and "Close a USD-M futures" in line
    ]
    added = [line for line in proc.stdout.splitlines() if line.startswith("+") and "Shut it down" in line]
    assert removed
    assert added
    assert "is stale" in proc.stderr


def test_generation_is_deterministic(fresh: Path, tmp_path: Path) -> None:
    """A second generation, in another folder, is byte for byte the first (`fresh`)."""
    again = tmp_path / "again"
    proc = run_generate("--out", str(again))
    assert proc.returncode == 0, proc.stderr
    files_a = sorted(p.relative_to(fresh) for p in fresh.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (fresh / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_a_generator_warning_fails_generation(tmp_path: Path) -> None:
    """An operation the generator cannot express must stop the run, not be skipped quietly."""
    spec = load_spec()
    spec["paths"]["/api/v3/broken"] = {
        "get": {
            "operationId": "broken",
            "tags": ["spot"],
            "parameters": [{"name": "x", "in": "query", "required": True, "schema": {"$ref": "#/nope"}}],
            "responses": {"200": {"description": "ok"}},
        }
    }
    broken = tmp_path / "spec.yaml"
    broken.write_text(yaml.safe_dump(spec))
    proc = run_generate("--spec", str(broken), "--out", str(tmp_path / "out"))
    assert proc.returncode != 0
    assert not (tmp_path / "out").exists()


def test_every_generated_python_file_is_marked_generated() -> None:
    files = list(GENERATED.rglob("*.py"))
    assert files
    for py in files:
        assert py.read_text().startswith("# Generated by scripts/generate.py"), py


def test_generated_package_installs_into_a_fresh_venv_and_imports(tmp_path: Path) -> None:
    """Both packages, built from source, with their dependencies from the index, into a venv that
    holds nothing else. (The project's pinned pip installs into it, `--python`: seeding the venv
    with a pip of its own would cost seconds and prove nothing about the packages.)"""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            str(GENERATED),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    code = (
        "from binance_userstream_client.api.spot import create_spot_listen_key as create\n"
        "from binance_userstream_client.api.spot import keepalive_spot_listen_key as keepalive\n"
        "from binance_userstream_client.api.spot import close_spot_listen_key as close\n"
        "from binance_userstream_client import AuthenticatedClient\n"
        "import binance_userstream_client, pathlib\n"
        "assert (pathlib.Path(binance_userstream_client.__file__).parent / 'py.typed').exists()\n"
        "import binance_userstream\n"
        "print(create.sync.__name__, keepalive.sync.__name__, close.sync.__name__)\n"
    )
    proc = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["sync", "sync", "sync"]


def test_generated_code_passes_mypy_strict_and_ruff() -> None:
    """`make check` runs these too; this keeps the claim inside `make test`'s own report."""
    pkg = GENERATED / "binance_userstream_client"
    bindir = Path(sys.executable).parent
    mypy = subprocess.run([str(bindir / "mypy"), "--strict", str(pkg)], capture_output=True, text=True)
    assert mypy.returncode == 0, mypy.stdout
    ruff = subprocess.run(
        [str(bindir / "ruff"), "check", "--config", str(GENERATED / "pyproject.toml"), str(GENERATED)],
        capture_output=True,
        text=True,
    )
    assert ruff.returncode == 0, ruff.stdout
    assert re.search(r"All checks passed", ruff.stdout)


def test_regenerating_leaves_unchanged_files_untouched(fresh: Path, tmp_path: Path) -> None:
    """`make install` keys on the generated pyproject.toml: an idle regeneration must not touch it."""
    out = tmp_path / "out"
    shutil.copytree(fresh, out)
    pyproject = out / "pyproject.toml"
    before = pyproject.stat().st_mtime_ns
    (out / "binance_userstream_client" / "api" / "stale").mkdir()
    (out / "binance_userstream_client" / "api" / "stale" / "gone.py").write_text("# stale\n")
    assert run_generate("--out", str(out)).returncode == 0
    assert pyproject.stat().st_mtime_ns == before
    assert not (out / "binance_userstream_client" / "api" / "stale").exists()
