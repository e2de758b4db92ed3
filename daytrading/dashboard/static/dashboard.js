// Live updates of the server-rendered page from /api/stream (Server-Sent Events), and the controls.
// Each message carries JSON data and, for the page, HTML fragments keyed by element id; an exit
// carries only its new trade rows ("trade_rows"), inserted here in exit-time order, and the
// equity curve is drawn again from the table's rows (data-exit, data-pnl).
(function () {
  "use strict";
  const body = document.body;
  const live = document.getElementById("live");
  const pinned = body.dataset.requested;  // a page opened with ?date= shows that session only
  const perSession = new Set(["trades", "equity", "gates"]);
  const SVG = "http://www.w3.org/2000/svg";
  let updates = 0;
  let es = null;
  let syncing = false;  // a resync asked for, its sync not yet here

  function ours(msg) { return (msg.session_date || "") === (body.dataset.session || ""); }

  function later(a, b) {  // row a sorts after row b: exit time, then trades.id
    const d = Number(a.dataset.exit) - Number(b.dataset.exit);
    return d > 0 || (d === 0 && Number(a.dataset.id) > Number(b.dataset.id));
  }

  function addRows(html) {
    const tbody = document.getElementById("trades");
    const tpl = document.createElement("template");
    tpl.innerHTML = html;
    for (const tr of Array.from(tpl.content.querySelectorAll("tr[data-id]"))) {
      const old = tbody.querySelector('tr[data-id="' + tr.dataset.id + '"]');
      if (old) { old.replaceWith(tr); continue; }
      const empty = tbody.querySelector("tr.empty");
      if (empty) empty.remove();
      const rows = tbody.querySelectorAll("tr[data-id]");
      let before = null;  // usually none: an exit is the newest row
      for (let i = rows.length - 1; i >= 0 && later(rows[i], tr); i--) before = rows[i];
      tbody.insertBefore(tr, before);
    }
  }

  function el(name, attrs, text) {
    const e = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function money(v) {
    return (v < 0 ? "-" : "+") + Math.abs(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }

  // The same drawing as views.equity_svg: a step line of cumulative realised P&L by exit time.
  function drawEquity() {
    const box = document.getElementById("equity");
    const rows = Array.from(document.querySelectorAll("#trades tr[data-id]"));
    if (!box) return;
    const w = 800, h = 160, pad = 28;
    if (!rows.length) {
      const svg = el("svg", { viewBox: "0 0 " + w + " " + h, class: "equity", role: "img", "aria-label": "equity curve" });
      svg.append(el("text", { x: w / 2, y: h / 2, "text-anchor": "middle" }, "no trades yet"));
      box.replaceChildren(svg);
      return;
    }
    const pts = [];
    let total = 0;
    rows.map((r) => [Number(r.dataset.exit), Number(r.dataset.pnl) || 0, r.children[4].textContent.trim()])
      .sort((a, b) => a[0] - b[0])
      .forEach(([t, pnl, hm]) => { total += pnl; pts.push([t, Math.round(total * 100) / 100, hm]); });
    const t0 = pts[0][0], t1 = Math.max(pts[pts.length - 1][0], t0 + 60);
    const ys = [0].concat(pts.map((p) => p[1]));
    const lo = Math.min(...ys), hi0 = Math.max(...ys), hi = hi0 > lo ? hi0 : lo + 1;
    const x = (t) => Math.round((pad + (t - t0) / (t1 - t0) * (w - 2 * pad)) * 10) / 10;
    const y = (v) => Math.round((h - pad - (v - lo) / (hi - lo) * (h - 2 * pad)) * 10) / 10;
    let d = "M" + x(t0) + "," + y(0);
    for (const [t, v] of pts) d += "H" + x(t) + "V" + y(v);
    const last = pts[pts.length - 1][1];
    const label = money(last) + " $";
    const svg = el("svg", { viewBox: "0 0 " + w + " " + h, class: "equity", role: "img", "aria-label": "equity curve " + label });
    svg.append(el("line", { x1: pad, x2: w - pad, y1: y(0), y2: y(0), class: "zero" }),
      el("path", { d: d, fill: "none", stroke: last >= 0 ? "#1a7f37" : "#cf222e", "stroke-width": 2 }),
      el("text", { x: pad, y: h - 8 }, pts[0][2].slice(0, 5)),
      el("text", { x: w - pad, y: h - 8, "text-anchor": "end" }, pts[pts.length - 1][2].slice(0, 5)),
      el("text", { x: w - pad, y: 16, "text-anchor": "end" }, label));
    box.replaceChildren(svg);
  }

  function apply(kind, msg) {
    if (msg.market_time) document.getElementById("market-time").textContent = msg.market_time;
    const mine = ours(msg);
    if (!mine && !pinned && kind !== "sync" && msg.session_date) {  // a new session: start from its whole page
      resync();
      return;
    }
    if (kind === "sync" && !pinned) body.dataset.session = msg.session_date || "";
    for (const [id, html] of Object.entries(msg.html || {})) {
      if (perSession.has(id) && pinned && !ours(msg)) continue;
      const e = document.getElementById(id);
      if (e) e.innerHTML = html;
    }
    if (kind === "sync") syncing = false;
    const full = msg.html && msg.html.trades !== undefined;
    if (full || msg.trade_rows !== undefined) {
      if (ours(msg)) {
        if (msg.trade_rows) addRows(msg.trade_rows);
        drawEquity();
        const held = document.querySelectorAll("#trades tr[data-id]").length;
        if (typeof msg.trades_total === "number" && held !== msg.trades_total && !full) {
          resync();  // rows deleted or more than one read streams: the whole table again
          return;
        }
      }
    }
    updates += 1;
    body.dataset.updates = String(updates);
  }

  function connect(held) {
    es = new EventSource("/api/stream" + (held ? "?after=" + encodeURIComponent(held) : ""));
    es.onopen = () => { live.textContent = "● live"; live.className = "live on"; };
    es.onerror = () => { live.textContent = "○ reconnecting"; live.className = "live off"; };
    // "sync" comes first on every (re)connect: the page's state, so nothing missed while away is lost
    for (const kind of ["sync", "status", "positions", "exit", "gate", "critical", "fill"]) {
      es.addEventListener(kind, (e) => apply(kind, JSON.parse(e.data)));
    }
  }

  function resync() {  // a new stream without Last-Event-ID: its sync carries the whole trades table
    if (syncing) return;
    syncing = true;
    if (es) es.close();
    connect(null);
  }

  connect(pinned ? null : body.dataset.held);

  const form = document.getElementById("control-form");
  if (!form) return;
  const out = document.getElementById("control-result");
  form.addEventListener("click", async (e) => {
    const action = e.target.dataset && e.target.dataset.action;
    if (!action) return;
    const token = document.getElementById("token").value;
    const payload = action === "freeze" ? { reason: document.getElementById("reason").value }
      : action === "liquidate-all" ? { confirm: document.getElementById("confirm").value } : {};
    out.textContent = action + " …";
    try {
      const res = await fetch("/api/control/" + action, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token },
        body: JSON.stringify(payload),
      });
      const data = await res.json();
      out.textContent = res.status + " " + (res.ok ? "done" : "refused") + ": " +
        (data.message || (typeof data.detail === "string" ? data.detail : JSON.stringify(data, null, 1)));
      out.dataset.status = String(res.status);
    } catch (err) {
      out.textContent = action + " failed: " + err;
    }
  });
})();
