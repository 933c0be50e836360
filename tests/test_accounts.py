from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from wallctl import accounts_cli
from wallctl.accounts import (
    AUTH_FAILED,
    MALFORMED_ACCOUNT,
    MALFORMED_NONCE,
    MALFORMED_PROOF,
    Accounts,
    AuthError,
    Identity,
    Role,
    ScramState,
    _verifier,
    role_allows,
    scram_auth_message,
    scram_client_proof,
)
from wallctl.errors import Conflict, InvalidField, NotFound
from wallctl.store import Actor, Store

# RFC 7677 §3.
RFC_NONCE_C = "rOprNGfwEbeRWgbNEkqO"
RFC_NONCE = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_SALT = "W22ZaJ0SNY7soEsUEjb6gQ=="
RFC_PROOF = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
RFC_SERVER_SIG = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

PASSWORD = "correct horse battery staple"
CLIENT_NONCE = "fyko+d2lbbFgONRv9qkxdawL"
FAST = 4096  # the minimum: keeps the tests quick


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "wallctl.db", "normal")
    yield s
    s.close()


@pytest.fixture
async def accounts(store: Store) -> Accounts:
    a = Accounts(store, iterations=FAST)
    await a.load()
    return a


def db_bytes(folder: Path) -> bytes:
    """The database with its WAL and shared-memory files, whatever is left of them."""
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("wallctl.db"))


def login(accounts: Accounts, name: str, password: str) -> tuple[Identity, str, str]:
    challenge, state = accounts.begin(name, CLIENT_NONCE)
    msg = scram_auth_message(
        name, CLIENT_NONCE, challenge.salt, challenge.iterations, challenge.nonce
    )
    proof, expected = scram_client_proof(password, challenge.salt, challenge.iterations, msg)
    identity, server_sig = accounts.finish(state, proof)
    return identity, server_sig, expected


def test_rfc7677_vector_client_side() -> None:
    msg = scram_auth_message("user", RFC_NONCE_C, RFC_SALT, 4096, RFC_NONCE)
    assert msg == (f"n=user,r={RFC_NONCE_C},r={RFC_NONCE},s={RFC_SALT},i=4096,c=biws,r={RFC_NONCE}")
    assert scram_client_proof("pencil", RFC_SALT, 4096, msg) == (RFC_PROOF, RFC_SERVER_SIG)


def test_rfc7677_vector_server_side(accounts: Accounts) -> None:
    stored_key, server_key = _verifier("pencil", base64.b64decode(RFC_SALT), 4096)
    ident = Identity("user", Role.VIEWER, "user")
    state = ScramState(
        account="user",
        client_first_bare=f"n=user,r={RFC_NONCE_C}",
        server_first=f"r={RFC_NONCE},s={RFC_SALT},i=4096",
        nonce=RFC_NONCE,
        stored_key=stored_key,
        server_key=server_key,
        identity=ident,
    )
    assert accounts.finish(state, RFC_PROOF) == (ident, RFC_SERVER_SIG)


def test_role_order() -> None:
    assert role_allows(Role.ADMIN, Role.OPERATOR)
    assert role_allows(Role.OPERATOR, Role.OPERATOR)
    assert not role_allows(Role.VIEWER, Role.OPERATOR)
    assert not role_allows(Role.OPERATOR, Role.ADMIN)


async def test_round_trip(accounts: Accounts) -> None:
    added = await accounts.add("zhang.wei", PASSWORD, Role.OPERATOR, "张伟")
    assert added == Identity("zhang.wei", Role.OPERATOR, "张伟")
    identity, server_sig, expected = login(accounts, "zhang.wei", PASSWORD)
    assert identity == added
    assert hmac.compare_digest(server_sig, expected)
    # Names are found ignoring ASCII case; the stored spelling is who acts.
    identity, _, _ = login(accounts, "Zhang.Wei", PASSWORD)
    assert identity.account == "zhang.wei"
    assert accounts.get("ZHANG.WEI") == added
    assert accounts.list() == [added]


async def test_cjk_account(accounts: Accounts) -> None:
    await accounts.add("值班员01", PASSWORD, Role.VIEWER)
    identity, _, _ = login(accounts, "值班员01", PASSWORD)
    assert identity == Identity("值班员01", Role.VIEWER, "值班员01")


async def test_wrong_password(accounts: Accounts) -> None:
    await accounts.add("op", PASSWORD, Role.OPERATOR)
    with pytest.raises(AuthError) as e:
        login(accounts, "op", PASSWORD + "x")
    assert e.value.message == AUTH_FAILED
    assert e.value.code == "authentication_failed"


