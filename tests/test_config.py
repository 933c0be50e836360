"""Every configuration rule, with the exact message a person reads, and `wallctl check`."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wallctl.config import ConfigError, LoadedConfig, load_config, parse_config
from wallctl.resources import demo_config_path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
if not Path(PYTHON).exists():
    PYTHON = sys.executable

TILES = {
    "rows": 2,
    "cols": 2,
    "width_mm": 1209.6,
    "height_mm": 680.4,
    "width_px": 1920,
    "height_px": 1080,
}
BASE: dict[str, Any] = {"wall": {"tiles": TILES}}
TP = {"kind": "test_pattern"}


def raw(**sections: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    for key, value in sections.items():
        out[key] = value
    return out


def with_tiles(**tiles: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    out["wall"]["tiles"].update(tiles)
    for k, v in tiles.items():
        if v is None:
            del out["wall"]["tiles"][k]
    return out


def with_wall(**keys: Any) -> dict[str, Any]:
    out = copy.deepcopy(BASE)
    out["wall"].update(keys)
    return out


def problems(data: dict[str, Any], environ: dict[str, str] | None = None, **kw: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ=environ or {}, **kw)
    return [str(p) for p in info.value.problems]


def ok(data: dict[str, Any], environ: dict[str, str] | None = None, **kw: Any) -> LoadedConfig:
    return parse_config(data, environ=environ or {}, **kw)


def warnings(data: dict[str, Any], environ: dict[str, str] | None = None, **kw: Any) -> list[str]:
    return [str(w) for w in ok(data, environ, **kw).warnings]


def src(sid: str = "cam", **keys: Any) -> dict[str, Any]:
    return {"id": sid, "name": sid, **TP, **keys}


# --- the schema: one constraint, one message ------------------------------------------

IDENT_MSG = "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"

SCHEMA_CASES = [
    (with_tiles(cols=0), "wall.tiles.cols: must be >= 1"),
    (with_tiles(rows=33), "wall.tiles.rows: must be <= 32"),
    (with_tiles(width_mm=0), "wall.tiles.width_mm: must be > 0.0"),
    (with_tiles(height_mm=10001), "wall.tiles.height_mm: must be <= 10000.0"),
    (with_tiles(bezel_mm=-1), "wall.tiles.bezel_mm: must be >= 0.0"),
    (with_tiles(bezel_mm=201), "wall.tiles.bezel_mm: must be <= 200.0"),
    (with_tiles(width_px=15), "wall.tiles.width_px: must be >= 16"),
    (with_tiles(height_px=16385), "wall.tiles.height_px: must be <= 16384"),
    (with_tiles(width_px=None), "wall.tiles.width_px: is required"),
    (raw(wall={}), "wall.tiles: is required"),
    ({}, "wall: is required"),
    (with_wall(tilez=1), "wall.tilez: unknown key"),
    (raw(colour="red"), "colour: unknown key"),
    # types
    (with_tiles(cols="two"), "wall.tiles.cols: must be an integer"),
    (with_tiles(cols=1.5), "wall.tiles.cols: must be a whole number"),
    (with_tiles(width_mm="wide"), "wall.tiles.width_mm: must be a number"),
    (with_wall(bezel_compensation="maybe"), "wall.bezel_compensation: must be true or false"),
    (with_wall(name=5), "wall.name: must be a string"),
    (with_wall(heads={}), "wall.heads: must be a list"),
    (with_wall(heads=[5]), "wall.heads[0]: must be a table"),
    (raw(wall=5), "wall: must be a table"),
    (raw(sources="x"), "sources: must be a list"),
    (raw(walls=[]), "walls: must be a table"),
    (raw(layouts={"dirs": "x"}), "layouts.dirs: must be a list"),
    (raw(daemon={"state_dir": 5}), "daemon.state_dir: must be a path (string)"),
    # strings, patterns and choices
    (raw(daemon={"site": "bad site"}), f"daemon.site: {IDENT_MSG}"),
    (raw(daemon={"name": ""}), "daemon.name: must not be empty"),
    (raw(daemon={"name": "x" * 65}), "daemon.name: must be at most 64 characters"),
    (raw(daemon={"durability": "none"}), "daemon.durability: must be one of 'full' or 'normal'"),
    (
        raw(log={"level": "loud"}),
        "log.level: must be one of 'debug', 'info', 'warning' or 'error'",
    ),
    (raw(log={"format": "xml"}), "log.format: must be one of 'kv' or 'json'"),
    (raw(http={"port": 70000}), "http.port: must be <= 65535"),
    (raw(http={"port": -1}), "http.port: must be >= 0"),
    (with_wall(id="主屏"), f"wall.id: {IDENT_MSG}"),
    (with_wall(min_diagonal_cm=0), "wall.min_diagonal_cm: must be > 0.0"),
    (with_wall(heads=[{"id": "a", "rows": 0}]), "wall.heads[0].rows: must be >= 1"),
    (with_wall(heads=[{"id": "a", "row": -1}]), "wall.heads[0].row: must be >= 0"),
    (with_wall(heads=[{"row": 0}]), "wall.heads[0].id: is required"),
    (
        raw(sources=[src(kind="camera")]),
        "sources[0].kind: must be one of "
        "'test_pattern', 'url', 'rtsp', 'file', 'v4l2', 'onvif', 'mobile' or 'matrix'",
    ),
    (raw(sources=[{"id": "a", **TP}]), "sources[0].name: is required"),
    (
        raw(sources=[src(), src("b", url="x" * 2049)]),
        "sources[1].url: must be at most 2048 characters",
    ),
    (
        raw(sources=[src(pattern="plaid")]),
        "sources[0].pattern: must be one of 'bars', 'smpte', 'gradient', 'clock' or 'checkers'",
    ),
]


@pytest.mark.parametrize(("data", "message"), SCHEMA_CASES, ids=[m for _, m in SCHEMA_CASES])
def test_schema_rule_reported_as_path_and_message(data: dict[str, Any], message: str) -> None:
    assert problems(data) == [message]


def test_every_problem_is_reported_not_only_the_first() -> None:
    data = with_tiles(cols=0, rows=0, width_px=None)
    data["wall"]["tilez"] = 1
    assert sorted(problems(data)) == [
        "wall.tiles.cols: must be >= 1",
        "wall.tiles.rows: must be >= 1",
        "wall.tiles.width_px: is required",
        "wall.tilez: unknown key",
    ]


def test_minimal_config_is_valid_with_defaults() -> None:
    loaded = ok(copy.deepcopy(BASE))
    assert loaded.warnings == []
    cfg = loaded.config
    assert cfg.wall.id == "main"
    assert cfg.http.port == 8080
    assert cfg.daemon.durability == "full"
    assert cfg.all_walls() == [cfg.wall]


# --- rules that span keys ----------------------------------------------------------------


def test_duplicate_source_id_names_the_first_user() -> None:
    data = raw(sources=[src("x"), src("y"), src("x")])
    assert problems(data) == ["sources[2].id: 'x' is already used by sources[0]"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"kind": "rtsp"}, "sources[0].url: is required for a rtsp source"),
        ({"kind": "file"}, "sources[0].url: is required for a file source"),
        (
            {"kind": "rtsp", "url": "http://cam/x"},
            "sources[0].url: an rtsp source needs an rtsp:// URL",
        ),
        (
            {"kind": "url", "url": "http://a\nb"},
            "sources[0].url: must not contain control characters",
        ),
    ],
)
def test_source_url_rules(source: dict[str, Any], message: str) -> None:
    assert problems(raw(sources=[{"id": "s", "name": "s", **source}])) == [message]


def test_rtsps_url_is_accepted() -> None:
    ok(raw(sources=[{"id": "s", "name": "s", "kind": "rtsp", "url": "rtsps://cam/1"}]))


def test_diagonal_under_254_cm_is_an_error_with_exact_text() -> None:
    # One 55-inch panel: 1209.6 x 680.4 mm -> 138.8 cm.
    assert problems(with_tiles(rows=1, cols=1)) == [
        "wall.tiles: the wall's diagonal is 138.8 cm, under the required 254 cm"
    ]


def test_diagonal_just_over_254_passes() -> None:
    # 1 x 2 of 55-inch panels side by side: hypot(2419.2, 680.4) mm = 251.3 cm (too small);
    # 2 x 2 is 278.5 cm with bezels.
    assert problems(with_tiles(rows=1, cols=2))[0].startswith(
        "wall.tiles: the wall's diagonal is 251.3 cm"
    )
    ok(with_tiles(bezel_mm=1.75))


def test_lowered_min_diagonal_warns_and_still_checks() -> None:
    data = with_tiles(rows=1, cols=1)
    data["wall"]["min_diagonal_cm"] = 100
    assert warnings(data) == [
        "wall.min_diagonal_cm: lowered to 100 cm, below the standard's 254 cm: "
        "for a bench setup only"
    ]
    data["wall"]["min_diagonal_cm"] = 150
    assert problems(data) == [
        "wall.tiles: the wall's diagonal is 138.8 cm, under the required 150 cm"
    ]


def test_non_16x9_panels_warn() -> None:
    data = with_tiles(rows=3, cols=3, width_mm=1000, height_mm=1000)
    assert warnings(data) == [
        "wall.tiles: panels of 1000 x 1000 mm are not 16:9 units: "
        "the standards ask for a 16:9 wall or an integer multiple of it"
    ]


def test_non_16x9_pixels_warn() -> None:
    assert warnings(with_tiles(width_px=1024, height_px=768)) == [
        "wall.tiles: 1024x768 pixels per panel is not 16:9"
    ]


def test_16x9_within_one_percent_does_not_warn() -> None:
    assert warnings(with_tiles(width_mm=1210, height_mm=676)) == []


@pytest.mark.parametrize(
    ("heads", "message"),
    [
        (
            [{"id": "a", "rows": 2, "cols": 2}, {"id": "b", "row": 1, "col": 1}],
            "wall.heads[1]: tile row 1 col 1 is already driven by head 'a'",
        ),
        (
            [{"id": "a", "row": 1, "rows": 2}],
            "wall.heads[0].rows: rows 1..2 leave the wall of 2 rows",
        ),
        (
            [{"id": "a", "col": 1, "cols": 2}],
            "wall.heads[0].cols: columns 1..2 leave the wall of 2 columns",
        ),
        ([{"id": "a"}, {"id": "a", "col": 1}], "wall.heads[1].id: 'a' is used by another head"),
    ],
)
def test_head_rules(heads: list[dict[str, Any]], message: str) -> None:
    assert problems(with_wall(heads=heads)) == [message]


def test_heads_tiling_the_wall_are_valid() -> None:
    heads = [{"id": "top", "cols": 2}, {"id": "bottom", "row": 1, "cols": 2}]
    assert [h.id for h in ok(with_wall(heads=heads)).config.wall.heads] == ["top", "bottom"]


def test_startup_sources_must_exist() -> None:
    data = with_wall(startup_layout="2x2", startup_sources=["cam", "nope"])
    data["sources"] = [src("cam")]
    assert problems(data) == ["wall.startup_sources[1]: no source 'nope' in [[sources]]"]


def test_further_walls_rules() -> None:
    assert problems(raw(walls={"side": {"id": "other", "tiles": TILES}})) == [
        "walls.side.id: must match the table's key"
    ]
    assert problems(raw(walls={"main": {"tiles": TILES}})) == [
        "walls.main: wall id 'main' is also used by wall"
    ]
    assert problems(raw(walls={"side": {"tiles": TILES, "startup_sources": ["q"]}})) == [
        "walls.side.startup_sources[0]: no source 'q' in [[sources]]"
    ]
    small = {**TILES, "rows": 1, "cols": 1}
    assert problems(raw(walls={"side": {"tiles": small}})) == [
        "walls.side.tiles: the wall's diagonal is 138.8 cm, under the required 254 cm"
    ]


# --- secrets -----------------------------------------------------------------------------


def test_inline_secret_warns() -> None:
    loaded = ok(raw(sources=[src(password="pw")]))
    assert [str(w) for w in loaded.warnings] == [
        "sources[0].password: secret written inline; prefer password_file, _env or _credential"
    ]
    assert loaded.config.sources[0].password is not None
    assert loaded.config.sources[0].password.get_secret_value() == "pw"


def test_password_file_relative_to_config_folder(tmp_path: Path) -> None:
    (tmp_path / "cam.pw").write_text("s3cret\n")
    loaded = ok(raw(sources=[src(password_file="cam.pw")]), base_dir=tmp_path)
    assert loaded.warnings == []
    pw = loaded.config.sources[0].password
    assert pw is not None and pw.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(loaded.config)


def test_password_file_missing(tmp_path: Path) -> None:
    missing = tmp_path / "none.pw"
    assert problems(raw(sources=[src(password_file=str(missing))])) == [
        f"sources[0].password_file: cannot read {missing}: No such file or directory"
    ]


def test_password_env() -> None:
    loaded = ok(raw(sources=[src(password_env="CAM_PW")]), environ={"CAM_PW": "from-env"})
    pw = loaded.config.sources[0].password
    assert pw is not None and pw.get_secret_value() == "from-env"


def test_password_env_unset() -> None:
    assert problems(raw(sources=[src(password_env="CAM_PW")])) == [
        "sources[0].password_env: environment variable CAM_PW is not set"
    ]


def test_password_env_empty_name() -> None:
    assert problems(raw(sources=[src(password_env="")])) == [
        "sources[0].password_env: must be a non-empty string"
    ]


def test_password_credential(tmp_path: Path) -> None:
    (tmp_path / "cam1").write_text("cred-pw")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    loaded = ok(raw(sources=[src(password_credential="cam1")]), environ=env)
    pw = loaded.config.sources[0].password
    assert pw is not None and pw.get_secret_value() == "cred-pw"


def test_password_credential_failures(tmp_path: Path) -> None:
    data = raw(sources=[src(password_credential="cam1")])
    assert problems(data) == [
        "sources[0].password_credential: no systemd credentials here "
        "($CREDENTIALS_DIRECTORY is not set)"
    ]
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert problems(data, environ=env) == [
        f"sources[0].password_credential: cannot read {tmp_path / 'cam1'}: "
        "No such file or directory"
    ]
    bad = raw(sources=[src(password_credential="../etc/passwd")])
    assert problems(bad, environ=env) == [
        "sources[0].password_credential: a credential name cannot contain '/'"
    ]


def test_secret_given_twice() -> None:
    assert problems(raw(sources=[src(password="pw", password_env="X")])) == [
        "sources[0].password: give either password or password_env, not both"
    ]
    assert problems(raw(sources=[src(password_file="f", password_env="X")])) == [
        "sources[0].password_env: give only one of password_file and this"
    ]


# --- files -------------------------------------------------------------------------------


def write(tmp_path: Path, text: str, name: str = "wallctl.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


VALID_TOML = """
[wall.tiles]
rows = 2
cols = 2
width_mm = 1209.6
height_mm = 680.4
width_px = 1920
height_px = 1080
"""


def test_bad_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[wall\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (p,) = info.value.problems
    assert p.path == ""
    assert p.message.startswith("not valid TOML: ")
    assert "line 1" in p.message


def test_unreadable_and_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.toml")
    assert [str(p) for p in info.value.problems] == [
        f"cannot read {tmp_path / 'nope.toml'}: No such file or directory"
    ]
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'name = "\xe9"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [str(p) for p in info.value.problems] == [f"{path} is not UTF-8 text"]


def test_relative_paths_resolve_against_config_folder(tmp_path: Path, monkeypatch: Any) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    path = write(
        sub,
        '[daemon]\nstate_dir = "state"\n[layouts]\ndirs = ["mine", "/abs/layouts"]\n' + VALID_TOML,
    )
    monkeypatch.chdir(tmp_path)
    cfg = load_config(path).config
    assert cfg.daemon.state_dir == sub / "state"
    assert cfg.layouts.dirs == [sub / "mine", Path("/abs/layouts")]


def test_config_error_message_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, VALID_TOML.replace("cols = 2", "cols = 0"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: wall.tiles.cols: must be >= 1"


# --- the shipped files and `wallctl check` -------------------------------------------------


def shipped_configs() -> list[Path]:
    out = [ROOT / "config" / "demo.toml"]
    example = ROOT / "config" / "wallctl.example.toml"
    if example.exists():
        out.append(example)
    return out


@pytest.mark.parametrize("path", shipped_configs(), ids=lambda p: p.name)
def test_shipped_config_loads(path: Path, tmp_path: Path) -> None:
    # Secrets in the example may be named by file or env; give the env what it may ask.
    loaded = load_config(path)
    assert loaded.config.wall.tiles.rows >= 1


def test_demo_config_is_the_packaged_one() -> None:
    assert demo_config_path().resolve() == (ROOT / "config" / "demo.toml").resolve()
    cfg = load_config(demo_config_path()).config
    assert cfg.wall.startup_layout == "2x2"
    assert [s.id for s in cfg.sources] == ["bars", "gradient", "checkers", "clock"]


def check(path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "wallctl", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **env},
    )


needs_cli = pytest.mark.skipif(
    not (ROOT / "wallctl" / "cli.py").exists(), reason="wallctl/cli.py not written yet"
)


@needs_cli
@pytest.mark.parametrize("path", shipped_configs(), ids=lambda p: p.name)
def test_check_passes_shipped_configs(path: Path) -> None:
    r = check(path)
    assert r.returncode == 0, r.stderr
    assert f"ok: {path}" in r.stdout


@needs_cli
def test_check_valid_prints_ok_and_warnings(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        VALID_TOML.replace("width_px = 1920", "width_px = 1024").replace(
            "height_px = 1080", "height_px = 768"
        )
        + '[[sources]]\nid = "c"\nname = "c"\nkind = "test_pattern"\npassword = "pw"\n',
    )
    r = check(path)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    assert f"ok: {path}" in r.stdout
    assert "warning: wall.tiles: 1024x768 pixels per panel is not 16:9" in out
    assert (
        "warning: sources[0].password: secret written inline; prefer password_file, _env or "
        "_credential" in out
    )
    assert "pw\n" not in out.replace("password", "")


@needs_cli
def test_check_invalid_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    text = VALID_TOML.replace("cols = 2", "cols = 0") + "[wall.extra]\n"
    text = text.replace("width_px = 1920\n", "")
    path = write(tmp_path, text)
    r = check(path)
    assert r.returncode == 2
    lines = set(r.stderr.splitlines())
    for expected in (
        "wall.tiles.cols: must be >= 1",
        "wall.tiles.width_px: is required",
        "wall.extra: unknown key",
    ):
        assert any(line.endswith(expected) for line in lines), (expected, r.stderr)
    assert f"ok: {path}" not in r.stdout


@needs_cli
def test_check_cross_rule_and_bad_toml(tmp_path: Path) -> None:
    path = write(
        tmp_path, VALID_TOML.replace("rows = 2", "rows = 1").replace("cols = 2", "cols = 1")
    )
    r = check(path)
    assert r.returncode == 2
    assert "wall.tiles: the wall's diagonal is 138.8 cm, under the required 254 cm" in r.stderr
    bad = write(tmp_path, "[wall\n", "bad.toml")
    r = check(bad)
    assert r.returncode == 2
    assert "not valid TOML" in r.stderr


@needs_cli
def test_check_secret_failure(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        VALID_TOML + '[[sources]]\nid = "c"\nname = "c"\nkind = "test_pattern"\n'
        'password_env = "WALLCTL_TEST_UNSET_PW"\n',
    )
    env = {k: v for k, v in os.environ.items() if k != "WALLCTL_TEST_UNSET_PW"}
    r = subprocess.run(
        [PYTHON, "-m", "wallctl", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )
    assert r.returncode == 2
    assert (
        "sources[0].password_env: environment variable WALLCTL_TEST_UNSET_PW is not set" in r.stderr
    )
    r = check(path, WALLCTL_TEST_UNSET_PW="x")
    assert r.returncode == 0, r.stderr
