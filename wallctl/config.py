"""The daemon's configuration: TOML validated into typed objects.

Every problem is reported with its key path and a reason a person can act on
(``wall.tiles.cols: must be >= 1``); unknown keys are errors so a typo never passes
silently. Rules that span several keys (the wall's diagonal, heads that overlap, duplicate
ids) run after the schema, with the same kind of path.

Secrets are never only inline: any secret key ``x`` may instead be given as ``x_file``
(a file holding it), ``x_env`` (an environment variable's name) or ``x_credential`` (the
name of a systemd credential under ``$CREDENTIALS_DIRECTORY``).
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)

from wallctl.api.config import ApiConfig
from wallctl.mqtt.config import MqttConfig

# The local standards for command centres (DB3305/T 312-2024 §5.2 and others) ask for a
# display wall of at least 254 cm diagonal.
STANDARD_MIN_DIAGONAL_CM = 254.0
# 16:9 within 1 %: panel makers round their active-area millimetres.
ASPECT_TOLERANCE = 0.01

IDENT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
Ident = Annotated[str, Field(pattern=IDENT_PATTERN)]
SECRET_SUFFIXES = ("_file", "_env", "_credential")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DaemonConfig(Section):
    # Name of this centre as people say it (shown in the web page and events).
    name: str = Field(default="指挥中心", min_length=1, max_length=64)
    # Short id of this site, used in MQTT topics and federation.
    site: Ident = "centre"
    # Where the SQLite state lives; else $STATE_DIRECTORY, else a per-user default.
    state_dir: Path | None = None
    # SQLite durability: "full" survives power loss, "normal" only a process crash.
    durability: Literal["full", "normal"] = "full"


class LogConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["kv", "json"] = "kv"


class HttpConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class TileConfig(Section):
    rows: int = Field(ge=1, le=32)
    cols: int = Field(ge=1, le=32)
    # Active (visible) area of one panel.
    width_mm: float = Field(gt=0, le=10000)
    height_mm: float = Field(gt=0, le=10000)
    # Bezel on each side of a panel (the gap between two panels' pictures is twice this).
    bezel_mm: float = Field(default=0.0, ge=0, le=200)
    width_px: int = Field(ge=16, le=16384)
    height_px: int = Field(ge=16, le=16384)


class HeadConfig(Section):
    """An output head: one video signal driving a rectangular block of tiles."""

    id: Ident
    row: int = Field(default=0, ge=0)
    col: int = Field(default=0, ge=0)
    rows: int = Field(default=1, ge=1)
    cols: int = Field(default=1, ge=1)


class WallConfig(Section):
    id: Ident = "main"
    name: str = Field(default="主屏", min_length=1, max_length=64)
    # The standards' floor; a bench setup may lower it (the daemon then logs a warning).
    min_diagonal_cm: float = Field(default=STANDARD_MIN_DIAGONAL_CM, gt=0)
    # Hide the picture behind the bezels, so a line crossing two panels stays straight.
    bezel_compensation: bool = False
    # Snap windows of applied layouts to tile edges.
    snap_to_tiles: bool = False
    tiles: TileConfig
    # Which tiles each output head drives; none means one head for the whole wall.
    heads: list[HeadConfig] = Field(default_factory=list)
    # What a wall the state store has never seen shows first (later starts show the last
    # wall it showed): a layout template and the sources for its windows, in order.
    startup_layout: str | None = Field(default=None, max_length=64)
    startup_sources: list[Ident] = Field(default_factory=list, max_length=256)


SourceKind = Literal["test_pattern", "url", "rtsp", "file", "v4l2", "onvif", "mobile", "matrix"]


class RenditionConfig(Section):
    """One more stream of a source: a sub-stream with its URL and picture size."""

    name: Ident
    url: str = Field(min_length=1, max_length=2048)
    width: int = Field(ge=16, le=16384)
    height: int = Field(ge=16, le=16384)


class SourceConfig(Section):
    id: Ident
    name: str = Field(min_length=1, max_length=64)
    kind: SourceKind
    # Where it comes from: an URL FFmpeg opens, a file path, a V4L2 device.
    url: str | None = Field(default=None, max_length=2048)
    # Group in the source tree (area, department), e.g. "南浔区/公安".
    group: str = Field(default="", max_length=128)
    # Test patterns: which picture.
    pattern: Literal["bars", "smpte", "gradient", "clock", "checkers"] = "bars"
    username: str | None = Field(default=None, max_length=128)
    password: SecretStr | None = None
    # RTSP: RTP over the RTSP TCP connection (passes firewalls and NAT), or over UDP.
    rtsp_transport: Literal["tcp", "udp", "udp_multicast", "http"] = "tcp"
    # Files: start again at the end (a file source is a loop on the wall).
    loop: bool = True
    # Lower-resolution streams of the same picture (a camera's sub-stream): a window is
    # fed the smallest one at least as large as it; `url` is the main (largest) stream.
    renditions: list[RenditionConfig] = Field(default_factory=list, max_length=8)
    # Extra FFmpeg demuxer/protocol options, e.g. V4L2 {input_format = "mjpeg",
    # video_size = "1920x1080", framerate = "30"} or SRT {latency = "120000"}.
    options: dict[str, str] = Field(default_factory=dict, max_length=32)

    @field_validator("id", mode="wrap")
    @classmethod
    def _terminal_source_id(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # "mobile/<terminal>" is a mobile terminal's own source (wallctl/terminals/
        # sources.py): an entry with that id gives it a name, a group or a URL.
        prefix = "mobile/"
        if isinstance(value, str) and value.startswith(prefix):
            if len(value) > 64:
                raise ValueError("a mobile/<terminal> source id is at most 64 characters")
            return prefix + handler(value[len(prefix) :])
        return handler(value)


class LayoutsConfig(Section):
    # Extra template folders read after the built-in ones (a name there replaces a
    # built-in template of the same name).
    dirs: list[Path] = Field(default_factory=list)


# Here, not at the top: these sections build on Section and Ident defined above.
from wallctl.conference.config import ConferenceConfig, conference_problems  # noqa: E402
from wallctl.devices.config import DeviceConfig, device_problems  # noqa: E402
from wallctl.render.config import RenderConfig, render_problems  # noqa: E402
from wallctl.terminals.config import TerminalsConfig  # noqa: E402


class Config(Section):
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    # The main wall.
    wall: WallConfig
    # Further walls: side screens, a meeting-room screen. Keyed by wall id.
    walls: dict[str, WallConfig] = Field(default_factory=dict)
    sources: list[SourceConfig] = Field(default_factory=list)
    layouts: LayoutsConfig = Field(default_factory=LayoutsConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    # The MQTT broker and federation with other centres; off unless host is set.
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    # The software compositor: sources decoded, walls composited, outputs.
    render: RenderConfig = Field(default_factory=RenderConfig)
    # Controllable devices: matrix switchers, displays (drivers/).
    devices: list[DeviceConfig] = Field(default_factory=list, max_length=256)
    # Conference codecs (devices above) and the directory of centres they call.
    conference: ConferenceConfig = Field(default_factory=ConferenceConfig)
    # Mobile terminals: WHIP ingest, WHEP viewing, recording (wallctl/terminals/).
    terminals: TerminalsConfig = Field(default_factory=TerminalsConfig)

    def all_walls(self) -> list[WallConfig]:
        return [self.wall, *self.walls.values()]


@dataclass(frozen=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass
class LoadedConfig:
    config: Config
    path: Path | None
    warnings: list[Problem] = field(default_factory=list)


class ConfigError(Exception):
    def __init__(self, problems: list[Problem], path: Path | None = None) -> None:
        self.problems = problems
        self.path = path
        where = f"{path}: " if path else ""
        super().__init__(where + "; ".join(str(p) for p in problems))


# --- loading -------------------------------------------------------------------------


def load_config(path: Path, environ: dict[str, str] | None = None) -> LoadedConfig:
    """Read and validate ``path``; raise ConfigError listing every problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError([Problem("", f"cannot read {path}: {e.strerror}")], path) from e
    except UnicodeDecodeError as e:
        raise ConfigError([Problem("", f"{path} is not UTF-8 text")], path) from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([Problem("", f"not valid TOML: {e}")], path) from e
    try:
        loaded = parse_config(raw, environ=environ, base_dir=path.parent)
    except ConfigError as e:
        # Name the file, as the read errors above do.
        raise ConfigError(e.problems, path) from None
    loaded.path = path
    return loaded


