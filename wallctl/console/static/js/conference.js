// Conference links between centres: the directory (call a centre), each link's call
// status, hang up, mute, share a source as content. The tab appears only when the daemon
// has conference links (conference.status answers with some).

import { t, timeText } from "./i18n.js";
import { el } from "./mimic.js";
import { button } from "./layouts.js";

const ACTIVE = new Set(["dialling", "ringing", "connected", "ending"]);
const LEVELS = ["city", "district", "township"];

export class ConferencePanel {
  constructor(root, app) {
    this.root = root;
    this.app = app;
    this.links = [];
    this.centres = [];
    this.tab = document.querySelector('[data-tab="conference"]');
    this._timer = null;
  }

  async load() {
    const conn = this.app.conn;
    try {
      const [st, dir] = await Promise.all([conn.call("conference.status"), conn.call("conference.centres")]);
      this.links = st.links || [];
      this.centres = dir.centres || [];
    } catch {
      this.links = [];
      this.centres = [];
    }
    this.tab.hidden = this.links.length === 0;
    this.render();
  }

  event(ev) {
    if (ev.type === "conference.result" && ev.data && ev.data.ok === false) {
      this.app.toast(`${t("conf.failed")}: ${ev.data.reason_text || ev.data.reason || ""}`);
    }
    // A call's steps come in bursts: one status read for each burst.
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this.load(), 100);
  }

  render() {
    this.root.innerHTML = "";
    if (!this.links.length) return;
    const ro = !this.app.canEdit();
    const busy = this.links.every((l) => ACTIVE.has(l.state));
    for (const l of this.links) {
      const card = el("section", "link");
      card.dataset.link = l.link;
      card.dataset.state = l.state;
      const head = el("div", "device-head");
      const dot = el("span", "dot");
      dot.dataset.phase = l.codec_status === "ok" ? (l.state === "connected" ? "live" : "") : "failed";
      const name = el("span", "name");
      name.textContent = l.name;
      const state = el("span", "meta state");
      const key = `conf.${l.state}`;
      state.textContent = t(key) === key ? l.state : t(key);
      head.append(dot, name, state);
      card.append(head);
      if (ACTIVE.has(l.state)) {
        const who = el("div", "meta");
        who.textContent = `${l.centre_name || l.number || ""}${l.connected_at ? ` · ${timeText(l.connected_at)}` : ""}`;
        card.append(who);
        const row = el("div", "link-actions");
        const hang = button(t("conf.hangup"), ro, () => this.app.act("conference.hangup", { link: l.link }));
        hang.classList.add("danger", "primary");
        hang.dataset.action = "hangup";
        const mute = button(l.muted ? t("conf.unmute") : t("conf.mute"), ro || l.state !== "connected",
          () => this.app.act("conference.mute", { link: l.link, on: !l.muted }));
        mute.dataset.action = "mute";
        row.append(hang, mute);
        card.append(row);
        if (l.state === "connected") card.append(this.share(l, ro));
      } else if (l.last_result && l.last_result.ok === false) {
        const why = el("div", "meta");
        why.textContent = `${t("conf.failed")}: ${l.last_result.reason_text || l.last_result.reason || ""}`;
        card.append(why);
      }
      this.root.append(card);
    }
    const h = el("h3");
    h.textContent = t("conf.directory");
    this.root.append(h);
    const order = (c) => (LEVELS.includes(c.level) ? LEVELS.indexOf(c.level) : 9);
    for (const c of [...this.centres].sort((a, b) => order(a) - order(b) || a.name.localeCompare(b.name, "zh-CN"))) {
      const row = el("div", "preset centre");
      row.dataset.centre = c.id;
      const info = el("div", "info");
      const name = el("div", "name");
      name.textContent = c.name;
      const meta = el("div", "meta");
      const lk = `level.${c.level}`;
      meta.textContent = `${t(lk) === lk ? c.level : t(lk)} · ${(c.dial || []).map((d) => d.number).join(" / ")}`;
      info.append(name, meta);
      const inCall = this.links.some((l) => ACTIVE.has(l.state) && l.centre === c.id);
      const call = button(t("conf.call"), ro || busy || inCall, () => this.app.act("conference.call", { centre: c.id }));
      call.classList.add("primary");
      call.dataset.action = "call";
      row.append(info, call);
      this.root.append(row);
    }
  }

  share(l, ro) {
    const f = el("label", "field share");
    const cap = el("span");
    cap.textContent = t("conf.share");
    const sel = el("select");
    sel.disabled = ro;
    const none = el("option");
    none.value = "";
    none.textContent = t("conf.noShare");
    sel.append(none);
    for (const s of this.app.sources.values()) {
      const o = el("option");
      o.value = s.id;
      o.textContent = s.name;
      sel.append(o);
    }
    sel.value = l.sharing || "";
    sel.addEventListener("change", () => this.app.act("conference.share", { link: l.link, source: sel.value || null }));
    f.append(cap, sel);
    return f;
  }
}
