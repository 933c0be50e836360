from __future__ import annotations

import io
import json
import logging
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from wallctl.logs import StructFormatter, get_logger, parse_level, setup_logging

_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _owned_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if type(h).__name__ == "_Handler"]


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    root = logging.getLogger()
    level = root.level
    yield
    for handler in _owned_handlers():
        root.removeHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)


def parse_kv(line: str) -> dict[str, str]:
    """Read a kv line back, undoing the quoting and escapes."""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(line):
        eq = line.index("=", pos)
        key = line[pos:eq]
        assert key and " " not in key, line
        pos = eq + 1
        if line.startswith('"', pos):
            pos += 1
            chars: list[str] = []
            while line[pos] != '"':
                if line[pos] == "\\":
                    kind = line[pos + 1]
                    if kind in "xuU":
                        width = {"x": 2, "u": 4, "U": 8}[kind]
                        chars.append(chr(int(line[pos + 2 : pos + 2 + width], 16)))
                        pos += 2 + width
                        continue
                    chars.append({"n": "\n", "r": "\r", "t": "\t"}.get(kind, kind))
                    pos += 2
                else:
                    chars.append(line[pos])
                    pos += 1
            value = "".join(chars)
            pos += 1
        else:
            end = line.find(" ", pos)
            end = len(line) if end < 0 else end
            value = line[pos:end]
            assert value and '"' not in value and "=" not in value, line
            pos = end
        assert key not in fields, f"duplicate {key} in {line}"
        fields[key] = value
        if pos < len(line):
            assert line[pos] == " ", line
            pos += 1
    return fields


def lines(stream: io.StringIO) -> list[str]:
    text = stream.getvalue()
    assert text.endswith("\n") or not text
    return text.splitlines()


def test_kv_line_shape() -> None:
    out = io.StringIO()
    setup_logging("info", "kv", out)
    get_logger("wallctl.daemon").info(
        "component started", component="http", addr="127.0.0.1:8080", port=8080, tls=False
    )
    [line] = lines(out)
    assert re.fullmatch(
        r"ts=\S+ level=info logger=wallctl.daemon event=\"component started\" "
        r"component=http addr=127.0.0.1:8080 port=8080 tls=false",
        line,
    ), line
    fields = parse_kv(line)
    assert _TS.fullmatch(fields["ts"])
    assert fields["event"] == "component started"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "two words",
        'a "quoted" word',
        "a=b",
        "back\\slash",
        "line one\nline two",
        "cr\rlf\r\n",
        "tab\there",
        "\x00\x1b[31mred\x1b[0m",
        "sep\u2028ara\u2029tor\x85",
        "rtl \u202e override",
        "窗口 1\u3000摄像机",
        "lone \udc80 surrogate",
        "😀 emoji",
    ],
)
def test_kv_values_round_trip_on_one_line(value: str) -> None:
    out = io.StringIO()
    setup_logging("info", "kv", out)
    get_logger("t").info(value, name=value)
    [line] = lines(out)
    assert line.isprintable() or all(c.isprintable() or c == "\u3000" for c in line)
    fields = parse_kv(line)
    assert fields["event"] == value
    assert fields["name"] == value


def test_kv_structured_values() -> None:
    out = io.StringIO()
    setup_logging("info", "kv", out)
    get_logger("t").info(
        "x",
        none=None,
        ratio=0.5,
        tiles=[1, 2],
        exc=ValueError("bad thing"),
        cfg={"url": "rtsp://u:p@h", "password": "x"},
    )
    fields = parse_kv(lines(out)[0])
    assert fields["none"] == "null"
    assert fields["ratio"] == "0.5"
    assert json.loads(fields["tiles"]) == [1, 2]
    # A field may not take the name of a column the formatter writes.
    assert fields["exc_"] == "ValueError: bad thing"
    assert json.loads(fields["cfg"]) == {"url": "rtsp://u:***@h", "password": "***"}


