"""`load_accounts`: a fleet's accounts from a TOML file of ids and the paths of their key files.

The file says where each account's secrets are, never the secrets themselves: one `[[account]]`
table per account, with its `id`, its `api_key_file`, and `api_secret_file` (HMAC) or
`private_key_file` (Ed25519 or RSA PEM; `private_key_passphrase_file` if encrypted), and `symbol`
for an isolated margin account. Relative paths are relative to the file's directory. Since it
maps every account to its secrets, it must be readable by its owner only (mode 0600), as ssh asks
of a private key. Anything wrong is a ValueError that names the account and the field and says
what to fix, never a secret, before anything is sent.
"""

from __future__ import annotations

import difflib
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from binance_userstream._keyfile import read_private
from binance_userstream._secrets import read_secret
from binance_userstream.fleet._account import ACCOUNT_ID, Account


class AccountsFileError(ValueError):
    """What is wrong with an accounts file, in its own words: its fields' names (the CLI prints it
    as it stands, where it turns the library's argument names into its flags)."""


#: The fields of an `[[account]]` table.
FIELDS = (
    "id",
    "api_key_file",
    "api_secret_file",
    "private_key_file",
    "private_key_passphrase_file",
    "symbol",
)
#: Names under which a secret itself may be pasted into the file: refused, with the field to use.
_INLINE = {
    "api_key": "api_key_file",
    "apikey": "api_key_file",
    "key": "api_key_file",
    "api_secret": "api_secret_file",
    "apisecret": "api_secret_file",
    "secret": "api_secret_file",
    "secret_key": "api_secret_file",
    "secretkey": "api_secret_file",
    "private_key": "private_key_file",
    "privatekey": "private_key_file",
    "private_key_passphrase": "private_key_passphrase_file",
    "passphrase": "private_key_passphrase_file",
}
#: The largest accounts file read: about 300,000 accounts (a wrong file is refused, not parsed).
MAX_FILE_BYTES = 64 * 1024 * 1024


