// Live updates: the server says "something changed" over Server-Sent Events. The exporters page
// gets the changed rows with it (rendered on the server) and swaps just those; other pages fetch
// their own main part again and swap it in. No framework, no CDN.
"use strict";
(function () {
  if (document.body.dataset.live !== "on") return;
  const main = document.getElementById("main");
  const dot = document.getElementById("live");
  const rowsOf = document.querySelector("table[data-rows]");
  let busy = false;
  let again = false;
  let changedAt = 0;

  // For the browser tests and the benchmark: when the change happened and when it showed.
  function stamp() {
    document.body.dataset.changedAt = String(changedAt);
    document.body.dataset.shownAt = String(Date.now());
  }

  async function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    try {
      do {
        again = false;
        const response = await fetch(location.href, { headers: { "X-Fragment": "1" }, credentials: "same-origin" });
        if (response.status === 401) { location.assign("/login"); return; }
        if (!response.ok) break;
        const html = await response.text();
        const focused = document.activeElement && main.contains(document.activeElement);
        if (!focused) main.innerHTML = html;
        stamp();
      } while (again);
    } finally { busy = false; }
  }

  // Exporters are ordered by namespace, then name (as the server orders them).
  function before(a, b) {
    const [an, ax] = a.split("/"), [bn, bx] = b.split("/");
    return an < bn || (an === bn && ax < bx);
  }

  // Swap the changed rows in place; false if the page must be fetched whole instead.
  function patch(rows, count) {
    const body = document.querySelector("table[data-rows] tbody");
    if (!body || busy) return false;
    if (!body.querySelector("tr[data-exporter]")) return false; // the "no exporters yet" line
    const template = document.createElement("template");
    for (const [key, html] of Object.entries(rows)) {
      const old = body.querySelector(`tr[data-exporter="${CSS.escape(key)}"]`);
      if (html === null) { if (old) old.remove(); continue; }
      template.innerHTML = html;
      const row = template.content.firstElementChild;
      if (old) { old.replaceWith(row); continue; }
      const next = Array.from(body.children).find((tr) => tr.dataset.exporter && before(key, tr.dataset.exporter));
      body.insertBefore(row, next || null);
    }
    const shown = document.getElementById("count");
    if (shown) shown.textContent = String(count);
    return true;
  }

  const source = new EventSource(rowsOf ? "/events?rows=" + rowsOf.dataset.rows : "/events");
  let first = true;
  source.onopen = () => { if (dot) dot.className = "on"; };
  source.onerror = () => { if (dot) dot.className = "off"; };
  source.addEventListener("ended", () => { source.close(); location.assign("/login"); });
  source.onmessage = (message) => {
    const data = JSON.parse(message.data);
    changedAt = Math.round(data.at * 1000);
    const version = Number(document.body.dataset.version);
    if (first && data.version === version) { first = false; return; }
    // The first message of a stream carries no rows: what changed since the page was made is unknown.
    const whole = first || !data.rows || data.full;
    first = false;
    document.body.dataset.version = String(data.version);
    if (!whole && patch(data.rows, data.count)) { stamp(); return; }
    refresh();
  };
})();