def test_json_format() -> None:
    out = io.StringIO()
    setup_logging("debug", "json", out)
    get_logger("wallctl.api").debug(
        "request",
        method="wall.set_layout",
        n=3,
        ok=True,
        nested={"a": [1, None]},
        event="shadowed",
        when=Path("/x"),
        nan=float("nan"),
    )
    [line] = lines(out)
    obj = json.loads(line)
    assert _TS.fullmatch(obj.pop("ts"))
    assert obj == {
        "level": "debug",
        "logger": "wallctl.api",
        "event": "request",
        "method": "wall.set_layout",
        "n": 3,
        "ok": True,
        "nested": {"a": [1, None]},
        "event_": "shadowed",
        "when": "/x",
        "nan": "nan",
    }


def test_json_hostile_text_stays_on_one_line() -> None:
    out = io.StringIO()
    setup_logging("info", "json", out)
    hostile = 'x"}\n{"level":"error"\u2028\u2029\x85\r'
    get_logger("t").info(hostile, name=hostile)
    [line] = lines(out)
    obj = json.loads(line)
    assert obj["event"] == hostile
    assert obj["name"] == hostile


@pytest.mark.parametrize("fmt", ["kv", "json"])
def test_secrets_never_printed(fmt: str) -> None:
    out = io.StringIO()
    setup_logging("debug", fmt, out)  # type: ignore[arg-type]
    log = get_logger("wallctl.source")
    log.info(
        "open rtsp://admin:EVENTPW@cam/x",
        url="rtsp://u:URLPW@h/x",
        password="PASSWORDFIELD",
        api_token=12345678,
        config={"cameras": [{"url": "rtsp://a:NESTEDPW@h", "psk": "PSKVALUE"}]},
        query="http://h/x?token=QUERYTOKEN&x=1",
    )
    try:
        raise ConnectionError("cannot open rtsp://admin:EXCPW@cam/x")
    except ConnectionError:
        log.exception("open failed", source="cam")
    logging.getLogger("aiohttp.client").warning("GET %s", "http://u:THIRDPW@h/?secret=S3")
    log.bind(password="BOUNDPW").warning("bound")
    text = out.getvalue()
    for secret in [
        "EVENTPW",
        "URLPW",
        "PASSWORDFIELD",
        "12345678",
        "NESTEDPW",
        "PSKVALUE",
        "QUERYTOKEN",
        "EXCPW",
        "THIRDPW",
        "S3",
        "BOUNDPW",
    ]:
        assert secret not in text
    assert len(text.splitlines()) == 4


def test_exception_is_one_escaped_field() -> None:
    out = io.StringIO()
    setup_logging("info", "kv", out)
    log = get_logger("t")
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        log.exception("failed", step=2)
    try:
        raise KeyError("k")
    except KeyError as exc:
        log.warning("handled", exc_info=exc)
    log.exception("no exception active")
    first, second, third = lines(out)
    fields = parse_kv(first)
    assert fields["level"] == "error"
    assert fields["step"] == "2"
    assert fields["exc"].startswith("Traceback (most recent call last):\n")
    assert fields["exc"].endswith("RuntimeError: boom\nsecond line")
    assert parse_kv(second)["exc"].endswith("KeyError: 'k'")
    assert "exc" not in parse_kv(third)


def test_exception_in_json() -> None:
    out = io.StringIO()
    setup_logging("info", "json", out)
    try:
        raise ValueError("rtsp://u:p@h")
    except ValueError:
        get_logger("t").exception("failed")
    obj = json.loads(lines(out)[0])
    assert obj["exc"].endswith("ValueError: rtsp://u:***@h")


def test_level_filtering() -> None:
    out = io.StringIO()
    setup_logging("warning", "kv", out)
    log = get_logger("t")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    logging.getLogger("lib").info("lib info")
    logging.getLogger("lib").error("lib error")
    assert [parse_kv(line)["event"] for line in lines(out)] == ["w", "e", "lib error"]


def test_setup_again_changes_in_place() -> None:
    first = io.StringIO()
    setup_logging("info", "kv", first)
    setup_logging("info", "kv", first)
    get_logger("t").info("once")
    assert len(lines(first)) == 1
    assert len(_owned_handlers()) == 1

    # A SIGHUP reload switching level, format and stream.
    second = io.StringIO()
    setup_logging("debug", "json", second)
    get_logger("t").debug("after reload")
    assert len(_owned_handlers()) == 1
    assert len(lines(first)) == 1
    [line] = lines(second)
    assert json.loads(line)["event"] == "after reload"