async def test_state_is_single_use(accounts: Accounts) -> None:
    await accounts.add("op", PASSWORD, Role.OPERATOR)
    challenge, state = accounts.begin("op", CLIENT_NONCE)
    msg = scram_auth_message(
        "op", CLIENT_NONCE, challenge.salt, challenge.iterations, challenge.nonce
    )
    proof, _ = scram_client_proof(PASSWORD, challenge.salt, challenge.iterations, msg)
    accounts.finish(state, proof)
    with pytest.raises(AuthError, match=f"^{AUTH_FAILED}$"):
        accounts.finish(state, proof)


async def test_unknown_account_indistinguishable(store: Store, accounts: Accounts) -> None:
    await accounts.add("real", PASSWORD, Role.OPERATOR)
    real, _ = accounts.begin("real", CLIENT_NONCE)
    fake1, state = accounts.begin("ghost", CLIENT_NONCE)
    fake2, _ = accounts.begin("ghost", CLIENT_NONCE)
    other, _ = accounts.begin("ghost2", CLIENT_NONCE)

    assert fake1.salt == fake2.salt != other.salt
    assert len(base64.b64decode(fake1.salt)) == len(base64.b64decode(real.salt))
    assert len(fake1.salt) == len(real.salt)
    assert fake1.iterations == real.iterations == FAST
    assert fake1.nonce.startswith(CLIENT_NONCE) and len(fake1.nonce) == len(real.nonce)
    assert fake1.nonce != fake2.nonce

    msg = scram_auth_message("ghost", CLIENT_NONCE, fake1.salt, fake1.iterations, fake1.nonce)
    proof, _ = scram_client_proof(PASSWORD, fake1.salt, fake1.iterations, msg)
    with pytest.raises(AuthError) as e:
        accounts.finish(state, proof)
    assert e.value.message == AUTH_FAILED

    # A restart (a new service on the same database) gives the same fake salt.
    again = Accounts(store, iterations=FAST)
    await again.load()
    assert again.begin("ghost", CLIENT_NONCE)[0].salt == fake1.salt
    assert again.begin("GHOST", CLIENT_NONCE)[0].salt == fake1.salt


async def test_disabled_account_gets_fake_challenge(accounts: Accounts) -> None:
    await accounts.add("admin", PASSWORD, Role.ADMIN)
    await accounts.add("op", PASSWORD, Role.OPERATOR)
    real, _ = accounts.begin("op", CLIENT_NONCE)
    await accounts.set_disabled("op", True)
    fake, _ = accounts.begin("op", CLIENT_NONCE)
    assert fake.salt != real.salt
    with pytest.raises(AuthError, match=f"^{AUTH_FAILED}$"):
        login(accounts, "op", PASSWORD)
    assert accounts.get("op") is None
    await accounts.set_disabled("op", False)
    assert login(accounts, "op", PASSWORD)[0].account == "op"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a" * 65,
        "a" * 1000,
        "bad\nname",
        "bad\x00",
        "tab\tname",
        "a,b",
        "n=x",
        "-opt",
        ".hidden",
        "a b",
        "évite",
        "a\u202eb",
        "user\r\n",
        "😀",
        42,
        None,
    ],
)
def test_malformed_account(accounts: Accounts, name: object) -> None:
    with pytest.raises(AuthError) as e:
        accounts.begin(name, CLIENT_NONCE)  # type: ignore[arg-type]
    assert e.value.message == MALFORMED_ACCOUNT


@pytest.mark.parametrize(
    "nonce",
    [
        "",
        "short",
        "a" * 257,
        "abcdefghijklmnop,q",
        "abcdefghijklmnop=",
        "abcdefgh ijklmnop",
        "abcdefghijklmnop\n",
        "abcdefghijklmnopé",
        None,
    ],
)
def test_malformed_nonce(accounts: Accounts, nonce: object) -> None:
    with pytest.raises(AuthError) as e:
        accounts.begin("someone", nonce)  # type: ignore[arg-type]
    assert e.value.message == MALFORMED_NONCE


@pytest.mark.parametrize(
    "proof",
    [
        "",
        "not base64!",
        "dHzb,ZapW",
        base64.b64encode(b"x" * 31).decode(),
        base64.b64encode(b"x" * 33).decode(),
        RFC_PROOF.rstrip("="),
        " " + RFC_PROOF,
        RFC_PROOF + "\n",
        "é" * 44,
    ],
)
async def test_malformed_proof(accounts: Accounts, proof: str) -> None:
    await accounts.add("op", PASSWORD, Role.OPERATOR)
    _, state = accounts.begin("op", CLIENT_NONCE)
    with pytest.raises(AuthError) as e:
        accounts.finish(state, proof)
    assert e.value.message == MALFORMED_PROOF


@pytest.mark.parametrize("name", ["a" * 1000, "x\x1b[31m", "system", "SYSTEM", "", "a,b"])
async def test_hostile_names_refused_on_add(accounts: Accounts, name: str) -> None:
    with pytest.raises(InvalidField) as e:
        await accounts.add(name, PASSWORD, Role.VIEWER)
    assert e.value.field == "account"
    assert "\x1b" not in e.value.message and "a" * 100 not in e.value.message


