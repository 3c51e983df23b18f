// Live updates: the server says "something changed" over Server-Sent Events; the page fetches
// its own main part again (rendered on the server) and swaps it in. No framework, no CDN.
"use strict";
(function () {
  if (document.body.dataset.live !== "on") return;
  const main = document.getElementById("main");
  const dot = document.getElementById("live");
  let busy = false;
  let again = false;
  let changedAt = 0;

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
        // For the browser tests and the benchmark: when the change happened and when it showed.
        document.body.dataset.changedAt = String(changedAt);
        document.body.dataset.shownAt = String(Date.now());
      } while (again);
    } finally { busy = false; }
  }

  const source = new EventSource("/events");
  let first = true;
  source.onopen = () => { if (dot) dot.className = "on"; };
  source.onerror = () => { if (dot) dot.className = "off"; };
  source.addEventListener("ended", () => { source.close(); location.assign("/login"); });
  source.onmessage = (message) => {
    const data = JSON.parse(message.data);
    changedAt = Math.round(data.at * 1000);
    const version = Number(document.body.dataset.version);
    if (first && data.version === version) { first = false; return; }
    first = false;
    document.body.dataset.version = String(data.version);
    refresh();
  };
})();