def parse_config(
    raw: dict[str, Any],
    *,
    environ: dict[str, str] | None = None,
    base_dir: Path | None = None,
) -> LoadedConfig:
    env = dict(os.environ) if environ is None else environ
    problems: list[Problem] = []
    warnings: list[Problem] = []
    resolved = _resolve_secrets(Config, raw, "", env, base_dir, problems, warnings)
    try:
        config = Config.model_validate(resolved)
    except ValidationError as e:
        problems.extend(_pydantic_problems(e))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    problems.extend(_cross_checks(config, warnings))
    if problems:
        raise ConfigError(problems)
    if base_dir is not None:
        config = _resolve_relative_paths(config, base_dir)
    return LoadedConfig(config=config, path=None, warnings=warnings)


def _resolve_relative_paths(config: Config, base_dir: Path) -> Config:
    """Relative folders in a config file are relative to that file, not to the cwd."""
    dirs = [d if d.is_absolute() else base_dir / d for d in config.layouts.dirs]
    daemon = config.daemon
    if daemon.state_dir is not None and not daemon.state_dir.is_absolute():
        daemon = daemon.model_copy(update={"state_dir": base_dir / daemon.state_dir})
    return config.model_copy(
        update={
            "layouts": config.layouts.model_copy(update={"dirs": dirs}),
            "daemon": daemon,
            "api": config.api.resolved(base_dir),
            "mqtt": config.mqtt.resolved(base_dir),
        }
    )


