"""What a wall shows: its windows, their sources, and the revision that named them.

Immutable values: an edit makes a new state, so a batch can be tried on a copy and
dropped whole when one step fails, and the store keeps every revision as it was.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from wallctl.wall import Rect

Fit = Literal["fit", "fill", "stretch"]
M = TypeVar("M", bound=BaseModel)
_set = object.__setattr__
_new = object.__new__
# The slots pydantic gives every model, set through their descriptors (a copy per edit).
_set_fields = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def evolve(model: M, **changes: Any) -> M:
    """``model`` with ``changes``, like ``model_copy(update=...)`` and as unchecked.

    The edits of a busy wall make a few copies per request; pydantic's model_copy goes
    through copy.copy for each of four attributes and costs several times this. Only for
    the frozen, extra-forbidding, private-free models of this module, with values that
    were validated by the caller.
    """
    new = _new(type(model))
    values = model.__dict__.copy()
    values.update(changes)
    _set(new, "__dict__", values)
    fields_set = model.__pydantic_fields_set__
    # Shared when no field is newly set: pydantic copies the set before changing one.
    _set_fields(new, fields_set if fields_set.issuperset(changes) else fields_set | changes.keys())
    _set_extra(new, None)
    _set_private(new, None)
    return new


# Positions by window id of the few newest window tuples: an edit looks a window up in
# the state it starts from and in the one it makes, and the next edit starts from that.
_INDEX_SIZE = 8
_INDEX_MIN = 8
_index: dict[int, tuple[tuple[Window, ...], dict[str, int]]] = {}


def _position(windows: tuple[Window, ...], window_id: str) -> int | None:
    if len(windows) < _INDEX_MIN:
        for i, w in enumerate(windows):
            if w.id == window_id:
                return i
        return None
    entry = _index.get(id(windows))
    # The entry holds its tuple, so its id cannot be reused while it is cached.
    if entry is None or entry[0] is not windows:
        if len(_index) >= _INDEX_SIZE:
            # clear() is one atomic step, should another thread look windows up too.
            _index.clear()
        entry = (windows, {w.id: i for i, w in enumerate(windows)})
        _index[id(windows)] = entry
    return entry[1].get(window_id)


# Window tuples made by replace_window: new tuple -> (the tuple it came from, the index
# replaced). The store's patch of such a state then needs no comparison of the windows.
_derived: dict[int, tuple[tuple[Window, ...], tuple[Window, ...], int]] = {}


def replaced_index(old: tuple[Window, ...], new: tuple[Window, ...]) -> int | None:
    """The one index at which ``new`` replaced a window of ``old``, if that is how ``new``
    was made (by replace_window, recently); None when unknown."""
    entry = _derived.get(id(new))
    if entry is not None and entry[0] is new and entry[1] is old:
        return entry[2]
    return None


def same_windows(a: tuple[Window, ...], b: tuple[Window, ...]) -> bool:
    """``a == b``, in one comparison when ``b`` was made from ``a`` by replace_window."""
    if a is b:
        return True
    i = replaced_index(a, b)
    if i is not None:
        # The fields only, as pydantic's __eq__ compares them (no extras, no privates).
        return a[i].__dict__ == b[i].__dict__
    return a == b


def replace_window(state: WallState, i: int, window: Window, **changes: Any) -> WallState:
    """``state`` with ``windows[i]`` replaced by ``window`` (the same id) and ``changes``,
    numbered as the revision after ``state``'s.

    The other Window objects are kept as they are (the store's patch finds the changed
    one by identity), and so are the positions: the new tuple shares the old one's index.
    The number is the one WallService.change gives a one-edit change, so that change
    need not copy the state once more to number it (a batch's is renumbered there).
    """
    ws = state.windows
    assert ws[i].id == window.id
    new_ws = (*ws[:i], window, *ws[i + 1 :])
    entry = _index.get(id(ws))
    if entry is not None and entry[0] is ws:
        if len(_index) >= _INDEX_SIZE:
            _index.clear()
        _index[id(new_ws)] = (new_ws, entry[1])
    if len(_derived) >= _INDEX_SIZE:
        _derived.clear()
    _derived[id(new_ws)] = (new_ws, ws, i)
    return evolve(state, windows=new_ws, revision=state.revision + 1, **changes)


class Crop(BaseModel):
    """The part of the source frame shown, in fractions of its width and height."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    x: float = Field(ge=0, le=1)
    y: float = Field(ge=0, le=1)
    w: float = Field(gt=0, le=1)
    h: float = Field(gt=0, le=1)


class Placement(BaseModel):
    """Where a window was before it went full screen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    x: int
    y: int
    w: int
    h: int
    z: int


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    x: int
    y: int
    w: int
    h: int
    z: int = 0
    source: str | None = None
    label: str | None = None
    crop: Crop | None = None
    fit: Fit = "fit"
    # Set while the window is full screen: where "back" returns it to.
    restore: Placement | None = None

    @property
    def rect(self) -> Rect:
        return Rect(self.x, self.y, self.w, self.h)


def window_data(window: Window) -> dict[str, Any]:
    """``window.model_dump(mode="json")``, without pydantic's serializer for the usual
    window (no crop, not full screen): its fields are JSON values already, in order."""
    values = window.__dict__
    if values["crop"] is None and values["restore"] is None:
        return values.copy()
    return window.model_dump(mode="json")


def state_data(state: WallState) -> dict[str, Any]:
    """``state.model_dump(mode="json")``, built from ``window_data``."""
    values = state.__dict__.copy()
    values["windows"] = [window_data(w) for w in state.windows]
    return values


class WallState(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    wall: str
    revision: int = 0
    # The template or preset the windows came from; None once they were edited by hand.
    layout: str | None = None
    windows: tuple[Window, ...] = ()
    # Window ids are never reused within a wall's life, so an old id in a client's hand
    # cannot point at a different window.
    next_window: int = 1

    def window(self, window_id: str) -> Window | None:
        i = _position(self.windows, window_id)
        return None if i is None else self.windows[i]

    def index_of(self, window_id: str) -> int | None:
        """Where the window is in ``windows`` (stacking aside), or None."""
        return _position(self.windows, window_id)

    def top_z(self) -> int:
        return max((w.z for w in self.windows), default=-1)

    def stacked(self) -> list[Window]:
        """Bottom to top, as a compositor paints them."""
        return sorted(self.windows, key=lambda w: (w.z, int(w.id[1:]) if w.id[1:].isdigit() else 0))
