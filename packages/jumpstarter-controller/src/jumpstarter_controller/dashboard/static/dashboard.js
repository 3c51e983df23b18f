// Live updates: the server says "something changed" over Server-Sent Events. The exporters and leases
// pages get the changed rows with it (rendered on the server) and apply just those; other pages fetch
// their own main part again and swap it in. No framework, no CDN.
"use strict";
(function () {
  if (document.body.dataset.live !== "on") return;
  const main = document.getElementById("main");
  const dot = document.getElementById("live");
  const rowsOf = document.querySelector("[data-rows]");
  let busy = false;
  let again = false;
  let changedAt = 0;

  // For the browser tests and the benchmark: when the change happened and when it showed.
  function stamp() {
    document.body.dataset.changedAt = String(changedAt);
    document.body.dataset.shownAt = String(Date.now());
  }
  // And that the page is up to date with its change feed: it applied the feed's messages so far and
  // has nothing left to fetch.
  function synced() { document.body.dataset.synced = "1"; }

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
        if (!again) synced();  // a message came during the fetch: the page fetches again first
      } while (again);
    } finally { busy = false; }
  }

  function keyed(table) { return Array.from(table.tBodies[0].querySelectorAll("tr[data-key]")); }
  // A control, as the same one in a row rendered again would be (its place may differ: a link comes or goes).
  function control(el) { return `${el.tagName}.${el.className}:${el.textContent}`; }
  function countOf(table) { return Number(document.getElementById(table.dataset.count).textContent); }

  // Apply a row diff: `rows` maps a row's key to [its table's id, its html] or null (gone), `counts` each
  // table's count (by the id of the element showing it). A table keeps its rows in the server's order
  // (data-order, ascending as strings) and shows data-limit rows at most (the first ones). False if the
  // diff cannot be applied in place (a row past a cut table's end would have to move in, a count does not
  // match): the page then fetches its main part instead.
  function patch(rows, counts) {
    if (busy) return false;
    const tables = Array.from(main.querySelectorAll("table[data-count]"));
    // A cut table does not show its last rows: a row whose place is past its end stays out.
    const cut = new Set(tables.filter((table) => countOf(table) > keyed(table).length));
    const template = document.createElement("template");
    for (const [key, entry] of Object.entries(rows)) {
      const old = main.querySelector(`tr[data-key="${CSS.escape(key)}"]`);
      const home = old ? old.closest("table") : null;
      // A keyboard user on the row (its End button) stays on the same control of the new row.
      const focused = old && old.contains(document.activeElement) ? control(document.activeElement) : null;
      if (old) old.remove();
      if (entry === null) continue;
      const [id, html] = entry;
      const table = document.getElementById(id);
      if (!table || !tables.includes(table)) return false;
      template.innerHTML = html;
      const row = template.content.firstElementChild;
      const next = keyed(table).find((tr) => row.dataset.order < tr.dataset.order);
      // (A row shown in its place before stays: an update of a cut table's last row.)
      const stays = home === table && old.dataset.order === row.dataset.order;
      if (!next && cut.has(table) && !stays) continue;
      table.tBodies[0].insertBefore(row, next || null);
      const again = focused && Array.from(row.querySelectorAll("a, button")).find((el) => control(el) === focused);
      if (again) again.focus();
    }
    for (const table of tables) {
      const shown = keyed(table);
      const limit = table.dataset.limit ? Number(table.dataset.limit) : Infinity;
      for (const extra of shown.splice(limit)) extra.remove();
      const count = counts[table.dataset.count];
      if (typeof count !== "number" || shown.length !== Math.min(count, limit)) return false;
      const none = table.tBodies[0].querySelector("tr.none");
      if (none) none.hidden = count > 0;
      document.getElementById(table.dataset.count).textContent = String(count);
    }
    return true;
  }

  // The page's own query (the leases page's filter) goes along: the server diffs the rows it shows.
  const query = new URLSearchParams(location.search);
  if (rowsOf) query.set("rows", rowsOf.dataset.rows);
  const source = new EventSource("/events" + (rowsOf ? "?" + query : ""));
  let first = true;
  source.onopen = () => { if (dot) dot.className = "on"; };
  source.onerror = () => { if (dot) dot.className = "off"; };
  source.addEventListener("ended", () => { source.close(); location.assign("/login"); });
  source.onmessage = (message) => {
    const data = JSON.parse(message.data);
    changedAt = Math.round(data.at * 1000);
    const version = Number(document.body.dataset.version);
    if (first && data.version === version) { first = false; synced(); return; }
    // The first message of a stream carries no rows: what changed since the page was made is unknown.
    const whole = first ? "a new change feed" : data.full ? "many changes" : !data.rows ? "a page without rows" : "";
    first = false;
    document.body.dataset.version = String(data.version);
    if (!whole && patch(data.rows, data.counts)) { stamp(); synced(); return; }
    // Why, for the browser tests (a page that should have applied a row diff says what it did instead).
    document.body.dataset.fetched = whole || "a row diff that does not apply";
    refresh();
  };
})();