# --- secrets ---------------------------------------------------------------------------


def _secret_fields(model: type[BaseModel]) -> list[str]:
    out = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if ann is SecretStr or SecretStr in get_args(ann):
            out.append(name)
    return out


def _sub_models(model: type[BaseModel]) -> dict[str, tuple[str, type[BaseModel]]]:
    """Fields holding nested sections: name -> (container kind, model)."""
    out: dict[str, tuple[str, type[BaseModel]]] = {}
    for name, info in model.model_fields.items():
        ann = info.annotation
        origin = get_origin(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out[name] = ("one", ann)
        elif origin is list:
            (arg,) = get_args(ann)
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out[name] = ("list", arg)
        elif origin is dict:
            _, arg = get_args(ann)
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out[name] = ("dict", arg)
    return out


def _resolve_secrets(
    model: type[BaseModel],
    raw: Any,
    path: str,
    env: dict[str, str],
    base_dir: Path | None,
    problems: list[Problem],
    warnings: list[Problem],
) -> Any:
    """Replace ``x_file``/``x_env``/``x_credential`` by ``x``, walking the schema.

    Done on the raw data (before pydantic) so each failure keeps the key path of the
    very key that named the secret.
    """
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    for name in _secret_fields(model):
        given = [s for s in SECRET_SUFFIXES if name + s in out]
        here = f"{path}.{name}" if path else name
        if name in out and given:
            problems.append(Problem(here, f"give either {name} or {name}{given[0]}, not both"))
            for s in given:  # reported here; not again as unknown keys
                out.pop(name + s)
            continue
        if len(given) > 1:
            problems.append(Problem(here + given[1], f"give only one of {name}{given[0]} and this"))
            for s in given:
                out.pop(name + s)
            continue
        if name in out:
            if out[name]:
                warnings.append(
                    Problem(here, f"secret written inline; prefer {name}_file, _env or _credential")
                )
            continue
        if not given:
            continue
        suffix = given[0]
        key = name + suffix
        ref = out.pop(key)
        key_path = here + suffix
        if not isinstance(ref, str) or not ref:
            problems.append(Problem(key_path, "must be a non-empty string"))
            continue
        value = _read_secret(suffix, ref, key_path, env, base_dir, problems)
        if value is not None:
            out[name] = value
    for name, (kind, sub) in _sub_models(model).items():
        if name not in out:
            continue
        here = f"{path}.{name}" if path else name
        value = out[name]
        if kind == "one":
            out[name] = _resolve_secrets(sub, value, here, env, base_dir, problems, warnings)
        elif kind == "list" and isinstance(value, list):
            out[name] = [
                _resolve_secrets(sub, v, f"{here}[{i}]", env, base_dir, problems, warnings)
                for i, v in enumerate(value)
            ]
        elif kind == "dict" and isinstance(value, dict):
            out[name] = {
                k: _resolve_secrets(sub, v, f"{here}.{k}", env, base_dir, problems, warnings)
                for k, v in value.items()
            }
    return out


def _read_secret(
    suffix: str,
    ref: str,
    key_path: str,
    env: dict[str, str],
    base_dir: Path | None,
    problems: list[Problem],
) -> str | None:
    if suffix == "_env":
        if ref not in env:
            problems.append(Problem(key_path, f"environment variable {ref} is not set"))
            return None
        return env[ref]
    if suffix == "_credential":
        cred_dir = env.get("CREDENTIALS_DIRECTORY")
        if not cred_dir:
            problems.append(
                Problem(key_path, "no systemd credentials here ($CREDENTIALS_DIRECTORY is not set)")
            )
            return None
        if "/" in ref or ref in (".", ".."):
            problems.append(Problem(key_path, "a credential name cannot contain '/'"))
            return None
        file = Path(cred_dir) / ref
    else:
        file = Path(ref)
        if not file.is_absolute() and base_dir is not None:
            file = base_dir / file
    try:
        # A trailing newline from `echo secret > file` is not part of the secret.
        return file.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as e:
        problems.append(Problem(key_path, f"cannot read {file}: {e.strerror}"))
        return None
    except UnicodeDecodeError:
        problems.append(Problem(key_path, f"{file} is not UTF-8 text"))
        return None


# --- messages --------------------------------------------------------------------------


def _loc_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


_TYPE_WORDS = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a table",
    "model_type": "must be a table",
    "model_attributes_type": "must be a table",
    "path_type": "must be a path (string)",
    "missing": "is required",
    "extra_forbidden": "unknown key",
}