def load_accounts(path: str | os.PathLike[str]) -> list[Account]:
    """The accounts listed in the TOML file at `path`, their keys and secrets read from the files it
    names (each bounded and cleaned as the CLI's key files are). The file must be mode 0600."""
    source = Path(path)
    try:
        data = read_private(source, "accounts file", MAX_FILE_BYTES)
    except ValueError as error:
        raise AccountsFileError(str(error)) from None
    try:
        document = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise AccountsFileError(f"the accounts file {str(source)!r} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:  # its message says where, never what was there
        raise AccountsFileError(f"the accounts file {str(source)!r} is not valid TOML: {error}") from None
    tables = _tables(source, document)
    loader = _Loader(source)
    return [loader.account(number, table) for number, table in enumerate(tables, 1)]


def _tables(source: Path, document: dict[str, Any]) -> list[dict[str, Any]]:
    where = f"the accounts file {str(source)!r}"
    others = sorted(set(document) - {"account"})
    if others:
        raise AccountsFileError(f"{where}: unknown key {others[0]!r}; it holds [[account]] tables only")
    tables = document.get("account")
    if tables is None:
        raise AccountsFileError(f"{where} lists no account: add an [[account]] table for each")
    if not isinstance(tables, list) or not all(isinstance(table, dict) for table in tables):
        raise AccountsFileError(f"{where}: each account is an [[account]] table (two brackets)")
    return tables


class _Loader:
    """One file's accounts, read in turn: the ids seen so far, the directory paths are relative to."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.directory = os.fspath(source.parent)
        self.seen: dict[str, int] = {}

    def account(self, number: int, table: dict[str, Any]) -> Account:
        name = self._id(number, table)
        where = f"{self.source}: account {name!r}"
        self._check_fields(where, table)
        for field in ("api_key_file", "api_secret_file", "private_key_file", "private_key_passphrase_file"):
            if field in table and (not isinstance(table[field], str) or not table[field]):
                raise AccountsFileError(f"{where}, {field}: give the file's path as a string")
        if "api_key_file" not in table:
            raise AccountsFileError(
                f"{where}: no api_key_file: give the path of the file that holds its API key"
            )
        if "api_secret_file" in table and "private_key_file" in table:
            raise AccountsFileError(
                f"{where}: both api_secret_file and private_key_file: keep the one its API key uses "
                "(an HMAC secret, or an Ed25519 or RSA private key)"
            )
        if "private_key_passphrase_file" in table and "private_key_file" not in table:
            raise AccountsFileError(
                f"{where}: private_key_passphrase_file without private_key_file: add the key's"
            )
        symbol = table.get("symbol")
        if symbol is not None and (not isinstance(symbol, str) or not symbol.isalnum()):
            raise AccountsFileError(
                f'{where}, symbol: give the isolated margin pair as a string, e.g. "BTCUSDT"'
            )
        api_key = self._read(where, table, "api_key_file", "API key")
        assert api_key is not None  # checked above
        api_secret = self._read(where, table, "api_secret_file", "API secret")
        passphrase = self._read(where, table, "private_key_passphrase_file", "passphrase", token=False)
        private_key = self._private_key(where, table)
        try:
            return Account(
                id=name,
                api_key=api_key,
                api_secret=api_secret,
                private_key=private_key,
                private_key_passphrase=passphrase,
                symbol=symbol,
            )
        except ValueError as error:
            raise AccountsFileError(f"{where}: {error}") from None

    def _id(self, number: int, table: dict[str, Any]) -> str:
        """The table's id, checked: present, a plain token, not seen before in the file."""
        where = f"{self.source}: account #{number} (the {_ordinal(number)} [[account]])"
        name = table.get("id")
        if name is None:
            raise AccountsFileError(
                f'{where}: no id: give it id = "...", a label of your choice (never a secret)'
            )
        if not isinstance(name, str) or not ACCOUNT_ID.fullmatch(name):
            raise AccountsFileError(
                f"{where}, id: an id is 1 to 64 letters, digits, '_' or '-' (a label of your choice, "
                "shown in the output: never a secret)"
            )
        first = self.seen.setdefault(name, number)
        if first != number:
            raise AccountsFileError(
                f"{self.source}: account {name!r}, id: accounts #{first} and #{number} both have it: "
                "give each account its own"
            )
        return name

    def _check_fields(self, where: str, table: dict[str, Any]) -> None:
        for field in table:
            if field in FIELDS:
                continue
            instead = _INLINE.get(field.lower())
            if instead is not None:
                raise AccountsFileError(
                    f"{where}, {field}: a secret is never written in the accounts file (value not shown): "
                    f"put it in a file of its own, readable by you only, and give its path as {instead}"
                )
            close = difflib.get_close_matches(field, FIELDS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise AccountsFileError(
                f"{where}, {field}: unknown field; {hint}the fields are {', '.join(FIELDS)}"
            )

    def _path(self, value: str) -> str:
        """`value` relative to the accounts file's directory (strings: a path object per file read
        was a tenth of the time 100,000 accounts take to load)."""
        return os.path.join(self.directory, os.path.expanduser(value) if value[0] == "~" else value)

    def _read(
        self, where: str, table: dict[str, Any], field: str, what: str, *, token: bool = True
    ) -> str | None:
        if field not in table:
            return None
        try:
            return read_secret(self._path(table[field]), what, token=token)
        except ValueError as error:
            raise AccountsFileError(f"{where}, {field}: {error}") from None

    def _private_key(self, where: str, table: dict[str, Any]) -> Path | None:
        """The private key's path, checked to be a readable file (the fleet loads the key itself)."""
        if "private_key_file" not in table:
            return None
        path = Path(self._path(table["private_key_file"]))
        try:
            info = path.stat()
        except OSError as error:
            reason = error.strerror
            raise AccountsFileError(
                f"{where}, private_key_file: cannot read {str(path)!r}: {reason}"
            ) from None
        if not stat.S_ISREG(info.st_mode) or not os.access(path, os.R_OK):
            raise AccountsFileError(f"{where}, private_key_file: {str(path)!r} is not a file you can read")
        return path


def _ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"
