// The wall mimic: the wall to scale (tiles, bezels), the live preview behind it, and one
// outline per window with its label and source status. Windows are selected, moved and
// resized here with pointer events (mouse, pen and touch alike); every change is a
// request to the API, and what is drawn is always the state the server announced.

import { t } from "./i18n.js";

const DRAG_THRESHOLD_PX = 6;
const MIN_WINDOW_PX = 64; // canvas pixels: smaller windows cannot be grabbed on a touch screen
const HANDLES = ["nw", "ne", "sw", "se"];

export class Mimic {
  constructor(root, hooks) {
    this.root = root;
    this.hooks = hooks;
    this.wall = null;
    this.state = null;
    this.selected = new Set();
    this.els = new Map();
    this.root.innerHTML = "";
    this.stage = el("div", "mimic");
    this.preview = el("img", "preview");
    this.preview.alt = "";
    this.preview.hidden = true;
    this.preview.draggable = false;
    this.previewUrl = null;
    this._previewTry = 0;
    this.preview.addEventListener("error", () => {
      // The stream broke (daemon restarted, network): try again in a while.
      this.preview.hidden = true;
      clearTimeout(this._previewTimer);
      if (this.previewUrl) this._previewTimer = setTimeout(() => this._loadPreview(), 3000);
    });
    this.preview.addEventListener("load", () => { this.preview.hidden = false; });
    this.tiles = el("div", "tiles");
    this.layer = el("div", "windows");
    this.ghost = el("div", "ghost");
    this.ghost.hidden = true;
    this.stage.append(this.preview, this.tiles, this.layer, this.ghost);
    this.root.append(this.stage);
    this.layer.addEventListener("pointerdown", (e) => this._down(e));
    this.layer.addEventListener("dblclick", (e) => this._double(e));
    new ResizeObserver(() => this.fit()).observe(this.root);
  }

  setWall(wall) {
    this.wall = wall;
    const { width, height } = wall.canvas;
    this.stage.style.aspectRatio = `${width} / ${height}`;
    this.tiles.innerHTML = "";
    const tile = wall.tile;
    // Bezel: real millimetres at the scale of the drawing. With bezel compensation the
    // canvas already holds the hidden pixels (the gaps between tiles show them).
    this._bezelFraction = tile.bezel_mm / (tile.width_mm * wall.cols + 2 * tile.bezel_mm * (wall.cols - 1));
    for (const tl of wall.tiles) {
      const d = el("div", "tile");
      place(d, tl, width, height);
      d.dataset.tile = `${tl.row},${tl.col}`;
      this.tiles.append(d);
    }
    this.fit();
  }

  fit() {
    if (!this.wall) return;
    const box = this.root.getBoundingClientRect();
    const ratio = this.wall.canvas.width / this.wall.canvas.height;
    let w = box.width;
    let h = w / ratio;
    if (h > box.height) {
      h = box.height;
      w = h * ratio;
    }
    this.stage.style.width = `${Math.floor(w)}px`;
    this.stage.style.height = `${Math.floor(h)}px`;
    const bezel = Math.max(1, Math.round(this._bezelFraction * w));
    this.stage.style.setProperty("--bezel", `${bezel}px`);
  }

  // The live picture behind the outlines (null: none). Always (re)opens the stream: it is
  // called after every (re)connection, when an old stream may have died with the daemon.
  setPreview(url) {
    clearTimeout(this._previewTimer);
    this.previewUrl = url;
    if (!url) {
      this.preview.removeAttribute("src");
      this.preview.hidden = true;
      return;
    }
    this._loadPreview();
  }

  _loadPreview() {
    if (!this.previewUrl) return;
    this._previewTry += 1;
    this.preview.src = `${this.previewUrl}&n=${this._previewTry}`;
  }

