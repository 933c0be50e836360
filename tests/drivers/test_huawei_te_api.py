"""The Huawei action.cgi API, sans I/O: the document's own examples, envelopes, sessions,
the keep-alive mailbox, and hostile input."""

from __future__ import annotations

import json

import pytest

from drivers.errors import InvalidParams
from drivers.huawei_te import api

# --- the examples as the documents print them (docs/huawei-te-api-notes.md) ------------------

# TE10/TE20 编程参考, 登录认证类 (88d7232c): note the blank acSessionId.
TE_SESSION_OK = (
    b'{"success":1,"data":"{\\"acSessionId\\":\\" \\",\\"szTermType\\":\\"Huawei TE10\\"}"}'
)
# IdeaHub 0014 (请求SessionID) and 0016 (更换SessionID): the whole HTTP answer.
IH_SESSION_HEADERS = [
    (
        "Set-Cookie",
        "SessionID=161419d23001a280c8cab12b4c93b1cb1757c5e99243e470d17104aa7314b8ca; "
        "Path=/; Secure; HttpOnly",
    ),
    ("Connection", "Keep-Alive"),
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Type", "text/plain"),
    ("Response-Result", "1"),
    ("Content-Length", "83"),
]
IH_SESSION_OK = (
    b'{"success":1,"data":"{\\"acSessionId\\":\\"\\",\\"szTermType\\":\\"Terminal Type\\"}"}'
)
IH_CHANGED_COOKIE = (
    "SessionID=920ac57c3a96c61a3350dd077b772d6483b75ba7a6a16b9c1531bbe7bd878580; "
    "Path=/; Secure; HttpOnly"
)
# IdeaHub 0015 (登录): the request body of the example.
IH_LOGIN_BODY = b'{"user":"api","password":"Change_Me"}'
# TE 会议、呼叫类 (41ccc313): WEB_RequestCallTypeDataAPI.
TE_CALL_TYPES_OK = b'{"success":1,"data":"{\\"value\\":[3,4,8,10]}"}'
# TE 图像与声音类 (9df4c0bd): WEB_OpenMicAPI, and the failure example of every page.
TE_EMPTY_OK = b'{"success":1,"data":""}'
TE_FAILURE = b'{"success":0,"error":{"id":100666995,"code":33558532,"params":[]}}'
# IdeaHub MSG_CALL_RSP: the Data example.
IH_CALL_RSP_DATA = (
    '{ "result": 0, "siteNum": 1, "resID": 123456, "param1": "siteName", "param2": "" }'
)


def test_the_documented_session_answers_log_in() -> None:
    s = api.Session()
    req = s.request_session()
    assert req.target == "/action.cgi?ActionID=WEB_RequestSessionIDAPI"
    assert req.body == b"" and "Cookie" not in req.headers
    s.on_session(200, IH_SESSION_HEADERS, IH_SESSION_OK)
    assert s.session_id == "161419d23001a280c8cab12b4c93b1cb1757c5e99243e470d17104aa7314b8ca"
    assert s.term_type == "Terminal Type"
    login = s.login("api", "Change_Me")
    assert login.action == "WEB_RequestCertificateAPI" and login.body == IH_LOGIN_BODY
    assert login.headers["Cookie"] == f"SessionID={s.session_id}"
    s.on_login(200, json.dumps({"success": 1, "data": '{"acCSRFToken":"tok"}'}).encode())
    change = s.change_session()
    assert change.action == "WEB_ChangeSessionIDAPI" and change.body == b""
    assert s.on_change_session(200, [("Set-Cookie", IH_CHANGED_COOKIE)], IH_SESSION_OK)
    assert s.session_id is not None and s.session_id.startswith("920ac57c")
    cancel = s.call("WEB_CancelCallAPI", {"ucSiteHandle": 1})
    assert cancel.body == b'{"ucSiteHandle":1,"acCSRFToken":"tok"}'
    assert cancel.headers["Cookie"] == f"SessionID={s.session_id}"


