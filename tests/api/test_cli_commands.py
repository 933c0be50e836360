from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from wallctl.api.cli_commands import add_parsers

from .conftest import PASSWORD, Api


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


async def test_wall_show_and_layout_apply(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    conn = ["--url", api.url, "--account", "op1", "--password-file", str(pw)]
    args = parse(["layout", "apply", "3x3", *conn, "--source", "bars"])
    assert await asyncio.to_thread(args.func, args) == 0
    assert "layout 3x3 applied, revision 2" in capsys.readouterr().out
    args = parse(["wall", "show", *conn])
    assert await asyncio.to_thread(args.func, args) == 0
    out = capsys.readouterr().out
    assert "revision 2, layout 3x3" in out and "bars" in out
    args = parse(["layout", "apply", "nosuch", *conn])
    assert await asyncio.to_thread(args.func, args) == 3
    assert "not_found" in capsys.readouterr().err
    args = parse(
        [
            "wall",
            "show",
            "--url",
            api.url,
            "--account",
            "op1",
            "--password-file",
            str(pw),
            "--wall",
            "side",
            "--json",
        ]
    )
    assert await asyncio.to_thread(args.func, args) == 0
    pw.write_text("wrong password")
    args = parse(["wall", "show", *conn])
    assert await asyncio.to_thread(args.func, args) == 1
    assert "4005" in capsys.readouterr().err
