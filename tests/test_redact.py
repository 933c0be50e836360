from __future__ import annotations

import re
import string
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wallctl.redact import MASK, is_secret_key, redact, redact_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rtsp://admin:hunter2@10.0.0.5:554/Streaming/101",
            "rtsp://admin:***@10.0.0.5:554/Streaming/101",
        ),
        ("rtsp://admin:hunter2@cam1", "rtsp://admin:***@cam1"),
        ("rtsp://:hunter2@cam1/x", "rtsp://:***@cam1/x"),
        ("rtsp://admin:@cam1/x", "rtsp://admin:***@cam1/x"),
        ("srt://u:p@host:9000?mode=caller", "srt://u:***@host:9000?mode=caller"),
        ("https://ghp_user@github.com/x", "https://ghp_user@github.com/x"),
        ("rtsp://cam1:554/stream", "rtsp://cam1:554/stream"),
        ("rtsp://cam1/stream", "rtsp://cam1/stream"),
        ("http://[::1]:8080/healthz", "http://[::1]:8080/healthz"),
        ("http://[fe80::1%25eth0]/", "http://[fe80::1%25eth0]/"),
        ("rtsp://u:pw@[::1]:554/live", "rtsp://u:***@[::1]:554/live"),
        ("rtsp://u:pw@[2001:db8::7]/live", "rtsp://u:***@[2001:db8::7]/live"),
        # Percent-encoded reserved characters, as a well-formed URL carries them.
        ("rtsp://u:p%40ss%3Aw%2Frd@h/x", "rtsp://u:***@h/x"),
        ("rtsp://us%40er:pw@h/x", "rtsp://us%40er:***@h/x"),
        # A colon inside the password: the user name ends at the first one.
        ("rtsp://u:a:b:c@h/x", "rtsp://u:***@h/x"),
        # Unencoded '@' in the password: the host follows the last '@', as for urlsplit.
        ("rtsp://admin:p@ss@10.0.0.1/x", "rtsp://admin:***@10.0.0.1/x"),
        # Unencoded delimiters in the password that cut the authority short.
        ("rtsp://admin:abc#123@10.0.0.1/x", "rtsp://admin:***@10.0.0.1/x"),
        ("rtsp://admin:ab?cd@10.0.0.1/x", "rtsp://admin:***@10.0.0.1/x"),
        ("rtsp://admin:ab/cd@10.0.0.1/x", "rtsp://admin:***@10.0.0.1/x"),
        ('rtsp://admin:a1"b@h/x', "rtsp://admin:***@h/x"),
        ("rtsp://admin:12345@192.168.1.64/x", "rtsp://admin:***@192.168.1.64/x"),
        # ... but a port followed by a path holding '@' is a plain URL.
        ("https://api.example/users/@me", "https://api.example/users/@me"),
        ("https://api.example:443/users/@me", "https://api.example:443/users/@me"),
        # A non-numeric "port" is treated as a truncated password (over-redaction).
        ("http://localhost:port/", "http://localhost:***/"),
        # An '@' after a port and a delimiter is not in the userinfo.
        ('{"u":"http://h:80","m":"x@y"}', '{"u":"http://h:80","m":"x@y"}'),
        ("http://h:80?mail=x@y", "http://h:80?mail=x@y"),
        ("http://u:p@h?mail=x@y", "http://u:***@h?mail=x@y"),
        ("http://h/p:x@y", "http://h/p:x@y"),
        ('["rtsp://h/x","a:b@c"]', '["rtsp://h/x","a:b@c"]'),
        # Several URLs in one string, glued together in reprs and JSON.
        (
            "from rtsp://a:one@h1/x to rtsp://b:two@h2/y",
            "from rtsp://a:***@h1/x to rtsp://b:***@h2/y",
        ),
        ('["rtsp://a:one@h1","http://c:two@h2"]', '["rtsp://a:***@h1","http://c:***@h2"]'),
        ("['http://h:8080','rtsp://a:two@c']", "['http://h:8080','rtsp://a:***@c']"),
        ("url=<rtsp://a:one@h1>", "url=<rtsp://a:***@h1>"),
        ("(see rtsp://a:one@h1)", "(see rtsp://a:***@h1)"),
        # Secret query parameters, any case, and only those.
        ("http://h/x?user=bob&password=pw&x=1", "http://h/x?user=bob&password=***&x=1"),
        ("http://h/x?PASSWD=pw", "http://h/x?PASSWD=***"),
        ("http://h/x?a=1&Pwd=pw#frag", "http://h/x?a=1&Pwd=***#frag"),
        ("http://h/x?token=t&access_token=at", "http://h/x?token=***&access_token=***"),
        ("http://h/x?secret=s&key=k", "http://h/x?secret=***&key=***"),
        # A value runs to the next &: a raw ";" in it must not let its tail out.
        ("http://h/x?pwd=a;b&c=1", "http://h/x?pwd=***&c=1"),
        ("http://h/x?auth=abc&author=me", "http://h/x?auth=***&author=me"),
        ("http://h/x?keyframe=1&monkey=2", "http://h/x?keyframe=1&monkey=2"),
        (
            "http://h/x?client_secret=s&refresh_token=r",
            "http://h/x?client_secret=***&refresh_token=***",
        ),
        ("http://u:p@h/x?token=t", "http://u:***@h/x?token=***"),
        # The same names in free text, e.g. a device echoing its login command.
        ("login user=admin password=abc ok", "login user=admin password=*** ok"),
        ('set password="a b c" done', "set password=*** done"),
        # Credentials in dumped HTTP headers.
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        ("authorization: Basic QWxhZGRpbjpvcGVu\nnext", "authorization: Basic ***\nnext"),
        (
            "{'Authorization': 'Basic QWxh', 'Accept': '*/*'}",
            "{'Authorization': 'Basic ***', 'Accept': '*/*'}",
        ),
        (
            'Proxy-Authorization: Digest username="u", response="r"',
            "Proxy-Authorization: Digest ***",
        ),
        ("sent Bearer eyJhbGciOi.eyJzdWIi.sig", "sent Bearer ***"),
        # Nothing to hide.
        ("", ""),
        ("plain text: nothing here", "plain text: nothing here"),
        ("窗口 1 切换到 摄像机 3", "窗口 1 切换到 摄像机 3"),
        ("a=1 b=2", "a=1 b=2"),
    ],
)
def test_redact_table(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "rtsp://" * 1000,
        "://:@" * 1000,
        "rtsp://u:" + "@" * 5000,
        "a" * 100_000 + "://x:y@z",
        "x=" * 10_000,
        "Authorization:" * 1000,
        "rtsp://u:p@h\x00\n\r\u2028rtsp://v:q@h",
    ],
)
def test_hostile_strings_terminate(text: str) -> None:
    result = redact(text)
    assert isinstance(result, str)
    assert redact(result) == result


