// The source tree: grouped by kind, then by area (the source's group, "南浔区/公安"),
// searchable by name and pinyin initials. A source is dragged onto a window (to show it
// there) or onto empty wall space (to open a window there); tapping a source while one
// window is selected puts it in that window, for touch screens where dragging is slow.

import { t } from "./i18n.js";
import { el } from "./mimic.js";
import { matches } from "./pinyin.js";

const KIND_ORDER = ["onvif", "rtsp", "url", "mobile", "matrix", "v4l2", "file", "test_pattern"];
const DRAG_THRESHOLD_PX = 8;

export class SourceTree {
  constructor(root, app) {
    this.root = root;
    this.app = app;
    this.sources = [];
    this.query = "";
    this.search = root.querySelector("#source-search");
    this.list = root.querySelector("#source-list");
    this.search.addEventListener("input", () => {
      this.query = this.search.value;
      this.render();
    });
    this.list.addEventListener("pointerdown", (e) => this._down(e));
  }

  setSources(sources) {
    this.sources = sources;
    this.render();
  }

  phaseChanged(id) {
    const item = this.list.querySelector(`[data-source="${CSS.escape(id)}"]`);
    if (!item) return;
    const phase = this.app.phases.get(id) || "";
    item.querySelector(".dot").dataset.phase = phase;
    const src = this.sources.find((s) => s.id === id);
    if (src && src.kind === "mobile") item.classList.toggle("away", phase !== "live");
  }

  render() {
    this.list.innerHTML = "";
    const shown = this.sources.filter(
      (s) => matches(s.name, this.query) || matches(s.id, this.query) || matches(s.group || "", this.query),
    );
    if (!shown.length) {
      const p = el("p", "empty-note");
      p.textContent = t("sources.none");
      this.list.append(p);
      return;
    }
    const kinds = new Map();
    for (const s of shown) {
      if (!kinds.has(s.kind)) kinds.set(s.kind, new Map());
      const groups = kinds.get(s.kind);
      const g = s.group || "";
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(s);
    }
    const order = (k) => (KIND_ORDER.includes(k) ? KIND_ORDER.indexOf(k) : 99);
    for (const kind of [...kinds.keys()].sort((a, b) => order(a) - order(b) || a.localeCompare(b))) {
      const det = el("details", "kind");
      det.open = true;
      const sum = el("summary");
      const key = `kind.${kind}`;
      sum.textContent = t(key) === key ? kind : t(key);
      det.append(sum);
      const groups = kinds.get(kind);
      for (const g of [...groups.keys()].sort((a, b) => a.localeCompare(b, "zh-CN"))) {
        const box = el("div", "group");
        if (groups.size > 1 || g) {
          const h = el("div", "group-name");
          h.textContent = g || t("group.none");
          box.append(h);
        }
        for (const s of groups.get(g).sort((a, b) => a.name.localeCompare(b.name, "zh-CN"))) {
          const item = el("div", "source");
          item.dataset.source = s.id;
          // Mobile terminals come and go: those not publishing now are dimmed.
          if (s.kind === "mobile" && this.app.phases.get(s.id) !== "live") item.classList.add("away");
          const dot = el("span", "dot");
          dot.dataset.phase = this.app.phases.get(s.id) || "";
          const name = el("span", "name");
          name.textContent = s.name;
          item.append(dot, name);
          box.append(item);
        }
        det.append(box);
      }
      this.list.append(det);
    }
  }

  _down(e) {
    const item = e.target.closest(".source");
    if (!item || e.button > 0) return;
    const id = item.dataset.source;
    const mimic = this.app.mimic;
    const start = { x: e.clientX, y: e.clientY };
    let dragging = false;
    let chip = null;
    item.setPointerCapture(e.pointerId);
    const target = (ev) => {
      const p = mimic.toCanvas(ev.clientX, ev.clientY);
      if (!p) return null;
      const w = mimic.windowAt(p.x, p.y);
      return w ? { window: w } : { open: mimic.openRect(p.x, p.y) };
    };
    const move = (ev) => {
      if (!this.app.canEdit()) return;
      if (!dragging && Math.hypot(ev.clientX - start.x, ev.clientY - start.y) < DRAG_THRESHOLD_PX) return;
      if (!dragging) {
        dragging = true;
        chip = el("div", "drag-chip");
        if (this.app.config.preview) {
          // One thumbnail while dragging: the tree itself shows none, because every
          // thumbnail makes the daemon decode that source.
          const img = el("img");
          img.alt = "";
          img.src = `/preview/source/${encodeURIComponent(id)}.jpg?width=160`;
          img.addEventListener("error", () => img.remove());
          chip.append(img);
        }
        const label = el("span");
        label.textContent = item.querySelector(".name").textContent;
        chip.append(label);
        document.body.append(chip);
      }
      chip.style.transform = `translate(${ev.clientX + 12}px, ${ev.clientY + 12}px)`;
      const tg = target(ev);
      mimic.highlightDrop(tg && tg.window ? tg.window.id : null);
      mimic.showGhost(tg && tg.open ? tg.open : null, "+");
    };
    const finish = (ev, cancelled) => {
      item.removeEventListener("pointermove", move);
      item.removeEventListener("pointerup", up);
      item.removeEventListener("pointercancel", cancel);
      if (chip) chip.remove();
      mimic.highlightDrop(null);
      mimic.showGhost(null);
      if (cancelled || !this.app.canEdit()) return;
      if (!dragging) {
        const sel = [...mimic.selected];
        if (sel.length === 1) this.app.act("window.set_source", { window: sel[0], source: id });
        return;
      }
      const tg = target(ev);
      if (!tg) return;
      if (tg.window) {
        this.app.act("window.set_source", { window: tg.window.id, source: id });
      } else {
        this.app.act("window.open", { ...tg.open, source: id, snap: this.app.snap });
      }
    };
    const up = (ev) => finish(ev, false);
    const cancel = (ev) => finish(ev, true);
    item.addEventListener("pointermove", move);
    item.addEventListener("pointerup", up);
    item.addEventListener("pointercancel", cancel);
  }
}