def test_default_stream_is_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging()
    get_logger("t").info("to stdout")
    captured = capsys.readouterr()
    assert parse_kv(captured.out.splitlines()[-1])["event"] == "to stdout"
    assert captured.err == ""


def test_bad_level_and_format() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        setup_logging("verbose")
    with pytest.raises(ValueError, match="unknown log format"):
        setup_logging("info", "xml")  # type: ignore[arg-type]
    assert parse_level(" WARN ") == logging.WARNING


def test_third_party_records() -> None:
    out = io.StringIO()
    setup_logging("info", "kv", out)
    logging.getLogger("aiohttp.access").info('%s "%s" %d', "10.0.0.2", "GET /healthz", 200)
    logging.getLogger("x").error(ValueError("an object as message"))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("old api", DeprecationWarning, stacklevel=1)
    first, second, third = (parse_kv(line) for line in lines(out))
    assert first["logger"] == "aiohttp.access"
    assert first["event"] == '10.0.0.2 "GET /healthz" 200'
    assert second["event"] == "an object as message"
    assert third["logger"] == "py.warnings"
    assert "old api" in third["event"]


def test_record_with_mismatched_arguments_is_still_shown() -> None:
    # Built by hand: a logger call would also go through pytest's capture, which raises.
    record = logging.LogRecord(
        "aiortc", logging.WARNING, __file__, 1, "bad format %d", ("rtsp://u:p@h",), None
    )
    fields = parse_kv(StructFormatter("kv").format(record))
    assert fields["level"] == "warning"
    assert fields["event"] == "bad format %d ('rtsp://u:***@h',)"


def test_bind_adds_context() -> None:
    out = io.StringIO()
    setup_logging("info", "kv", out)
    log = get_logger("wallctl.driver").bind(device="matrix1", protocol="extron")
    log.info("connected", port=23)
    log.info("override", device="other")
    first, second = (parse_kv(line) for line in lines(out))
    assert (first["device"], first["protocol"], first["port"]) == ("matrix1", "extron", "23")
    assert second["device"] == "other"
    assert log.name == "wallctl.driver"


def _journal_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> io.TextIOWrapper:
    stream = open(tmp_path / "journal", "w", encoding="utf-8")
    st = os.fstat(stream.fileno())
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    return stream


def test_journal_stream_gets_syslog_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _journal_file(tmp_path, monkeypatch)
    with stream:
        setup_logging("debug", "kv", stream)
        log = get_logger("t")
        log.debug("d")
        log.info("i")
        log.warning("w")
        log.error("e")
        logging.getLogger("lib").critical("c")
    written = (tmp_path / "journal").read_text(encoding="utf-8").splitlines()
    assert [line[:3] for line in written] == ["<7>", "<6>", "<4>", "<3>", "<2>"]
    assert parse_kv(written[2][3:])["event"] == "w"


def test_journal_stream_of_another_file_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Inherited from a parent whose output went to the journal; ours goes elsewhere.
    _journal_file(tmp_path, monkeypatch).close()
    with open(tmp_path / "other", "w", encoding="utf-8") as other:
        setup_logging("info", "kv", other)
        get_logger("t").info("i")
    assert (tmp_path / "other").read_text(encoding="utf-8").startswith("ts=")


def test_journal_prefix_only_for_kv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _journal_file(tmp_path, monkeypatch)
    with stream:
        setup_logging("info", "json", stream)
        get_logger("t").info("i")
    json.loads((tmp_path / "journal").read_text(encoding="utf-8"))


def test_string_stream_with_journal_env_has_no_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    out = io.StringIO()
    setup_logging("info", "kv", out)
    get_logger("t").info("i")
    assert out.getvalue().startswith("ts=")


def test_a_library_basicconfig_handler_is_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    import logging
    import sys

    root = logging.getLogger()
    saved = list(root.handlers)
    foreign = logging.StreamHandler(sys.stderr)
    root.addHandler(foreign)
    try:
        setup_logging("info", "kv", stream=sys.stdout)
        assert foreign not in root.handlers
        logging.getLogger("wallctl.test").info("once only")
        out = capsys.readouterr()
        assert out.out.count("once only") == 1
        assert "once only" not in out.err
    finally:
        for h in list(root.handlers):
            if h not in saved:
                root.removeHandler(h)