async def test_bad_password_display_role(accounts: Accounts) -> None:
    with pytest.raises(InvalidField, match="password must be 8-1024 characters"):
        await accounts.add("op", "short", Role.VIEWER)
    with pytest.raises(InvalidField, match="control characters"):
        await accounts.add("op", "long enough\n", Role.VIEWER)
    with pytest.raises(InvalidField, match="display name"):
        await accounts.add("op", PASSWORD, Role.VIEWER, "x\ny")
    with pytest.raises(InvalidField, match="role must be one of viewer, operator, admin"):
        await accounts.add("op", PASSWORD, "root")  # type: ignore[arg-type]
    assert accounts.list() == []


async def test_changes(accounts: Accounts) -> None:
    await accounts.add("admin", PASSWORD, Role.ADMIN)
    await accounts.add("op", PASSWORD, Role.OPERATOR)
    with pytest.raises(Conflict, match=r"^account 'OP' already exists$"):
        await accounts.add("OP", PASSWORD, Role.OPERATOR)
    await accounts.passwd("op", "new password 123")
    with pytest.raises(AuthError):
        login(accounts, "op", PASSWORD)
    assert login(accounts, "op", "new password 123")[0].account == "op"
    assert await accounts.set_role("op", Role.ADMIN) == Identity("op", Role.ADMIN, "op")
    assert await accounts.remove("op") is True
    assert await accounts.remove("op") is False
    with pytest.raises(NotFound, match=r"^account 'op' not found$"):
        await accounts.passwd("op", "new password 123")
    with pytest.raises(NotFound):
        await accounts.set_role("op", Role.VIEWER)
    # Nobody can lock every admin out.
    with pytest.raises(Conflict, match="last enabled admin"):
        await accounts.remove("admin")
    with pytest.raises(Conflict, match="last enabled admin"):
        await accounts.set_role("admin", Role.OPERATOR)
    with pytest.raises(Conflict, match="last enabled admin"):
        await accounts.set_disabled("admin", True)


async def test_change_elsewhere_seen_at_next_login(store: Store, accounts: Accounts) -> None:
    await accounts.add("op", PASSWORD, Role.OPERATOR)
    # The CLI: another store and service on the same database file.
    cli_store = Store(store.path, "normal")
    try:
        cli = Accounts(cli_store, iterations=FAST)
        cli.add_sync("late", PASSWORD, Role.VIEWER)
        cli.passwd_sync("op", "changed elsewhere")
    finally:
        cli_store.close()
    assert login(accounts, "late", PASSWORD)[0].role == Role.VIEWER
    assert login(accounts, "op", "changed elsewhere")[0].account == "op"


async def test_database_holds_no_password_equivalent(
    tmp_path: Path, store: Store, accounts: Accounts
) -> None:
    passwords = {"op": "Pa55word-for-op", "dispatch": "dispatch-machine-secret-xyz"}
    for name, pw in passwords.items():
        await accounts.add(name, pw, Role.OPERATOR)
    await accounts.passwd("op", "Second-pa55word")
    passwords["op2"] = "Second-pa55word"
    rows = store.read_sync(
        lambda c: c.execute("SELECT account, salt, iterations, stored_key FROM accounts").fetchall()
    )
    salts = {name: (bytes(salt), it, bytes(sk)) for name, salt, it, sk in rows}
    store.close()
    blob = db_bytes(tmp_path)
    for name, pw in [("op", "Second-pa55word"), ("dispatch", passwords["dispatch"])]:
        salt, it, stored_key = salts[name]
        salted = hashlib.pbkdf2_hmac("sha256", pw.encode(), salt, it)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        assert hashlib.sha256(client_key).digest() == stored_key
        for secret in (salted, client_key, base64.b64encode(salted), salted.hex().encode()):
            assert secret not in blob
    for pw in (*passwords.values(), "Pa55word-for-op"):
        assert pw.encode() not in blob
        assert pw.encode("utf-16-le") not in blob


async def test_audit_entries(store: Store, accounts: Accounts) -> None:
    actor = Actor("chief", via="api", session="s1")
    await accounts.add("admin", PASSWORD, Role.ADMIN, actor=actor)
    await accounts.add("op", PASSWORD, Role.OPERATOR, "值班", actor=actor)
    await accounts.passwd("op", "another password", actor=actor)
    await accounts.set_role("op", Role.VIEWER, actor=actor)
    await accounts.set_disabled("op", True, actor=actor)
    await accounts.remove("op", actor=actor)
    entries = list(reversed(store.audit_log()))
    assert [e.action for e in entries] == [
        "account.add",
        "account.add",
        "account.passwd",
        "account.role",
        "account.disable",
        "account.remove",
    ]
    assert all(e.actor == "chief" and e.via == "api" and e.session == "s1" for e in entries)
    assert entries[1].detail == {"account": "op", "role": "operator", "display_name": "值班"}
    assert entries[2].detail == {"account": "op", "iterations": FAST}
    text = repr(entries)
    assert PASSWORD not in text and "another password" not in text
    assert not any("key" in k or "salt" in k or "pass" in k for e in entries for k in e.detail)


