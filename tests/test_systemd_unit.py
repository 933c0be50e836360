"""The shipped systemd unit: what the design requires of it, and what systemd makes of it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEMD_DIR = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD_DIR / "wallctl.service"
X11_DROP_IN = SYSTEMD_DIR / "wallctl.service.d" / "x11-output.conf.example"

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Sections of directives; a directive may repeat (DeviceAllow=), so values are lists."""
    sections: Unit = {}
    current: dict[str, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"line {number}: continuation lines are not used"
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"line {number}: directive before any section"
        key, eq, value = line.partition("=")
        assert eq, f"line {number}: not a directive: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> Unit:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


REQUIRED_SERVICE = {
    "Type": "notify",
    "NotifyAccess": "main",
    "ExecStart": "/usr/local/bin/wallctl run --config /etc/wallctl/wallctl.toml",
    "ExecReload": "/bin/kill -HUP $MAINPID",
    "WatchdogSec": "30",
    "Restart": "on-failure",
    "RestartSec": "2",
    "TimeoutStopSec": "20",
    "User": "wallctl",
    "Group": "wallctl",
    "SupplementaryGroups": "dialout video audio",
    "StateDirectory": "wallctl",
    "ConfigurationDirectory": "wallctl",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "NoNewPrivileges": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "SystemCallArchitectures": "native",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    "DevicePolicy": "closed",
    "Environment": "MALLOC_MMAP_THRESHOLD_=268435456",
}


@pytest.mark.parametrize(("key", "value"), sorted(REQUIRED_SERVICE.items()))
def test_required_service_directive(unit: Unit, key: str, value: str) -> None:
    assert unit["Service"].get(key) == [value]


def test_device_allow_list(unit: Unit) -> None:
    assert sorted(unit["Service"]["DeviceAllow"]) == sorted(
        [
            "char-ttyS rw",
            "char-ttyUSB rw",
            "char-ttyACM rw",
            "char-video4linux rw",
            "char-alsa rw",
        ]
    )


def test_install_section(unit: Unit) -> None:
    assert unit["Install"] == {"WantedBy": ["multi-user.target"]}


def test_deliberately_absent_directives(unit: Unit) -> None:
    # PyAV/numpy/JIT code may need writable+executable memory; journald takes the logs.
    assert "MemoryDenyWriteExecute" not in unit["Service"]
    assert "LogsDirectory" not in unit["Service"]
    # Only an example, commented out: a real credential path is site-specific.
    assert "LoadCredential" not in unit["Service"]
    assert re.search(r"^#\s*LoadCredential=\S+:\S+", UNIT.read_text(), re.MULTILINE)


def test_unit_explains_its_choices() -> None:
    text = UNIT.read_text(encoding="utf-8")
    assert "useradd --system --home /var/lib/wallctl wallctl" in text
    assert "venv" in text
    assert re.search(r"#.*MemoryDenyWriteExecute", text)
    assert re.search(r"#.*aioice", text)
    assert re.search(r"#.*page faults", text)


def test_x11_drop_in() -> None:
    drop_in = parse_unit(X11_DROP_IN.read_text(encoding="utf-8"))
    service = drop_in["Service"]
    assert service["PrivateTmp"] == ["no"]
    assert service["ProtectHome"] == ["read-only"]
    [environment] = service["Environment"]
    assert "DISPLAY=:0" in environment.split()
    assert any(word.startswith("XAUTHORITY=") for word in environment.split())


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed on this machine"
)

# A build host need not have the service account; if a systemd version reports that, it
# is the only complaint accepted.
_TOLERATED = re.compile(
    r"(?i)\b(user|group)\b.*\bwallctl\b.*\b(not exist|not found|no such|failed to resolve)"
)


def verify(tmp_path: Path, unit_text: str, drop_ins: dict[str, str] | None = None) -> list[str]:
    """``systemd-analyze verify`` on a copy whose ExecStart= names a binary that exists.

    The copy keeps its name, because verify checks the unit type from it; drop-ins placed
    next to it in ``wallctl.service.d/`` are loaded as well.
    """
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    text = re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", unit_text, count=1, flags=re.MULTILINE)
    assert "ExecStart=/bin/true run --config /etc/wallctl/wallctl.toml" in text
    (unit_dir / "wallctl.service").write_text(text, encoding="utf-8")
    for name, content in (drop_ins or {}).items():
        (unit_dir / "wallctl.service.d").mkdir(exist_ok=True)
        (unit_dir / "wallctl.service.d" / name).write_text(content, encoding="utf-8")
    assert SYSTEMD_ANALYZE is not None
    env = {**os.environ, "SYSTEMD_LOG_COLOR": "0", "SYSTEMD_PAGER": "", "LC_ALL": "C"}
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(unit_dir / "wallctl.service")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    output = (result.stdout + result.stderr).splitlines()
    problems = [line for line in output if line.strip() and not _TOLERATED.search(line)]
    if result.returncode != 0:
        problems.append(f"exit status {result.returncode}")
    return problems


@needs_systemd_analyze
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    assert verify(tmp_path, UNIT.read_text(encoding="utf-8")) == []


@needs_systemd_analyze
def test_systemd_accepts_the_x11_drop_in(tmp_path: Path) -> None:
    drop_in = X11_DROP_IN.read_text(encoding="utf-8")
    assert verify(tmp_path, UNIT.read_text(encoding="utf-8"), {"x11-output.conf": drop_in}) == []


@needs_systemd_analyze
def test_verify_would_catch_a_misspelt_directive(tmp_path: Path) -> None:
    # Guards the two tests above against passing because verify says nothing at all.
    text = UNIT.read_text(encoding="utf-8").replace("NoNewPrivileges=", "NoNewPrivilege=")
    problems = verify(tmp_path, text)
    assert any("NoNewPrivilege" in line for line in problems), problems
