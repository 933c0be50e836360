"""``wallctl terminals add|list|remove`` against a real state database."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from wallctl.cli import main
from wallctl.store import Store
from wallctl.terminals.identities import Terminals


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


CAP: list[pytest.CaptureFixture[str]] = []


@pytest.fixture(autouse=True)
def _cap(capsys: pytest.CaptureFixture[str]) -> None:
    CAP[:] = [capsys]


def wallctl(state: Path, *args: str) -> Ran:
    """The CLI in this process (a subprocess per call costs seconds of imports)."""
    CAP[0].readouterr()
    try:
        code = main(["terminals", args[0], "--state-dir", str(state), *args[1:]])
    except SystemExit as e:  # argparse refusing the arguments
        code = int(e.code or 0)
    out = CAP[0].readouterr()
    return Ran(code, out.out, out.err)


def test_add_prints_what_the_phone_needs_and_keeps_only_a_hash(tmp_path: Path) -> None:
    r = wallctl(tmp_path, "add", "patrol-7", "--name", "巡逻七组")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "whip_url: http://127.0.0.1:8080/whip/patrol-7"
    assert lines[1].startswith("token: ") and len(lines[1]) > 7 + 40
    assert len(lines) == 2 and "public_url" in r.stderr  # 127.0.0.1 is no use to a phone
    token = lines[1].removeprefix("token: ")
    db = (tmp_path / "wallctl.db").read_bytes()
    wal = tmp_path / "wallctl.db-wal"
    assert token.encode() not in db + (wal.read_bytes() if wal.exists() else b"")
    store = Store(tmp_path / "wallctl.db", "normal")
    try:
        t = Terminals(store)
        info = t.verify("patrol-7", token)
        assert info is not None and info.name == "巡逻七组" and info.source == "mobile/patrol-7"
        assert t.verify("PATROL-7", token) is not None  # ids ignore ASCII case, as accounts
        assert t.verify("patrol-7", token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert t.verify("patrol-7", "") is None and t.verify("../x", token) is None
    finally:
        store.close()

    r = wallctl(tmp_path, "list", "--json")
    assert r.returncode == 0
    (row,) = json.loads(r.stdout)
    assert row["id"] == "patrol-7" and row["source"] == "mobile/patrol-7"
    assert token not in r.stdout
    assert wallctl(tmp_path, "list").stdout.startswith("patrol-7 ")


def test_bad_input_and_missing_terminals_have_their_exit_codes(tmp_path: Path) -> None:
    assert wallctl(tmp_path, "add", "unit-1").returncode == 0
    r = wallctl(tmp_path, "add", "UNIT-1")
    assert r.returncode == 2 and "already exists" in r.stderr
    for bad in ("-x", "a/b", "x" * 65, "巡逻"):
        r = wallctl(tmp_path, "add", bad)
        assert r.returncode == 2, bad
    r = wallctl(tmp_path, "add", "unit-2", "--name", "a\nb")
    assert r.returncode == 2 and "printable" in r.stderr
    assert wallctl(tmp_path, "remove", "unit-1").returncode == 0
    r = wallctl(tmp_path, "remove", "unit-1")
    assert r.returncode == 3 and "no terminal" in r.stderr
    assert json.loads(wallctl(tmp_path, "list", "--json").stdout) == []


def test_the_public_url_is_what_the_phone_gets(tmp_path: Path) -> None:
    cfg = tmp_path / "wallctl.toml"
    cfg.write_text(
        "[wall]\nmin_diagonal_cm = 10\n[wall.tiles]\nrows = 1\ncols = 1\n"
        "width_mm = 1209.6\nheight_mm = 680.4\nwidth_px = 1920\nheight_px = 1080\n"
        '[terminals]\npublic_url = "https://zhihui.example.gov.cn:8443/"\n'
    )
    r = wallctl(tmp_path, "add", "patrol-8", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "whip_url: https://zhihui.example.gov.cn:8443/whip/patrol-8"
    assert r.stderr == ""