async def test_ensure_bootstrap(tmp_path: Path, accounts: Accounts) -> None:
    pw_file = tmp_path / "secrets" / "admin-password"
    assert await accounts.ensure_bootstrap(pw_file) == str(pw_file)
    assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600
    password = pw_file.read_text().strip()
    assert len(password) >= 24
    assert login(accounts, "admin", password)[0].role == Role.ADMIN
    assert await accounts.ensure_bootstrap(tmp_path / "other") is None
    assert not (tmp_path / "other").exists()


def test_iterations_bounds(store: Store) -> None:
    with pytest.raises(ValueError, match="4096"):
        Accounts(store, iterations=1000)


# --- CLI ------------------------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="wallctl")
    accounts_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def test_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sd = ("--state-dir", str(tmp_path / "state"))
    monkeypatch.setenv("WALLCTL_PASSWORD", PASSWORD)
    assert run_cli("accounts", "add", "admin", "--role", "admin", *sd) == 0
    assert (
        run_cli("accounts", "add", "op", "--role", "operator", "--display-name", "值班员", *sd) == 0
    )
    assert run_cli("accounts", "add", "dispatch", "--role", "operator", "--generate", *sd) == 0
    out = capsys.readouterr().out
    generated = out.split("password for 'dispatch': ")[1].split()[0]
    assert len(generated) >= 40

    assert run_cli("accounts", "add", "op", "--role", "viewer", *sd) == 2
    assert capsys.readouterr().err == "wallctl accounts: error: account 'op' already exists\n"
    assert run_cli("accounts", "add", "bad\x1bname", "--role", "viewer", *sd) == 2
    err = capsys.readouterr().err
    assert err.startswith("wallctl accounts: error: account name must be 1-64 characters")
    assert "\x1b" not in err
    assert run_cli("accounts", "add", "x" * 1000, "--role", "viewer", *sd) == 2
    capsys.readouterr()

    pw_file = tmp_path / "pw"
    pw_file.write_text("from a file 42\n")
    assert run_cli("accounts", "passwd", "op", "--password-file", str(pw_file), *sd) == 0
    assert run_cli("accounts", "role", "op", "viewer", *sd) == 0
    assert run_cli("accounts", "disable", "dispatch", *sd) == 0
    capsys.readouterr()

    assert run_cli("accounts", "list", *sd) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["ACCOUNT", "ROLE", "DISPLAY", "NAME", "DISABLED"]
    assert lines[1].split() == ["admin", "admin", "admin"]
    assert lines[2].split() == ["dispatch", "operator", "dispatch", "yes"]
    assert lines[3].split() == ["op", "viewer", "值班员"]
    assert PASSWORD not in out and "from a file" not in out

    assert run_cli("accounts", "remove", "ghost", *sd) == 3
    assert capsys.readouterr().err == "wallctl accounts: error: account 'ghost' not found\n"
    assert run_cli("accounts", "passwd", "ghost", *sd) == 3
    assert run_cli("accounts", "role", "ghost", "admin", *sd) == 3
    assert run_cli("accounts", "remove", "admin", *sd) == 2
    assert "last enabled admin" in capsys.readouterr().err
    assert run_cli("accounts", "remove", "op", *sd) == 0
    with pytest.raises(SystemExit) as e:
        run_cli("accounts", "role", "op", "root", *sd)
    assert e.value.code == 2

    store = Store(tmp_path / "state" / "wallctl.db")
    try:
        accounts = Accounts(store)
        assert [i.account for i in accounts.list_sync()] == ["admin"]
        entries = store.audit_log()
        assert {e.via for e in entries} == {"cli"}
        assert all(e.actor.startswith("local:") for e in entries)
        assert "account.passwd" in {e.action for e in entries}
    finally:
        store.close()


def test_cli_no_password_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("WALLCTL_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code = run_cli("accounts", "add", "op", "--role", "viewer", "--state-dir", str(tmp_path))
    assert code == 2
    assert capsys.readouterr().err == (
        "wallctl accounts: error: no password given: use --password-file, $WALLCTL_PASSWORD, "
        "--generate or run on a terminal\n"
    )


def test_cli_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    assert run_cli("accounts", "list", "--config", str(missing)) == 2
    assert "cannot read" in capsys.readouterr().err
