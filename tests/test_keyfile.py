"""Key files: written atomically, mode 0600 from their creation, never through a symbolic link."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from binance_userstream._keyfile import check_destination, write_secret

KEY = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_key_file_holds_the_key_and_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    target = tmp_path / "key"
    write_secret(target, KEY)
    assert target.read_text() == KEY + "\n"
    assert mode(target) == 0o600


def test_a_world_readable_file_is_replaced_by_a_private_one(tmp_path: Path) -> None:
    target = tmp_path / "key"
    target.write_text("old\n")
    target.chmod(0o644)
    write_secret(target, KEY)
    assert target.read_text() == KEY + "\n"
    assert mode(target) == 0o600


def test_the_mode_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_secret(tmp_path / "key", KEY)
    finally:
        os.umask(old)
    assert mode(tmp_path / "key") == 0o600


def test_a_symlink_at_the_path_is_refused_and_its_target_left_alone(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("precious\n")
    link = tmp_path / "key"
    link.symlink_to(elsewhere)
    with pytest.raises(ValueError, match="symbolic link"):
        write_secret(link, KEY)
    assert elsewhere.read_text() == "precious\n"
    assert link.is_symlink()


def test_a_dangling_symlink_is_refused_too(tmp_path: Path) -> None:
    link = tmp_path / "key"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="symbolic link"):
        check_destination(link)
    assert not (tmp_path / "nowhere").exists()


def test_a_missing_directory_is_found_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no directory"):
        check_destination(tmp_path / "missing" / "key")


def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    write_secret(tmp_path / "key", KEY)
    write_secret(tmp_path / "key", KEY)
    assert [p.name for p in tmp_path.iterdir()] == ["key"]


def test_a_directory_at_the_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a regular file"):
        check_destination(tmp_path)
