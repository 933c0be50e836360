// Devices: each controllable device with its connection status and its declared actions,
// rendered from the params JSON schema that device.list gives (so a new driver needs no
// change here). A camera with move/stop actions gets a press-and-hold PTZ pad. The tab
// appears only when the daemon has devices.

import { t } from "./i18n.js";
import { el } from "./mimic.js";
import { button } from "./layouts.js";

const ONLINE = new Set(["ok", "online", "connected", "ready"]);
const PAD = [
  ["↖", -1, 1], ["↑", 0, 1], ["↗", 1, 1],
  ["←", -1, 0], null, ["→", 1, 0],
  ["↙", -1, -1], ["↓", 0, -1], ["↘", 1, -1],
];

function actionsOf(d) {
  const a = d.actions || [];
  if (Array.isArray(a)) return a.map((x) => (typeof x === "string" ? { name: x } : x));
  return Object.entries(a).map(([name, x]) => ({ name, ...(x || {}) }));
}

function statusOf(d) {
  const s = d.status;
  if (typeof s === "string") return s;
  if (s && typeof s === "object") return s.status || s.state || "";
  return d.online === true ? "ok" : d.online === false ? "disconnected" : "";
}

export class DevicesPanel {
  constructor(root, app) {
    this.root = root;
    this.app = app;
    this.devices = [];
    this.tab = document.querySelector('[data-tab="devices"]');
  }

  async load() {
    try {
      const r = await this.app.conn.call("device.list");
      this.devices = r.devices || [];
    } catch {
      this.devices = [];
    }
    this.tab.hidden = this.devices.length === 0;
    this.render();
  }

  event(ev) {
    const d = ev.data || {};
    const id = d.device || d.id;
    const dev = this.devices.find((x) => x.id === id);
    if (!dev) return;
    if (ev.type === "device.status" && d.status !== undefined) dev.status = d.status;
    else if (ev.type === "device.state" && d.key !== undefined) dev.state = { ...(dev.state || {}), [d.key]: d.value };
    else return;
    // A burst of state changes (a salvo) redraws once.
    if (!this._pending) {
      this._pending = true;
      requestAnimationFrame(() => {
        this._pending = false;
        this.render();
      });
    }
  }

  render() {
    this.root.innerHTML = "";
    if (!this.devices.length) {
      const p = el("p", "empty-note");
      p.textContent = t("devices.none");
      this.root.append(p);
      return;
    }
    const ro = !this.app.canEdit();
    for (const d of this.devices) {
      const card = el("section", "device");
      card.dataset.device = d.id;
      const head = el("div", "device-head");
      const status = statusOf(d);
      const dot = el("span", "dot");
      dot.dataset.phase = ONLINE.has(status) ? "live" : "failed";
      const name = el("span", "name");
      name.textContent = d.name || d.id;
      const st = el("span", "meta");
      st.textContent = ONLINE.has(status) ? t("devices.online") : `${t("devices.offline")} ${status ? `(${status})` : ""}`;
      head.append(dot, name, st);
      card.append(head);
      const actions = actionsOf(d);
      const move = actions.find((a) => /(^|[._])(move|continuous_move|ptz_move)$/.test(a.name));
      const stop = actions.find((a) => /(^|[._])stop$/.test(a.name));
      if (move && stop) card.append(this.pad(d, move, stop, ro));
      if (d.family === "matrix" && d.size) card.append(this.matrix(d, ro));
      if (d.family === "display") card.append(this.display(d, ro));
      // Every declared action, generically: what the panels above do not cover.
      const more = el("details", "more");
      const sum = el("summary");
      sum.textContent = t("devices.actions");
      more.append(sum);
      for (const a of actions) {
        if (a === move || a === stop) continue;
        more.append(this.form(d, a, ro));
      }
      if (actions.length) card.append(more);
      this.root.append(card);
    }
  }

  // Outputs with the input each shows; choosing another input routes it (matrix.route).
  matrix(d, ro) {
    const box = el("div", "matrix");
    const state = d.state || {};
    const names = (m, n) => (m && m[String(n)]) || "";
    const outs = Object.keys(d.outputs || {}).length
      ? Object.keys(d.outputs).map(Number)
      : Array.from({ length: Math.min(d.size.outputs, 16) }, (_, i) => i + 1);
    const ins = Array.from({ length: d.size.inputs }, (_, i) => i + 1);
    for (const out of outs) {
      const row = el("label", "route");
      row.dataset.output = String(out);
      const cap = el("span");
      cap.textContent = `${out} ${names(d.outputs, out)}`.trim();
      const sel = el("select");
      sel.disabled = ro;
      const none = el("option");
      none.value = "0";
      none.textContent = t("devices.noInput");
      sel.append(none);
      for (const i of ins) {
        const o = el("option");
        o.value = String(i);
        o.textContent = `${i} ${names(d.inputs, i)}`.trim();
        sel.append(o);
      }
      const cur = state[`tie.av.${out}`] ?? state[`tie.video.${out}`];
      sel.value = cur == null ? "0" : String(cur);
      sel.addEventListener("change", () => this.app.act("matrix.route", { device: d.id, input: Number(sel.value), outputs: [out] }));
      row.append(cap, sel);
      box.append(row);
    }
    return box;
  }

