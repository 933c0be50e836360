// Layout templates drawn as small pictures, saved presets (save, apply, rename, delete
// with confirmation), and the wall's history with "restore this wall".

import { t, timeText } from "./i18n.js";
import { el } from "./mimic.js";

const SVG = "http://www.w3.org/2000/svg";

export function layoutPicture(windows, aspect) {
  const w = 64;
  const h = Math.round(w / aspect);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("class", "pic");
  svg.setAttribute("aria-hidden", "true");
  const sorted = [...windows].sort((a, b) => (a.z || 0) - (b.z || 0));
  for (const win of sorted) {
    const r = document.createElementNS(SVG, "rect");
    r.setAttribute("x", (win.x * w + 0.8).toFixed(2));
    r.setAttribute("y", (win.y * h + 0.8).toFixed(2));
    r.setAttribute("width", Math.max(0.5, win.w * w - 1.6).toFixed(2));
    r.setAttribute("height", Math.max(0.5, win.h * h - 1.6).toFixed(2));
    svg.append(r);
  }
  return svg;
}

export class LayoutsPanel {
  constructor(root, app) {
    this.root = root;
    this.app = app;
    this.data = { templates: [], presets: [] };
    this.templates = root.querySelector("#templates");
    this.presets = root.querySelector("#presets");
    root.querySelector("#preset-save").addEventListener("click", () => this.save());
  }

  async load() {
    if (!this.app.conn) return;
    try {
      this.data = await this.app.conn.call("layout.list", this.app.wallParam());
    } catch (e) {
      this.app.error(e);
      return;
    }
    this.render();
  }

  aspect() {
    const c = this.app.mimic.wall && this.app.mimic.wall.canvas;
    return c ? c.width / c.height : 16 / 9;
  }

  render() {
    const ro = !this.app.canEdit();
    this.root.querySelector("#preset-save").disabled = ro;
    this.templates.innerHTML = "";
    for (const tpl of this.data.templates) {
      const b = el("button", "template");
      b.type = "button";
      b.dataset.layout = tpl.name;
      b.title = tpl.description || tpl.title;
      b.disabled = ro;
      b.append(layoutPicture(tpl.windows, this.aspect()));
      const cap = el("span", "cap");
      cap.textContent = tpl.title || tpl.name;
      b.append(cap);
      b.addEventListener("click", () => this.app.act("layout.apply", { name: tpl.name }));
      this.templates.append(b);
    }
    this.presets.innerHTML = "";
    if (!this.data.presets.length) {
      const p = el("p", "empty-note");
      p.textContent = t("layouts.nopresets");
      this.presets.append(p);
    }
    for (const p of this.data.presets) {
      const row = el("div", "preset");
      row.dataset.preset = p.name;
      const info = el("div", "info");
      const name = el("div", "name");
      name.textContent = p.name;
      const meta = el("div", "meta");
      meta.textContent = `${p.windows} · ${p.actor} · ${timeText(p.ts)}`;
      info.append(name, meta);
      const apply = button(t("layouts.apply"), ro, () => this.app.act("layout.apply", { name: p.name }));
      apply.classList.add("primary");
      apply.dataset.action = "apply";
      const rename = button(t("layouts.rename"), ro, () => this.rename(p.name));
      rename.dataset.action = "rename";
      const del = button(t("layouts.delete"), ro, () => this.remove(p.name));
      del.classList.add("danger");
      del.dataset.action = "delete";
      row.append(info, apply, rename, del);
      this.presets.append(row);
    }
  }

  async save() {
    const name = await this.app.ask(t("layouts.name"), { input: "" });
    if (!name) return;
    if (await this.app.act("layout.save", { name })) this.load();
  }

  async rename(from) {
    const to = await this.app.ask(t("layouts.newName"), { input: from });
    if (!to || to === from) return;
    if (await this.app.act("layout.rename", { name: from, to })) this.load();
  }

  async remove(name) {
    const ok = await this.app.ask(t("layouts.confirmDelete", { name }), { danger: true });
    if (!ok) return;
    if (await this.app.act("layout.delete", { name })) this.load();
  }
}

export class HistoryPanel {
  constructor(root, app) {
    this.root = root;
    this.app = app;
    this.rows = [];
    this.list = root.querySelector("#history-list");
    this._timer = null;
  }

  visible() {
    return !this.root.hidden;
  }

  // A wall change: refresh soon if the panel is on screen (coalesced: a burst of moves
  // makes one request).
  changed() {
    if (!this.visible()) return;
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this.load(), 300);
  }

  async load() {
    if (!this.app.conn || !this.visible()) return;
    try {
      const r = await this.app.conn.call("state.history", { ...this.app.wallParam(), limit: 50 });
      this.rows = r.revisions;
    } catch (e) {
      this.app.error(e);
      return;
    }
    this.render();
  }

  render() {
    const ro = !this.app.canEdit();
    this.list.innerHTML = "";
    if (!this.rows.length) {
      const p = el("p", "empty-note");
      p.textContent = t("history.empty");
      this.list.append(p);
      return;
    }
    const current = this.app.states.get(this.app.wallId);
    for (const r of this.rows) {
      const row = el("div", "rev");
      row.dataset.revision = String(r.revision);
      const info = el("div", "info");
      const key = `act.${r.action}`;
      const what = t(key) === key ? r.action : t(key);
      const head = el("div", "name");
      head.textContent = `#${r.revision} · ${what}`;
      const meta = el("div", "meta");
      meta.textContent = `${r.actor} · ${timeText(r.ts)}`;
      info.append(head, meta);
      row.append(info);
      if (!current || current.revision !== r.revision) {
        row.append(button(t("history.restore"), ro, () => this.restore(r)));
      } else {
        row.classList.add("current");
      }
      this.list.append(row);
    }
  }

  async restore(r) {
    const ok = await this.app.ask(t("history.confirm", { r: r.revision, when: timeText(r.ts) }));
    if (ok) await this.app.act("state.restore", { revision: r.revision });
  }
}

export function button(text, disabled, onClick) {
  const b = el("button");
  b.type = "button";
  b.textContent = text;
  b.disabled = disabled;
  b.addEventListener("click", onClick);
  return b;
}