def _pydantic_problems(err: ValidationError) -> list[Problem]:
    problems = []
    for e in err.errors(include_url=False):
        kind = e["type"]
        ctx = e.get("ctx") or {}
        loc = e["loc"]
        if kind == "greater_than_equal":
            msg = f"must be >= {ctx['ge']}"
        elif kind == "greater_than":
            msg = f"must be > {ctx['gt']}"
        elif kind == "less_than_equal":
            msg = f"must be <= {ctx['le']}"
        elif kind == "less_than":
            msg = f"must be < {ctx['lt']}"
        elif kind == "string_too_short":
            msg = "must not be empty" if ctx.get("min_length") == 1 else e["msg"].lower()
        elif kind == "string_too_long":
            msg = f"must be at most {ctx['max_length']} characters"
        elif kind == "string_pattern_mismatch":
            msg = "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        elif kind == "literal_error":
            msg = f"must be one of {ctx['expected']}"
        elif kind in _TYPE_WORDS:
            msg = _TYPE_WORDS[kind]
        else:
            msg = str(e["msg"])
        # A union's branches add their type name to the location ("str", "function-...").
        loc = tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p in ("str",))))
        problems.append(Problem(_loc_path(loc), msg))
    return problems


# --- rules that span keys --------------------------------------------------------------


def wall_diagonal_cm(
    rows: int, cols: int, width_mm: float, height_mm: float, bezel_mm: float
) -> float:
    """Diagonal of the whole wall, bezels included (what an installer measures)."""
    width = cols * (width_mm + 2 * bezel_mm)
    height = rows * (height_mm + 2 * bezel_mm)
    return math.hypot(width, height) / 10.0


def is_16x9(width: float, height: float) -> bool:
    return abs(width / height - 16 / 9) <= (16 / 9) * ASPECT_TOLERANCE


def _cross_checks(config: Config, warnings: list[Problem]) -> list[Problem]:
    problems: list[Problem] = []
    walls: list[tuple[str, WallConfig]] = [("wall", config.wall)]
    walls += [(f"walls.{key}", w) for key, w in config.walls.items()]
    seen_walls: dict[str, str] = {}
    for path, w in walls:
        if path != "wall" and w.id != path.split(".", 1)[1]:
            if "id" in w.model_fields_set:
                problems.append(Problem(f"{path}.id", "must match the table's key"))
        wall_id = path.split(".", 1)[1] if path != "wall" else w.id
        if wall_id in seen_walls:
            problems.append(
                Problem(path, f"wall id {wall_id!r} is also used by {seen_walls[wall_id]}")
            )
        seen_walls[wall_id] = path
        problems += _wall_checks(path, w, warnings)
    known = {s.id for s in config.sources}
    for path, w in walls:
        for i, sid in enumerate(w.startup_sources):
            if sid not in known:
                problems.append(
                    Problem(f"{path}.startup_sources[{i}]", f"no source {sid!r} in [[sources]]")
                )
    seen_sources: dict[str, int] = {}
    for i, s in enumerate(config.sources):
        if s.id in seen_sources:
            problems.append(
                Problem(
                    f"sources[{i}].id", f"{s.id!r} is already used by sources[{seen_sources[s.id]}]"
                )
            )
        seen_sources.setdefault(s.id, i)
        if s.kind in ("url", "rtsp", "file", "v4l2") and not s.url:
            problems.append(Problem(f"sources[{i}].url", f"is required for a {s.kind} source"))
        if s.url and any(ord(c) < 32 or ord(c) == 127 for c in s.url):
            problems.append(Problem(f"sources[{i}].url", "must not contain control characters"))
        if s.kind == "rtsp" and s.url and not re.match(r"^rtsps?://", s.url):
            problems.append(Problem(f"sources[{i}].url", "an rtsp source needs an rtsp:// URL"))
        problems += _source_stream_checks(f"sources[{i}]", s)
    problems += device_problems(config.devices)
    problems += render_problems(config)
    problems += conference_problems(config)
    from wallctl.cameras.service import camera_problems  # onvif sources name onvif devices

    problems += camera_problems(config)
    from wallctl.terminals.sources import source_problems  # mobile/<id> is a terminal's

    problems += [Problem(path, reason) for path, reason in source_problems(config.sources)]
    return problems


_OPTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _source_stream_checks(path: str, s: SourceConfig) -> list[Problem]:
    """Renditions and FFmpeg options of one source."""
    problems: list[Problem] = []
    names: set[str] = set()
    for j, r in enumerate(s.renditions):
        rp = f"{path}.renditions[{j}]"
        if r.name in names or r.name == "main":
            problems.append(Problem(f"{rp}.name", f"{r.name!r} is already used by this source"))
        names.add(r.name)
        if any(ord(c) < 32 or ord(c) == 127 for c in r.url):
            problems.append(Problem(f"{rp}.url", "must not contain control characters"))
        if s.kind == "rtsp" and not re.match(r"^rtsps?://", r.url):
            problems.append(Problem(f"{rp}.url", "an rtsp source needs an rtsp:// URL"))
    if s.renditions and s.kind not in ("url", "rtsp", "onvif"):
        problems.append(Problem(f"{path}.renditions", f"a {s.kind} source has one stream"))
    for key, value in s.options.items():
        if not _OPTION_NAME.match(key):
            problems.append(
                Problem(f"{path}.options.{key}", "must be an FFmpeg option name (a-z, 0-9, _)")
            )
        elif any(ord(c) < 32 or ord(c) == 127 for c in value) or len(value) > 256:
            problems.append(
                Problem(f"{path}.options.{key}", "must be at most 256 printable characters")
            )
    return problems


def _wall_checks(path: str, w: WallConfig, warnings: list[Problem]) -> list[Problem]:
    problems: list[Problem] = []
    t = w.tiles
    diag = wall_diagonal_cm(t.rows, t.cols, t.width_mm, t.height_mm, t.bezel_mm)
    if w.min_diagonal_cm < STANDARD_MIN_DIAGONAL_CM:
        warnings.append(
            Problem(
                f"{path}.min_diagonal_cm",
                f"lowered to {w.min_diagonal_cm:g} cm, below the standard's "
                f"{STANDARD_MIN_DIAGONAL_CM:g} cm: for a bench setup only",
            )
        )
    if diag < w.min_diagonal_cm:
        problems.append(
            Problem(
                f"{path}.tiles",
                f"the wall's diagonal is {diag:.1f} cm, under the required "
                f"{w.min_diagonal_cm:g} cm",
            )
        )
    if not is_16x9(t.width_mm, t.height_mm):
        warnings.append(
            Problem(
                f"{path}.tiles",
                f"panels of {t.width_mm:g} x {t.height_mm:g} mm are not 16:9 units: "
                "the standards ask for a 16:9 wall or an integer multiple of it",
            )
        )
    if not is_16x9(t.width_px, t.height_px):
        warnings.append(
            Problem(f"{path}.tiles", f"{t.width_px}x{t.height_px} pixels per panel is not 16:9")
        )
    owner: dict[tuple[int, int], str] = {}
    head_ids: set[str] = set()
    for i, h in enumerate(w.heads):
        hp = f"{path}.heads[{i}]"
        if h.id in head_ids:
            problems.append(Problem(f"{hp}.id", f"{h.id!r} is used by another head"))
        head_ids.add(h.id)
        if h.row + h.rows > t.rows:
            problems.append(
                Problem(
                    f"{hp}.rows",
                    f"rows {h.row}..{h.row + h.rows - 1} leave the wall of {t.rows} rows",
                )
            )
            continue
        if h.col + h.cols > t.cols:
            problems.append(
                Problem(
                    f"{hp}.cols",
                    f"columns {h.col}..{h.col + h.cols - 1} leave the wall of {t.cols} columns",
                )
            )
            continue
        for r in range(h.row, h.row + h.rows):
            for c in range(h.col, h.col + h.cols):
                if (r, c) in owner:
                    problems.append(
                        Problem(
                            hp, f"tile row {r} col {c} is already driven by head {owner[(r, c)]!r}"
                        )
                    )
                else:
                    owner[(r, c)] = h.id
    return problems