  setState(state) {
    this.state = state;
    const { width, height } = this.wall.canvas;
    const seen = new Set();
    // Paint order as the compositor's: by z, then by window number (ids are "w<n>").
    const num = (w) => parseInt(w.id.slice(1), 10) || 0;
    const rank = new Map([...state.windows].sort((a, b) => a.z - b.z || num(a) - num(b)).map((w, i) => [w.id, i]));
    for (const w of state.windows) {
      seen.add(w.id);
      let d = this.els.get(w.id);
      if (!d) {
        d = el("div", "win");
        d.dataset.window = w.id;
        d.innerHTML = '<div class="label"><span class="name"></span><span class="phase"></span></div><span class="wid"></span>';
        for (const h of HANDLES) {
          const hd = el("div", `handle ${h}`);
          hd.dataset.handle = h;
          d.append(hd);
        }
        this.els.set(w.id, d);
        this.layer.append(d);
      }
      place(d, w, width, height);
      d.style.zIndex = String(10 + rank.get(w.id));
      d.classList.toggle("empty", !w.source);
      d.classList.toggle("full", Boolean(w.restore));
      d.dataset.source = w.source || "";
      this._label(d, w);
    }
    // A window hidden on the wall by one above it (a full-screen window over the others)
    // is drawn faint, so the mimic does not show what the wall does not.
    const contains = (a, b) => a.x <= b.x && a.y <= b.y && a.x + a.w >= b.x + b.w && a.y + a.h >= b.y + b.h;
    for (const w of state.windows) {
      const covered = state.windows.some((o) => rank.get(o.id) > rank.get(w.id) && contains(o, w));
      this.els.get(w.id).classList.toggle("covered", covered);
    }
    for (const [id, d] of this.els) {
      if (!seen.has(id)) {
        d.remove();
        this.els.delete(id);
      }
    }
    for (const id of [...this.selected]) if (!seen.has(id)) this.selected.delete(id);
    this._paintSelection();
    this.stage.dataset.revision = String(state.revision);
    this.stage.dataset.layout = state.layout || "";
  }

  // Labels and statuses only (a source changed phase, the language changed).
  relabel() {
    if (!this.state) return;
    for (const w of this.state.windows) {
      const d = this.els.get(w.id);
      if (d) this._label(d, w);
    }
  }

  _label(d, w) {
    const name = w.label || (w.source ? this.hooks.sourceName(w.source) : t("win.empty"));
    d.querySelector(".name").textContent = name;
    d.querySelector(".wid").textContent = w.id;
    const phase = w.source ? this.hooks.sourcePhase(w.source) : null;
    const ph = d.querySelector(".phase");
    ph.textContent = phase ? t(`phase.${phase}`) : "";
    ph.dataset.phase = phase || "";
    d.dataset.phase = phase || "";
  }

  window(id) {
    return this.state ? this.state.windows.find((w) => w.id === id) : undefined;
  }

  select(ids) {
    this.selected = new Set(ids);
    this._paintSelection();
  }

  _paintSelection() {
    for (const [id, d] of this.els) d.classList.toggle("selected", this.selected.has(id));
    this.hooks.onSelect([...this.selected]);
  }

  // Canvas pixels under a point of the page, or null outside the wall.
  toCanvas(clientX, clientY) {
    const r = this.stage.getBoundingClientRect();
    if (clientX < r.left || clientY < r.top || clientX > r.right || clientY > r.bottom) return null;
    const { width, height } = this.wall.canvas;
    return {
      x: Math.round(((clientX - r.left) / r.width) * width),
      y: Math.round(((clientY - r.top) / r.height) * height),
    };
  }

  scale() {
    return this.wall.canvas.width / this.stage.getBoundingClientRect().width;
  }

  windowAt(x, y) {
    if (!this.state) return null;
    const hits = this.state.windows.filter((w) => x >= w.x && y >= w.y && x < w.x + w.w && y < w.y + w.h);
    hits.sort((a, b) => b.z - a.z);
    return hits[0] || null;
  }

  tileAt(x, y) {
    for (const tl of this.wall.tiles) {
      if (x >= tl.x && y >= tl.y && x < tl.x + tl.w && y < tl.y + tl.h) return tl;
    }
    return null;
  }

  // Where a window opened at a dropped point goes: the tile under it (snapping on), or
  // a tile-sized rectangle centred on it, kept on the canvas.
  openRect(x, y) {
    const tl = this.tileAt(x, y);
    if (this.hooks.snap() && tl) return { x: tl.x, y: tl.y, w: tl.w, h: tl.h };
    const { width, height } = this.wall.canvas;
    const w = Math.min(this.wall.tile.width_px, width);
    const h = Math.min(this.wall.tile.height_px, height);
    return {
      x: clamp(Math.round(x - w / 2), 0, width - w),
      y: clamp(Math.round(y - h / 2), 0, height - h),
      w,
      h,
    };
  }