def test_newline_between_urls_keeps_them_apart() -> None:
    assert redact("rtsp://a:one@h1\nrtsp://b:two@h2") == "rtsp://a:***@h1\nrtsp://b:***@h2"


_HOST = st.from_regex(r"[a-z][a-z0-9\-]{0,15}(\.[a-z0-9]{1,8}){0,3}", fullmatch=True)
_USER = st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=12)


@given(
    user=_USER,
    password=st.text(min_size=1, max_size=40),
    host=_HOST,
    port=st.none() | st.integers(1, 65535),
    scheme=st.sampled_from(["rtsp", "rtsps", "http", "https", "srt", "rtmp"]),
)
def test_percent_encoded_password_never_survives(
    user: str, password: str, host: str, port: int | None, scheme: str
) -> None:
    encoded = quote(password, safe="")
    netloc = f"{host}:{port}" if port is not None else host
    url = f"{scheme}://{user}:{encoded}@{netloc}/live/ch1"
    assert urlsplit(url).password == encoded
    assert redact(url) == f"{scheme}://{user}:***@{netloc}/live/ch1"
    text = f"switch from rtsp://cam0/x to {url} now"
    assert (
        redact(text) == f"switch from rtsp://cam0/x to {scheme}://{user}:***@{netloc}/live/ch1 now"
    )


def _recognisable_raw(password: str) -> bool:
    """Raw passwords the module documents it cannot tell from a path are left out."""
    if "://" in password:
        return False
    _, at, after_at = password.partition("@")
    if at and any(c in _DELIMITERS for c in after_at):
        return False
    return not re.match(r"[0-9]*[/?#\"']", password)


_DELIMITERS = "/?#\\\"'<>`{}|^"
# What operators actually type unencoded: printable ASCII but whitespace.
_RAW_PASSWORD = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30
).filter(_recognisable_raw)


@given(user=_USER, password=_RAW_PASSWORD, host=_HOST)
def test_unencoded_password_never_survives(user: str, password: str, host: str) -> None:
    url = f"rtsp://{user}:{password}@{host}/x"
    assert redact(url) == f"rtsp://{user}:***@{host}/x"


@given(st.text(max_size=200))
def test_redact_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "camera_password",
        "PASSWORD",
        "passwd",
        "pwd",
        "client_secret",
        "token",
        "access_token",
        "credentials",
        "Authorization",
        "api_key",
        "X-Api-Key",
        "wifi_psk",
        "passphrase",
    ],
)
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key", ["user", "username", "host", "url", "name", "keyframe", "layout", "author", "port"]
)
def test_plain_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_redact_value_masks_secret_keys_whatever_the_type() -> None:
    assert redact_value("password", "x") == MASK
    assert redact_value("token", 12345) == MASK
    assert redact_value("credentials", {"user": "u", "password": "p"}) == MASK


def test_redact_value_walks_containers() -> None:
    value = {
        "name": "cam1",
        "url": "rtsp://u:p@h/x",
        "auth": {"user": "admin", "password": "p"},
        "streams": [{"uri": "rtsp://a:b@h/1"}, ("http://h/?token=t", 3)],
        "port": 554,
        7: "rtsp://x:y@h",
    }
    assert redact_value("camera", value) == {
        "name": "cam1",
        "url": "rtsp://u:***@h/x",
        "auth": {"user": "admin", "password": MASK},
        "streams": [{"uri": "rtsp://a:***@h/1"}, ("http://h/?token=***", 3)],
        "port": 554,
        7: "rtsp://x:***@h",
    }


def test_redact_value_survives_cycles() -> None:
    loop: dict[str, object] = {"url": "rtsp://u:p@h"}
    loop["self"] = loop
    result = redact_value("x", loop)
    assert isinstance(result, dict)
    assert result["url"] == "rtsp://u:***@h"


def test_redact_value_leaves_other_objects() -> None:
    marker = object()
    assert redact_value("x", marker) is marker
    assert redact_value("x", None) is None
    assert redact_value("count", 3) == 3
