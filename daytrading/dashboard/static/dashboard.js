// Live updates of the server-rendered page from /api/stream (Server-Sent Events), and the controls.
// Each message carries JSON data and, for the page, HTML fragments keyed by element id.
(function () {
  "use strict";
  const body = document.body;
  const live = document.getElementById("live");
  const session = body.dataset.session;
  const pinned = body.dataset.requested;  // a page opened with ?date= shows that session only
  const perSession = new Set(["trades", "equity", "gates"]);
  let updates = 0;

  function apply(msg) {
    if (msg.market_time) document.getElementById("market-time").textContent = msg.market_time;
    for (const [id, html] of Object.entries(msg.html || {})) {
      if (perSession.has(id) && pinned && msg.session_date !== session) continue;
      const el = document.getElementById(id);
      if (el) el.innerHTML = html;
    }
    updates += 1;
    body.dataset.updates = String(updates);
  }

  function connect() {
    const es = new EventSource("/api/stream");
    es.onopen = () => { live.textContent = "● live"; live.className = "live on"; };
    es.onerror = () => { live.textContent = "○ reconnecting"; live.className = "live off"; };
    // "sync" comes first on every (re)connect: the whole page, so nothing missed while away is lost
    for (const kind of ["sync", "status", "positions", "exit", "gate", "critical", "fill"]) {
      es.addEventListener(kind, (e) => apply(JSON.parse(e.data)));
    }
  }
  connect();

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
