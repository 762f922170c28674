"""`load_accounts`: a fleet's accounts from a TOML file of ids and key-file paths, mode 0600.

Each rule is one test; every refusal names the account and the field, says what to fix, and never
shows a secret.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from binance_userstream import Account, load_accounts
from binance_userstream.fleet import load_accounts as load_from_fleet

KEY = "AliceKey" + "0" * 56
SECRET = "AliceSecret" + "1" * 53


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """keys/alice.key and keys/alice.secret beside the accounts file."""
    (tmp_path / "keys").mkdir()
    write(tmp_path / "keys" / "alice.key", KEY + "\n")
    write(tmp_path / "keys" / "alice.secret", SECRET + "\n")
    return tmp_path / "keys"


ALICE = """
[[account]]
id = "alice"
api_key_file = "keys/alice.key"
api_secret_file = "keys/alice.secret"
"""


def accounts_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    return write(tmp_path / "accounts.toml", text, mode)


def refusal(path: Path) -> str:
    with pytest.raises(ValueError, match=r"\S") as caught:
        load_accounts(path)
    message = str(caught.value)
    assert KEY not in message
    assert SECRET not in message
    return message


def test_load_accounts_is_exported_from_the_package_and_the_fleet() -> None:
    assert load_from_fleet is load_accounts


def test_an_account_gets_its_key_and_secret_from_the_files_named_relative_to_the_accounts_file(
    tmp_path: Path, keys: Path
) -> None:
    [account] = load_accounts(accounts_file(tmp_path, ALICE))
    assert account == Account(id="alice", api_key=KEY, api_secret=SECRET)


def test_absolute_paths_are_taken_as_they_are(tmp_path: Path, keys: Path) -> None:
    elsewhere = tmp_path / "conf"
    elsewhere.mkdir()
    text = ALICE.replace('"keys/', f'"{keys}/')
    [account] = load_accounts(accounts_file(elsewhere, text))
    assert account.api_secret == SECRET


def test_a_private_key_account_gets_the_path_of_its_pem_and_its_passphrase(
    tmp_path: Path, keys: Path
) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    (keys / "bob.pem").write_bytes(pem)
    write(keys / "bob.pass", "two words\n")
    text = ALICE + '\n[[account]]\nid = "bob"\napi_key_file = "keys/alice.key"\n'
    text += 'private_key_file = "keys/bob.pem"\nprivate_key_passphrase_file = "keys/bob.pass"\n'
    _, bob = load_accounts(accounts_file(tmp_path, text))
    assert bob.private_key == keys / "bob.pem"
    assert bob.private_key_passphrase == "two words"


def test_an_isolated_margin_account_keeps_its_symbol(tmp_path: Path, keys: Path) -> None:
    [account] = load_accounts(accounts_file(tmp_path, ALICE + 'symbol = "BTCUSDT"\n'))
    assert account.symbol == "BTCUSDT"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_an_accounts_file_others_may_read_is_refused_with_the_chmod_that_mends_it(
    tmp_path: Path, keys: Path, mode: int
) -> None:
    path = accounts_file(tmp_path, ALICE, mode)
    message = refusal(path)
    assert str(path) in message
    assert f"{mode:04o}" in message
    assert f"chmod 600 {path}" in message


def test_an_accounts_file_readable_by_its_owner_only_is_accepted_read_only_too(
    tmp_path: Path, keys: Path
) -> None:
    assert len(load_accounts(accounts_file(tmp_path, ALICE, 0o400))) == 1


@pytest.mark.parametrize("field", ["api_secret", "api_key", "private_key", "secret", "API_SECRET"])
def test_a_secret_written_inline_is_refused_without_showing_it(
    tmp_path: Path, keys: Path, field: str
) -> None:
    message = refusal(accounts_file(tmp_path, ALICE + f'{field} = "{SECRET}"\n'))
    assert "'alice'" in message
    assert field in message
    assert "a file of its own" in message


def test_an_unknown_field_is_named_with_the_fields_there_are(tmp_path: Path, keys: Path) -> None:
    message = refusal(accounts_file(tmp_path, ALICE + 'api_secrt_file = "x"\n'))
    assert "'alice', api_secrt_file: unknown field; did you mean api_secret_file?" in message


def test_an_account_without_an_id_is_named_by_its_place(tmp_path: Path, keys: Path) -> None:
    text = ALICE + '\n[[account]]\napi_key_file = "keys/alice.key"\n'
    message = refusal(accounts_file(tmp_path, text))
    assert "account #2 (the 2nd [[account]]): no id" in message


@pytest.mark.parametrize("bad", ['"has space"', '"x/y"', "7", f'"{"a" * 65}"'])
def test_an_id_that_is_no_plain_label_is_refused(tmp_path: Path, keys: Path, bad: str) -> None:
    text = ALICE.replace('id = "alice"', f"id = {bad}")
    message = refusal(accounts_file(tmp_path, text))
    assert "account #1 (the 1st [[account]]), id: an id is 1 to 64 letters" in message


def test_a_duplicate_id_names_both_accounts(tmp_path: Path, keys: Path) -> None:
    message = refusal(accounts_file(tmp_path, ALICE + ALICE))
    assert "account 'alice', id: accounts #1 and #2 both have it" in message


def test_an_account_without_an_api_key_file_is_refused(tmp_path: Path, keys: Path) -> None:
    message = refusal(accounts_file(tmp_path, ALICE.replace('api_key_file = "keys/alice.key"\n', "")))
    assert "account 'alice': no api_key_file" in message


@pytest.mark.parametrize(
    ("field", "name"), [("api_key_file", "alice.key"), ("api_secret_file", "alice.secret")]
)
def test_a_missing_key_file_is_named_with_its_account_and_field(
    tmp_path: Path, keys: Path, field: str, name: str
) -> None:
    (keys / name).unlink()
    message = refusal(accounts_file(tmp_path, ALICE))
    assert f"account 'alice', {field}: cannot read" in message
    assert "No such file" in message


def test_a_missing_private_key_file_is_named_with_its_account_and_field(tmp_path: Path, keys: Path) -> None:
    text = ALICE.replace('api_secret_file = "keys/alice.secret"', 'private_key_file = "keys/none.pem"')
    message = refusal(accounts_file(tmp_path, text))
    assert "account 'alice', private_key_file: cannot read" in message


def test_a_secret_and_a_private_key_both_are_refused(tmp_path: Path, keys: Path) -> None:
    message = refusal(accounts_file(tmp_path, ALICE + 'private_key_file = "keys/alice.key"\n'))
    assert "account 'alice': both api_secret_file and private_key_file: keep the one" in message


def test_a_passphrase_without_a_private_key_is_refused(tmp_path: Path, keys: Path) -> None:
    message = refusal(accounts_file(tmp_path, ALICE + 'private_key_passphrase_file = "keys/alice.key"\n'))
    assert "account 'alice': private_key_passphrase_file without private_key_file" in message


def test_a_key_file_that_holds_no_key_is_refused_without_its_content(tmp_path: Path, keys: Path) -> None:
    write(keys / "alice.key", f"{KEY} {SECRET}\n")
    message = refusal(accounts_file(tmp_path, ALICE))
    assert "account 'alice', api_key_file:" in message


def test_a_file_that_is_not_toml_says_where_without_its_content(tmp_path: Path) -> None:
    message = refusal(accounts_file(tmp_path, f'[[account]]\nid = "alice"\napi_secret = {SECRET}\n'))
    assert "is not valid TOML" in message
    assert "line 3" in message


@pytest.mark.parametrize(
    ("text", "says"),
    [("", "lists no account"), ("[account]\nid = 'a'\n", "two brackets"), ("x = 1\n", "unknown key 'x'")],
)
def test_a_file_without_account_tables_says_how_to_write_them(tmp_path: Path, text: str, says: str) -> None:
    assert says in refusal(accounts_file(tmp_path, text))


def test_ten_thousand_accounts_load_in_a_few_seconds(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    count = 10_000
    lines = []
    for n in range(count):
        (keys / f"{n}.key").write_text(f"Key{n:061d}\n")
        (keys / f"{n}.secret").write_text(f"Secret{n:058d}\n")
        files = f'api_key_file = "keys/{n}.key"\napi_secret_file = "keys/{n}.secret"\n'
        lines.append(f'[[account]]\nid = "acct-{n}"\n{files}')
    path = accounts_file(tmp_path, "".join(lines))
    started = time.perf_counter()
    loaded = load_accounts(path)
    took = time.perf_counter() - started
    assert len(loaded) == count
    assert loaded[-1].api_secret == f"Secret{count - 1:058d}"
    assert took < 6, f"{count:,} accounts took {took:.1f} s"


def test_the_mode_is_checked_on_the_file_itself_through_a_symlink(tmp_path: Path, keys: Path) -> None:
    target = accounts_file(tmp_path, ALICE, 0o644)
    link = tmp_path / "link.toml"
    os.symlink(target, link)
    assert "chmod 600" in refusal(link)
