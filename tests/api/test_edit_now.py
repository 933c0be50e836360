"""Wall edits answered from a callback once durable (Session._edit_now): answers keep the
order of their requests whatever mix of requests a client pipelines, every outcome is
answered as the general path answers it, and a change is finished even when the client
that asked for it is gone."""

from __future__ import annotations

import asyncio
import errno
import json
from pathlib import Path
from typing import Any

import pytest

import wallctl.store as store_mod

from .conftest import Api, raw_login, recv_json, slow_reader, start_api, stop_api


def move(rid: int, window: str, x: int, **extra: Any) -> str:
    params = {"window": window, "x": x, "y": 100, **extra}
    return json.dumps({"op": "request", "id": rid, "method": "window.move", "params": params})


async def one_window(api: Api) -> str:
    c = await api.client("op1")
    try:
        r = await c.call("window.open", {"x": 0, "y": 0, "w": 200, "h": 150})
        return str(r["window"]["id"])
    finally:
        await c.close()


async def test_pipelined_requests_are_answered_in_their_order(api: Api) -> None:
    """A move is answered once durable; a read sent right behind it waits for that answer
    and sees the move; an error behind a pending move comes after it."""
    win = await one_window(api)
    before = api.walls.state("main").revision
    ws = await raw_login(api.url)
    for raw in (
        move(1, win, 300),
        json.dumps({"op": "request", "id": 2, "method": "wall.get"}),
        move(3, win, 400),
        move(4, "w999", 10),
        move(5, win, 500, snap="yes"),
        move(6, win, 600),
    ):
        await ws.send(raw)
    answers = [await recv_json(ws) for _ in range(6)]
    assert [a["id"] for a in answers] == [1, 2, 3, 4, 5, 6]
    first, got, third, missing, bad, last = answers
    assert first["ok"] and first["result"]["revision"] == before + 1
    assert first["result"]["window"]["x"] == 300
    state = got["result"]["state"]
    assert state["revision"] == before + 1
    assert next(w for w in state["windows"] if w["id"] == win)["x"] == 300
    assert third["ok"] and third["result"]["revision"] == before + 2
    assert missing["error"]["code"] == "not_found"
    assert missing["error"]["field"] == "params.window"
    assert bad["error"]["code"] == "invalid_field"
    assert bad["error"]["field"] == "params.snap"
    assert last["ok"] and last["result"]["revision"] == before + 3
    assert api.walls.state("main").window(win).x == 600  # type: ignore[union-attr]
    await ws.close()


async def test_a_pipelined_flood_of_moves_is_limited_and_answered_in_order(
    tmp_path: Path, accounts_db: Path
) -> None:
    api = await start_api(tmp_path, accounts_db, rate_limit=50, rate_burst=20)
    try:
        win = await one_window(api)
        ws = await raw_login(api.url)
        n = 300
        for i in range(n):
            await ws.send(move(i, win, 10 + i))
        answers = [await recv_json(ws) for _ in range(n)]
        assert [a["id"] for a in answers] == list(range(n))
        ok = [a for a in answers if a["ok"]]
        limited = [a for a in answers if not a["ok"]]
        assert 20 <= len(ok) < 60
        assert {a["error"]["code"] for a in limited} == {"rate_limited"}
        revisions = [a["result"]["revision"] for a in ok]
        assert revisions == list(range(revisions[0], revisions[0] + len(ok)))
        # The wall is where the last accepted move put it.
        assert api.walls.state("main").window(win).x == ok[-1]["result"]["window"]["x"]  # type: ignore[union-attr]
        await ws.close()
    finally:
        await stop_api(api)


async def test_a_change_the_store_refuses_is_answered_unavailable_and_undone(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    win = await one_window(api)
    head = api.walls.state("main")
    real_write = store_mod._Journal._write

    def full_disk(self: Any, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_mod._Journal, "_write", full_disk)
    ws = await raw_login(api.url)
    await ws.send(move(1, win, 700))
    answer = await recv_json(ws)
    assert answer["ok"] is False
    assert answer["error"]["code"] == "unavailable" and answer["error"]["retryable"] is True
    assert api.walls.state("main") == head
    # The next move builds on the durable wall, not on the refused one.
    monkeypatch.setattr(store_mod._Journal, "_write", real_write)
    await ws.send(move(2, win, 800))
    answer = await recv_json(ws)
    assert answer["ok"] and answer["result"]["revision"] == head.revision + 1
    await ws.close()


async def test_a_change_whose_requester_left_is_finished_and_announced(api: Api) -> None:
    win = await one_window(api)
    viewer = await api.client("viewer1", subscriptions=["wall"])
    await viewer.next_event("snapshot")
    ws = await raw_login(api.url)
    await ws.send(move(1, win, 900))
    # Gone without a word, before its answer can reach it.
    ws.transport.abort()
    event = await asyncio.wait_for(viewer.next_event("wall.changed"), 10)
    moved = next(w for w in event["data"]["state"]["windows"] if w["id"] == win)
    assert moved["x"] == 900
    assert api.walls.state("main").window(win).x == 900  # type: ignore[union-attr]
    await viewer.close()


async def test_an_answer_the_socket_cannot_take_waits_and_keeps_its_place(api: Api) -> None:
    """The mover's own socket is backed up with events it has not read: the move's answer
    goes behind them through websockets' send (never dropped, never overtaken by the
    read sent behind it)."""
    op = await api.client("op2")
    slow = await slow_reader(api, op, "op1")
    session = next(
        s for s in api.server.sessions.values() if s.identity and s.identity.account == "op1"
    )
    # Past the kernel's buffers (loopback grows the server's send buffer to megabytes).
    for i in range(3000):
        if session.ws.transport.get_write_buffer_size():
            break
        await op.call("window.move", {"window": "w2", "x": i % 2, "y": 0})
    assert session.ws.transport.get_write_buffer_size(), "the slow socket never filled"
    waited: list[bytes] = []
    send_later = session._send_later

    async def spy(data: bytes) -> None:
        waited.append(data)
        await send_later(data)

    session._send_later = spy  # type: ignore[method-assign]
    await slow.send(move(1, "w1", 1234))
    await slow.send(json.dumps({"op": "request", "id": 2, "method": "wall.get"}))
    for _ in range(250):
        if session.requests >= 2 and not session._unsent:
            break
        await asyncio.sleep(0.02)
    assert [json.loads(d)["id"] for d in waited] == [1], "the answer did not go behind the queue"
    answers = []
    while len(answers) < 2:
        msg = await recv_json(slow, wait=10)
        if msg["op"] == "response":
            answers.append(msg)
    assert [a["id"] for a in answers] == [1, 2]
    assert answers[0]["ok"] and answers[0]["result"]["window"]["x"] == 1234
    state = answers[1]["result"]["state"]
    assert next(w for w in state["windows"] if w["id"] == "w1")["x"] == 1234
    await slow.close()
    await op.close()