  // The ghost outline that follows a drag (source or window), in canvas pixels.
  showGhost(rect, text) {
    if (!rect) {
      this.ghost.hidden = true;
      return;
    }
    const { width, height } = this.wall.canvas;
    place(this.ghost, rect, width, height);
    this.ghost.textContent = text || "";
    this.ghost.hidden = false;
  }

  highlightDrop(id) {
    for (const [wid, d] of this.els) d.classList.toggle("drop", wid === id);
  }

  // --- pointer interaction ------------------------------------------------------------

  _down(e) {
    const d = e.target.closest(".win");
    if (!d || e.button > 0) {
      if (!d && !e.shiftKey && !e.ctrlKey && !this.hooks.multi()) this.select([]);
      return;
    }
    const id = d.dataset.window;
    const w = this.window(id);
    if (!w) return;
    const handle = e.target.dataset.handle || null;
    const start = { x: e.clientX, y: e.clientY };
    const additive = e.shiftKey || e.ctrlKey || e.metaKey || this.hooks.multi();
    const canEdit = this.hooks.canEdit();
    let dragging = false;
    let rect = null;
    d.setPointerCapture(e.pointerId);
    e.preventDefault();
    const move = (ev) => {
      if (!canEdit) return;
      const dx = ev.clientX - start.x;
      const dy = ev.clientY - start.y;
      if (!dragging && Math.hypot(dx, dy) < DRAG_THRESHOLD_PX) return;
      dragging = true;
      rect = this._dragRect(w, handle, dx * this.scale(), dy * this.scale());
      d.classList.add("dragging");
      this.showGhost(rect, "");
    };
    const up = () => {
      d.removeEventListener("pointermove", move);
      d.removeEventListener("pointerup", up);
      d.removeEventListener("pointercancel", cancel);
      d.classList.remove("dragging");
      this.showGhost(null);
      if (!dragging) {
        if (additive) {
          const next = new Set(this.selected);
          if (next.has(id)) next.delete(id);
          else next.add(id);
          this.select(next);
        } else {
          this.select([id]);
        }
        return;
      }
      if (!this.selected.has(id)) this.select([id]);
      const snap = this.hooks.snap();
      if (handle) {
        this.hooks.act("window.resize", { window: id, x: rect.x, y: rect.y, w: rect.w, h: rect.h, snap });
      } else if (rect.x !== w.x || rect.y !== w.y || snap) {
        this.hooks.act("window.move", { window: id, x: rect.x, y: rect.y, snap });
      }
    };
    const cancel = () => {
      dragging = false;
      d.classList.remove("dragging");
      this.showGhost(null);
      d.removeEventListener("pointermove", move);
      d.removeEventListener("pointerup", up);
      d.removeEventListener("pointercancel", cancel);
    };
    d.addEventListener("pointermove", move);
    d.addEventListener("pointerup", up);
    d.addEventListener("pointercancel", cancel);
  }

  _dragRect(w, handle, dx, dy) {
    const { width, height } = this.wall.canvas;
    let x0 = w.x;
    let y0 = w.y;
    let x1 = w.x + w.w;
    let y1 = w.y + w.h;
    if (!handle) {
      const x = clamp(Math.round(w.x + dx), 0, width - w.w);
      const y = clamp(Math.round(w.y + dy), 0, height - w.h);
      return { x, y, w: w.w, h: w.h };
    }
    if (handle.includes("w")) x0 = clamp(Math.round(x0 + dx), 0, x1 - MIN_WINDOW_PX);
    if (handle.includes("e")) x1 = clamp(Math.round(x1 + dx), x0 + MIN_WINDOW_PX, width);
    if (handle.includes("n")) y0 = clamp(Math.round(y0 + dy), 0, y1 - MIN_WINDOW_PX);
    if (handle.includes("s")) y1 = clamp(Math.round(y1 + dy), y0 + MIN_WINDOW_PX, height);
    return { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
  }

  _double(e) {
    const d = e.target.closest(".win");
    if (!d || !this.hooks.canEdit()) return;
    const w = this.window(d.dataset.window);
    if (w) this.hooks.act("window.fullscreen", { window: w.id, on: !w.restore });
  }
}

export function el(tag, cls) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  return e;
}

function place(d, r, width, height) {
  d.style.left = `${(r.x / width) * 100}%`;
  d.style.top = `${(r.y / height) * 100}%`;
  d.style.width = `${(r.w / width) * 100}%`;
  d.style.height = `${(r.h / height) * 100}%`;
}

export function clamp(v, lo, hi) {
  return Math.max(lo, Math.min(hi, v));
}
