"""Files that hold secrets, or say where they are: written atomically and readable by their owner
only, and read only when no one else can read them.

A secret (a listenKey) is written to a file atomically, readable by its owner only, no symlinks.

The file is written whole to a temporary file in the same directory, created with mode 0600 (never
widened, whatever the umask or the old file's mode), then renamed over the path. A symbolic link
at the path is refused, both when the destination is checked (before anything is sent) and by the
rename itself, which replaces a link placed there meanwhile rather than following it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import stat
from pathlib import Path

from binance_userstream._secrets import clears_locals_on_error

_MODE = 0o600


def check_destination(path: str | os.PathLike[str]) -> Path:
    """`path` as a Path if a key file can be written there, else ValueError: a command checks this
    before it creates a key it could not save."""
    target = Path(path)
    try:
        info = target.lstat()
    except FileNotFoundError:
        info = None
    except OSError as error:
        raise ValueError(f"cannot write the key file {str(target)!r}: {error.strerror}") from None
    if info is not None and stat.S_ISLNK(info.st_mode):
        raise ValueError(f"refusing to write the key file {str(target)!r}: it is a symbolic link")
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise ValueError(f"refusing to write the key file {str(target)!r}: it is not a regular file")
    parent = target.parent
    if not parent.is_dir():
        raise ValueError(f"cannot write the key file {str(target)!r}: no directory {str(parent)!r}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write the key file {str(target)!r}: the directory is not writable")
    return target


def read_private(path: str | os.PathLike[str], what: str, limit: int) -> bytes:
    """The bytes of the file at `path` (at most `limit`), if only its owner may read or write it (mode
    0600 or 0400), else ValueError naming the path and the `chmod 600` that mends it: as ssh refuses
    a private key others can read. The mode is checked on the file opened, not on its name, so a
    file swapped in between cannot slip past."""
    target = Path(path)
    try:
        with open(target, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ValueError(f"refusing the {what} {str(target)!r}: it is not a regular file")
            if info.st_mode & 0o077:
                mode, fix = stat.S_IMODE(info.st_mode), f"chmod 600 {shlex.quote(str(target))}"
                raise ValueError(
                    f"refusing the {what} {str(target)!r}: its mode is {mode:04o}, so others may read "
                    f"or change it; it must be readable by you only: {fix}"
                )
            data = file.read(limit + 1)
    except OSError as error:
        raise ValueError(f"cannot read the {what} {str(target)!r}: {error.strerror}") from None
    if len(data) > limit:
        raise ValueError(f"the {what} {str(target)!r} is larger than {limit:,} bytes")
    return data


@clears_locals_on_error
def write_secret(path: str | os.PathLike[str], secret: str) -> None:
    """Write `secret` and a newline to `path`, atomically, mode 0600, never through a symlink."""
    target = check_destination(path)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(temp, flags, _MODE)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            os.fchmod(file.fileno(), _MODE)  # exactly 0600, whatever the umask took away or not
            file.write(secret + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)  # a rename replaces a link at `target`; it never follows it
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _sync_directory(target.parent)


def _sync_directory(directory: Path) -> None:
    """Make the rename durable (best effort: not every platform can open a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
