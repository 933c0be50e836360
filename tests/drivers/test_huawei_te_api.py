"""The Huawei action.cgi API, sans I/O: session steps, envelopes, errors, call status."""

from __future__ import annotations

import json

import pytest

from drivers.errors import InvalidParams
from drivers.huawei_te import api


def _reply(data: object, *, as_text: bool = True) -> bytes:
    payload = json.dumps(data) if as_text and not isinstance(data, str) else data
    return json.dumps({"success": 1, "data": payload}).encode()


def _error(code: int) -> bytes:
    return json.dumps({"success": 0, "error": {"id": 100666, "code": code, "params": []}}).encode()


def test_login_steps_carry_cookie_and_token() -> None:
    s = api.Session()
    req = s.request_session()
    assert req.target == "/action.cgi?ActionID=WEB_RequestSessionIDAPI"
    assert req.body == b"" and "Cookie" not in req.headers
    s.on_session(
        200,
        [("Set-Cookie", "SessionID=abc123; Path=/; Secure; HttpOnly")],
        _reply({"acSessionId": "", "szTermType": "Huawei TE20"}),
    )
    assert s.session_id == "abc123" and s.term_type == "Huawei TE20"
    login = s.login("api", "Change_Me")
    assert login.action == "WEB_RequestCertificateAPI"
    assert json.loads(login.body) == {"user": "api", "password": "Change_Me"}
    assert login.headers["Cookie"] == "SessionID=abc123"
    s.on_login(200, _reply({"acCSRFToken": "tok"}))
    call = s.call("WEB_CallNumberAPI", {"szNumber": "sip:a@b"})
    assert json.loads(call.body) == {"szNumber": "sip:a@b", "acCSRFToken": "tok"}
    assert call.headers["Cookie"] == "SessionID=abc123"


def test_data_as_json_text_or_as_value() -> None:
    assert api.decode_reply(200, _reply({"x": 1})) == {"x": 1}
    assert api.decode_reply(200, _reply("", as_text=False)) == ""
    assert api.decode_reply(200, json.dumps({"success": 1, "data": {"y": 2}}).encode()) == {"y": 2}


def test_errors_and_session_expiry() -> None:
    with pytest.raises(api.ApiFailure) as e:
        api.decode_reply(200, _error(api.ERR_STATE))
    assert e.value.code == api.ERR_STATE and e.value.error_id == 100666
    for code in (api.ERR_SESSION_INVALID, api.ERR_CSRF_INVALID):
        with pytest.raises(api.SessionExpired):
            api.decode_reply(200, _error(code))
    for status in (401, 403):
        with pytest.raises(api.SessionExpired):
            api.decode_reply(status, b"")
    s = api.Session()
    with pytest.raises(api.SessionExpired):
        s.call("WEB_OpenMicAPI")


@pytest.mark.parametrize(
    "body",
    [b"<html>502 Bad Gateway</html>", b"[]", b'{"success": 2}', b'{"success": 0}', b"\xff\xfe"],
)
def test_malformed_answers(body: bytes) -> None:
    with pytest.raises(api.MalformedReply):
        api.decode_reply(200, body)


def test_oversized_answer_and_http_errors() -> None:
    with pytest.raises(api.MalformedReply, match="over"):
        api.decode_reply(200, b" " * (api.MAX_BODY + 1))
    with pytest.raises(api.MalformedReply, match="500"):
        api.decode_reply(500, b"")


def test_login_refused_and_missing_cookie_or_token() -> None:
    s = api.Session()
    with pytest.raises(api.MalformedReply, match="no SessionID"):
        s.on_session(200, [("Content-Type", "text/plain")], _reply({}))
    s.on_session(200, [("set-cookie", "Other=1"), ("set-cookie", "SessionID=zz")], _reply({}))
    assert s.session_id == "zz"
    with pytest.raises(api.LoginRefused) as e:
        s.on_login(200, _error(api.ERR_LOGIN_FAILED))
    assert e.value.code == api.ERR_LOGIN_FAILED
    with pytest.raises(api.MalformedReply, match="acCSRFToken"):
        s.on_login(200, _reply({"nothing": 1}))


@pytest.mark.parametrize("bad", ["WEB_X", "CallNumberAPI", "WEB_Call Number API", "WEB_A\nAPI"])
def test_action_names_are_checked(bad: str) -> None:
    s = api.Session()
    s.session_id, s.csrf = "a", "b"
    with pytest.raises(ValueError):
        s.call(bad)


@pytest.mark.parametrize(
    "hostile", ['sip:a"@b', "a\r\nb", "sip:a b", "", "x" * 129, "南浔区", "a\\b", "a'b"]
)
def test_numbers_are_checked(hostile: str) -> None:
    with pytest.raises(InvalidParams) as e:
        api.check_number(hostile)
    assert e.value.field == "number"


def test_call_status_parsing() -> None:
    status = api.parse_call_status(
        {
            "bInConf": 1,
            "astSiteList": [
                {
                    "ucSiteHandle": 2,
                    "szNumber": "sip:a@b",
                    "szSiteName": "南浔",
                    "enCallState": "ALERTING",
                    "bIncoming": 0,
                    "ulCallRate": 1920,
                },
                {"garbage": True},
            ],
            "stLastCallEnd": {"ucSiteHandle": 1, "szNumber": "x", "ulReason": 486, "ulSeq": 4},
        }
    )
    assert [s.to_dict()["status"] for s in status.sites] == ["ringing"]
    assert status.sites[0].rate == 1920
    assert status.last_end is not None
    assert status.last_end["reason"] == "busy" and status.last_end["seq"] == 4
    assert api.parse_call_status({"astSiteList": [], "stLastCallEnd": {}}).last_end is None
    with pytest.raises(api.MalformedReply):
        api.parse_call_status([])
    with pytest.raises(api.MalformedReply):
        api.parse_call_status({"astSiteList": "x"})