def test_te10_session_example_without_cookie_is_no_session() -> None:
    # The TE example's acSessionId is blank: the id must come in the cookie.
    assert api.decode_reply(200, TE_SESSION_OK) == {
        "acSessionId": " ",
        "szTermType": "Huawei TE10",
    }
    s = api.Session()
    with pytest.raises(api.MalformedReply, match="no SessionID"):
        s.on_session(200, [("Content-Type", "text/plain")], TE_SESSION_OK)
    # Older firmware that hands the id out in the body is taken at its word.
    legacy = json.dumps({"success": 1, "data": '{"acSessionId":"abc123"}'}).encode()
    s.on_session(200, [], legacy)
    assert s.session_id == "abc123"
    login = s.login("api", "x")
    assert login.headers["Sessionid"] == "abc123" and login.headers["Cookie"] == "SessionID=abc123"
    s.on_session(200, IH_SESSION_HEADERS, IH_SESSION_OK)
    assert "Sessionid" not in s.login("api", "x").headers


def test_documented_data_and_failure_examples() -> None:
    assert api.decode_reply(200, TE_CALL_TYPES_OK) == {"value": [3, 4, 8, 10]}
    assert api.decode_reply(200, TE_EMPTY_OK) == ""
    with pytest.raises(api.ApiFailure) as e:
        api.decode_reply(200, TE_FAILURE)
    assert (e.value.code, e.value.error_id, e.value.params) == (33558532, 100666995, [])
    assert "33558532" in e.value.text and "100666995" in e.value.text


def test_documented_call_answer_message() -> None:
    msg = api.parse_message(
        {
            "msgName": "MSG_CALL_RSP",
            "subMsgID": api.SUB_OUTGOING | (1 << 4),
            "Param1": 0,
            "Param2": 0,
            "Data": IH_CALL_RSP_DATA,
        }
    )
    assert msg is not None
    assert (msg.handle, msg.incoming, msg.result) == (1, False, 0)
    assert msg.text("param1") == "siteName"
    # A failure: result and Param2 carry the cause.
    failed = api.parse_message(
        {"msgName": "MSG_CALL_RSP", "subMsgID": 0x32, "param1": 1, "param2": 486}
    )
    assert failed is not None
    assert (failed.handle, failed.result, failed.failure_code) == (3, 1, 486)
    assert api.end_reason(failed.failure_code) == "busy"
    assert api.end_reason(33558532) == "failed" and api.end_reason(None) == "failed"


def test_data_as_json_text_as_object_and_success_as_text() -> None:
    assert api.decode_reply(200, b'{"success":1,"data":{"y":2}}') == {"y": 2}
    assert api.decode_reply(200, b'{"success":"1","data":"[1,2]"}') == [1, 2]
    assert api.decode_reply(200, b'{"success":1,"data":"{broken"}') == "{broken"
    with pytest.raises(api.ApiFailure) as e:
        api.decode_reply(200, b'{"success":0,"error":{"id":"7","code":"9","params":"x"}}')
    assert (e.value.code, e.value.error_id, e.value.params) == (9, 7, [])


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b"[]",
        b'{"success": 2}',
        b'{"success": 0}',
        b'{"success": 0, "error": {"id": 1}}',
        b"\xff\xfe",
    ],
)
def test_malformed_answers(body: bytes) -> None:
    with pytest.raises(api.MalformedReply):
        api.decode_reply(200, body)


def test_http_status_oversize_and_not_logged_in() -> None:
    for status in (401, 403):
        with pytest.raises(api.SessionLost):
            api.decode_reply(status, b"")
    with pytest.raises(api.MalformedReply, match="500"):
        api.decode_reply(500, b"")
    with pytest.raises(api.MalformedReply, match="over"):
        api.decode_reply(200, b" " * (api.MAX_BODY + 1))
    with pytest.raises(api.SessionLost):
        api.Session().call("WEB_OpenMicAPI")
    with pytest.raises(RuntimeError):
        api.Session().change_session()


