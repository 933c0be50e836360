// The PTZ pad of the selected camera window: press and hold moves, release stops; zoom;
// the camera's presets. Shown only when exactly one window is selected, its source is
// an ONVIF camera and the daemon has the camera.ptz.* methods. Parameter names are read
// from the methods' params schemas (/console/config.json), not assumed.

import { t } from "./i18n.js";
import { el } from "./mimic.js";

const SPEED = 0.5;
const PAD = [
  ["↖", -1, 1], ["↑", 0, 1], ["↗", 1, 1],
  ["←", -1, 0], null, ["→", 1, 0],
  ["↙", -1, -1], ["↓", 0, -1], ["↘", 1, -1],
];

function pick(props, names) {
  return names.find((n) => n in props) || null;
}

export class PtzPanel {
  constructor(root, app) {
    this.root = root;
    this.app = app;
    this.source = null;
    this.camera = null;
    this.moving = false;
    this.cameras = null; // source id -> camera id, from camera.list
  }

  // Which camera shows in a source: camera.list says; else the onvif://<camera> URL.
  async cameraId(src) {
    if (this.cameras === null && this.props("camera.list")) {
      try {
        const r = await this.app.conn.call("camera.list");
        this.cameras = new Map();
        for (const c of r.cameras || []) for (const s of c.sources || []) this.cameras.set(s, c.camera);
      } catch {
        this.cameras = new Map();
      }
    }
    const known = this.cameras && this.cameras.get(src.id);
    if (known) return known;
    const m = /^onvif:\/\/([^/?#]+)/.exec(src.url || "");
    return m ? m[1] : src.id;
  }

  methods() {
    return (this.app.config && this.app.config.methods) || {};
  }

  props(method) {
    const m = this.methods()[method];
    return (m && m.params && m.params.properties) || null;
  }

  // The camera of the selected windows, or null.
  cameraOf(ids) {
    if (ids.length !== 1 || !this.props("camera.ptz.move") || !this.props("camera.ptz.stop")) return null;
    const w = this.app.mimic.window(ids[0]);
    const src = w && w.source ? this.app.sources.get(w.source) : null;
    return src && src.kind === "onvif" ? src : null;
  }

  async selectionChanged(ids) {
    const cam = this.cameraOf(ids);
    if ((cam && cam.id) === (this.source && this.source.id)) return;
    if (this.moving) this.stop();
    this.source = cam;
    this.camera = cam ? await this.cameraId(cam) : null;
    if (this.source === cam) this.render();
  }

  target(method) {
    const props = this.props(method) || {};
    const key = pick(props, ["camera", "device", "source"]) || "camera";
    return { [key]: key === "source" ? this.source.id : this.camera };
  }

  // Held: move now and again before the camera's dead-man timer would stop it.
  async hold(dx, dy, dz) {
    clearInterval(this._repeat);
    const r = await this.move(dx, dy, dz);
    if (!this.moving) return; // released before the answer came
    const every = Math.max(100, Math.min(1000, ((r && r.deadman_ms) || 1000) / 3));
    this._repeat = setInterval(() => this.move(dx, dy, dz), every);
  }

  move(dx, dy, dz) {
    const props = this.props("camera.ptz.move");
    const args = this.target("camera.ptz.move");
    const pan = pick(props, ["pan", "x"]);
    const tilt = pick(props, ["tilt", "y"]);
    const zoom = pick(props, ["zoom", "z"]);
    if (pan) args[pan] = dx * SPEED;
    if (tilt) args[tilt] = dy * SPEED;
    if (zoom) args[zoom] = dz * SPEED;
    this.moving = true;
    return this.app.act("camera.ptz.move", args);
  }

  stop() {
    clearInterval(this._repeat);
    this.moving = false;
    return this.app.act("camera.ptz.stop", this.target("camera.ptz.stop"));
  }

  async render() {
    this.root.innerHTML = "";
    this.root.hidden = !this.source;
    if (!this.source) return;
    const ro = !this.app.canEdit();
    const head = el("div", "ptz-head");
    head.textContent = `${t("devices.ptz")} · ${this.source.name}`;
    this.root.append(head);
    const box = el("div", "ptz");
    const grid = el("div", "ptz-grid");
    const hold = (b, dx, dy, dz) => {
      b.addEventListener("pointerdown", (e) => {
        if (ro) return;
        b.setPointerCapture(e.pointerId);
        b.classList.add("held");
        this.hold(dx, dy, dz);
      });
      const end = () => {
        if (!b.classList.contains("held")) return;
        b.classList.remove("held");
        this.stop();
      };
      b.addEventListener("pointerup", end);
      b.addEventListener("pointercancel", end);
    };
    for (const cell of PAD) {
      if (!cell) {
        grid.append(el("span"));
        continue;
      }
      const b = el("button", "pad");
      b.type = "button";
      b.textContent = cell[0];
      b.dataset.pan = String(cell[1]);
      b.dataset.tilt = String(cell[2]);
      b.disabled = ro;
      hold(b, cell[1], cell[2], 0);
      grid.append(b);
    }
    box.append(grid);
    const zooms = el("div", "ptz-zoom");
    for (const [label, dir] of [[t("devices.zoomIn"), 1], [t("devices.zoomOut"), -1]]) {
      const b = el("button", "pad");
      b.type = "button";
      b.textContent = label;
      b.dataset.zoom = String(dir);
      b.disabled = ro;
      hold(b, 0, 0, dir);
      zooms.append(b);
    }
    box.append(zooms);
    this.root.append(box);
    if (this.props("camera.ptz.presets") && this.props("camera.ptz.goto_preset")) {
      const sel = el("select", "ptz-presets");
      sel.disabled = ro;
      const first = el("option");
      first.value = "";
      first.textContent = t("devices.presets");
      sel.append(first);
      this.root.append(sel);
      const cam = this.source;
      try {
        const r = await this.app.conn.call("camera.ptz.presets", this.target("camera.ptz.presets"));
        if (cam !== this.source) return;
        const body = r.result && !Array.isArray(r) ? r.result : r;
        const list = Array.isArray(body) ? body : body.presets || [];
        for (const p of list) {
          const o = el("option");
          o.value = typeof p === "object" ? p.token ?? p.name ?? p.id : p;
          o.textContent = typeof p === "object" ? p.name || p.token || p.id : p;
          sel.append(o);
        }
      } catch {
        sel.disabled = true;
      }
      sel.addEventListener("change", () => {
        if (!sel.value) return;
        const props = this.props("camera.ptz.goto_preset") || {};
        const key = pick(props, ["preset", "token", "name"]) || "preset";
        this.app.act("camera.ptz.goto_preset", { ...this.target("camera.ptz.goto_preset"), [key]: sel.value });
        sel.value = "";
      });
    }
  }
}
