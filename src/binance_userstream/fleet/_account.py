"""`Account`: one account of a fleet, a label the application chooses and that account's credentials."""

from __future__ import annotations

import os
import re

from attrs import field, frozen

from binance_userstream._secrets import check_token, redact
from binance_userstream._signing import Credentials, Signer, load_signer

#: What an account id may be: it names the account in logs, in the CLI's output and (issue 21) in
#: NATS subjects, so it is a plain token: letters, digits, `_` and `-`, 1 to 64 of them.
ACCOUNT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _check_id(_: object, __: object, value: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"an account id must be a str, not {type(value).__name__}")
    if not ACCOUNT_ID.fullmatch(value):
        raise ValueError(
            f"account id {value[:70]!r} is not 1 to 64 letters, digits, '_' or '-' (it is a label, "
            "never a secret: it appears in logs and output)"
        )


def _check_key(_: object, __: object, value: str) -> None:
    check_token(value, "api_key")


@frozen(repr=False)
class Account:
    """One account of a fleet: `id` labels it (never a secret: it tags its events and log lines);
    `api_key` and `api_secret` (HMAC) or `private_key` (a PEM file's path, or PEM text, Ed25519 or
    RSA; `private_key_passphrase` if encrypted) are its credentials; `symbol` names an isolated
    margin account (market="margin"). No environment variable fills what is left out."""

    id: str = field(validator=_check_id)
    api_key: str = field(validator=_check_key)
    api_secret: str | None = None
    private_key: bytes | str | os.PathLike[str] | None = None
    private_key_passphrase: bytes | str | None = None
    symbol: str | None = None

    def __repr__(self) -> str:
        kind = "secret" if self.api_secret is not None else "private_key" if self.private_key else "none"
        symbol = "" if self.symbol is None else f", symbol={self.symbol!r}"
        return f"Account(id={self.id!r}, api_key={redact(self.api_key)!r}, signer={kind!r}{symbol})"

    def signer(self) -> Signer | None:
        """This account's signer, loaded now (a ValueError says what is wrong, never the secret)."""
        try:
            return load_signer(self.api_secret, self.private_key, self.private_key_passphrase, environ={})
        except ValueError as error:
            raise ValueError(f"account {self.id!r}: {error}") from None

    def credentials(self) -> Credentials:
        return Credentials(self.api_key, self.signer())