def test_login_without_token_and_change_without_cookie() -> None:
    s = api.Session()
    s.on_session(200, IH_SESSION_HEADERS, IH_SESSION_OK)
    with pytest.raises(api.ApiFailure):
        s.on_login(200, TE_FAILURE)
    with pytest.raises(api.MalformedReply, match="acCSRFToken"):
        s.on_login(200, b'{"success":1,"data":"{\\"nothing\\":1}"}')
    s.on_login(200, b'{"success":1,"data":"{\\"acCSRFToken\\":\\"t\\"}"}')
    before = s.session_id
    # Firmware without a fresh id keeps the old one.
    assert s.on_change_session(200, [], TE_EMPTY_OK) is False
    assert s.session_id == before


def test_mailbox_state_and_messages() -> None:
    data = {
        "state": {"callstate": 1, "calltype": 8, "confstate": 1, "conftype": 0},
        "msg": [
            {"msgName": "MSG_START_CALL", "msgData": '{"siteNum":2,"siteText":"x","callDir":1}'},
            {"msgName": "MSG_SOMETHING_NEW", "param1": 5},
            {"garbage": True},
            "not a message",
        ],
    }
    box = api.parse_mailbox(data)
    assert box.state is not None and box.state.phase == "setup"
    assert [m.name for m in box.messages] == ["MSG_START_CALL", "MSG_SOMETHING_NEW"]
    start = box.messages[0]
    assert (start.handle, start.incoming, start.text("siteText")) == (2, False, "x")
    # The list may sit under any key, with the other spellings of the fields.
    other = api.parse_mailbox(
        {"astMsgList": [{"MsgName": "MSG_REJECT_CALL", "Data": {"siteNum": 4}}]}
    )
    assert other.state is None and other.messages[0].handle == 4
    assert api.parse_mailbox("").messages == ()
    with pytest.raises(api.MalformedReply):
        api.parse_mailbox([1, 2])


@pytest.mark.parametrize(
    ("state", "phase"),
    [
        ({"callstate": 0, "confstate": 0, "conftype": 0}, "idle"),
        ({"callstate": 0, "confState": "", "conftype": 0}, "idle"),
        ({"callstate": 1, "confstate": 2, "conftype": 0}, "setup"),
        ({"callstate": 2, "conftype": 1}, "up"),
        ({"callstate": "2", "conftype": "3"}, "up"),
        ({"callstate": 0, "confState": "active", "conftype": 0}, None),
        ({"nothing": 1}, None),
    ],
)
def test_call_state_phases(state: dict[str, object], phase: str | None) -> None:
    parsed = api.parse_state(state)
    assert parsed is not None and parsed.phase == phase


def test_audio_aux_and_dial_answers() -> None:
    assert api.mic_open({"MicSwitch": 1, "mic1": 0}) is True
    assert api.mic_open({"MicSwitch": 0}) is False
    assert api.mic_open("") is None and api.mic_open({"MicSwitch": "x"}) is None
    assert api.aux_sending({"isSendAux": "auxOpen"}) is True
    assert api.aux_sending({"isSendAux": "auxClose"}) is False
    assert api.aux_sending({"isSendAux": 1}) is None
    assert api.dial_handle("") is None and api.dial_handle({"siteNum": 3}) == 3


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


@pytest.mark.parametrize("value", ["0\n", "sip:alice@example.com\n", "8000\r\n"])
def test_a_number_with_a_trailing_line_break_is_refused(value: str) -> None:
    """A regex ending in "$" also matches before a final line break: refused all the same."""
    with pytest.raises(InvalidParams, match=r"may hold only .*found '\\n'|found '\\r'"):
        api.check_number(value)
    with pytest.raises(ValueError):
        api.check_action("WEB_GetMailboxDataAPI\n")