  display(d, ro) {
    const box = el("div", "display-power");
    const cap = el("span");
    const power = (d.state || {}).power;
    cap.textContent = `${t("devices.power")}: ${power === "on" ? t("devices.on") : power === "off" ? t("devices.off") : "?"}`;
    const on = button(t("devices.on"), ro, () => this.app.act("display.power", { device: d.id, on: true }));
    on.dataset.power = "on";
    const off = button(t("devices.off"), ro, () => this.app.act("display.power", { device: d.id, on: false }));
    off.dataset.power = "off";
    box.append(cap, on, off);
    return box;
  }

  call(d, action, args) {
    return this.app.act("device.call", { device: d.id, action, args });
  }

  // Press and hold moves; release (or leaving the button) stops.
  pad(d, move, stop, ro) {
    const box = el("div", "ptz");
    const props = (move.params && move.params.properties) || {};
    const grid = el("div", "ptz-grid");
    const hold = (b, args) => {
      let moving = false;
      let repeat = null;
      b.addEventListener("pointerdown", (e) => {
        if (ro) return;
        b.setPointerCapture(e.pointerId);
        moving = true;
        b.classList.add("held");
        this.call(d, move.name, args);
        // Cameras stop by themselves (dead-man) without follow-up moves: keep sending.
        repeat = setInterval(() => this.call(d, move.name, args), 300);
      });
      const end = () => {
        if (!moving) return;
        moving = false;
        clearInterval(repeat);
        b.classList.remove("held");
        this.call(d, stop.name, {});
      };
      b.addEventListener("pointerup", end);
      b.addEventListener("pointercancel", end);
    };
    const key = (names) => names.find((n) => n in props) || names[0];
    const pan = key(["pan", "x", "pan_speed"]);
    const tilt = key(["tilt", "y", "tilt_speed"]);
    const zoom = key(["zoom", "z", "zoom_speed"]);
    const speed = 0.5;
    for (const cell of PAD) {
      if (!cell) {
        grid.append(el("span"));
        continue;
      }
      const b = el("button", "pad");
      b.type = "button";
      b.textContent = cell[0];
      b.disabled = ro;
      hold(b, { [pan]: cell[1] * speed, [tilt]: cell[2] * speed });
      grid.append(b);
    }
    box.append(grid);
    const zooms = el("div", "ptz-zoom");
    for (const [label, dir] of [[t("devices.zoomIn"), 1], [t("devices.zoomOut"), -1]]) {
      const b = el("button", "pad");
      b.type = "button";
      b.textContent = label;
      b.disabled = ro;
      hold(b, { [zoom]: dir * speed });
      zooms.append(b);
    }
    box.append(zooms);
    return box;
  }

  // One action: inputs from its params schema, and a button.
  form(d, a, ro) {
    const row = el("form", "action");
    row.dataset.action = a.name;
    const label = el("div", "action-name");
    label.textContent = a.title || a.description || a.name;
    row.append(label);
    const schema = a.params || a.schema || {};
    const props = schema.properties || {};
    const inputs = [];
    for (const [name, p] of Object.entries(props)) {
      const f = el("label", "field");
      const cap = el("span");
      cap.textContent = p.title || name;
      let input;
      const options = p.enum || (p.anyOf || []).flatMap((x) => x.enum || (x.const !== undefined ? [x.const] : []));
      if (options.length) {
        input = el("select");
        for (const v of options) {
          const o = el("option");
          o.value = JSON.stringify(v);
          o.textContent = String(v);
          input.append(o);
        }
        input.dataset.kind = "json";
      } else if (p.type === "boolean") {
        input = el("input");
        input.type = "checkbox";
        input.dataset.kind = "bool";
      } else if (p.type === "integer" || p.type === "number") {
        input = el("input");
        input.type = "number";
        if (p.minimum !== undefined) input.min = p.minimum;
        if (p.maximum !== undefined) input.max = p.maximum;
        input.step = p.type === "integer" ? "1" : "any";
        input.dataset.kind = p.type;
      } else {
        input = el("input");
        input.type = "text";
        if (p.maxLength) input.maxLength = p.maxLength;
        input.dataset.kind = "string";
      }
      if (p.default !== undefined && input.type !== "checkbox") input.value = input.dataset.kind === "json" ? JSON.stringify(p.default) : p.default;
      if (p.default === true && input.type === "checkbox") input.checked = true;
      input.name = name;
      input.disabled = ro;
      f.append(cap, input);
      row.append(f);
      inputs.push(input);
    }
    const run = button(t("devices.run"), ro, () => {
      const args = {};
      for (const i of inputs) {
        if (i.dataset.kind === "bool") args[i.name] = i.checked;
        else if (i.value === "") continue;
        else if (i.dataset.kind === "json") args[i.name] = JSON.parse(i.value);
        else if (i.dataset.kind === "integer") args[i.name] = parseInt(i.value, 10);
        else if (i.dataset.kind === "number") args[i.name] = Number(i.value);
        else args[i.name] = i.value;
      }
      this.call(d, a.name, args);
    });
    run.classList.add("primary");
    row.append(run);
    row.addEventListener("submit", (e) => e.preventDefault());
    return row;
  }
}
