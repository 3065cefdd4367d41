"use strict";
// A report link: Refresh starts a run through the REST API (XSRF header), then the
// progress line follows it (cell i of n) until it ends; the page then shows the new run.
(() => {
  const root = document.getElementById("civis-report");
  const button = document.getElementById("report-refresh");
  const progress = document.getElementById("report-progress");
  const message = document.getElementById("report-message");
  if (!root) {
    return;
  }
  const api = root.dataset.api;
  const headers = { "X-XSRFToken": root.dataset.xsrf, "Content-Type": "application/json" };
  const say = (text) => {
    message.textContent = text;
    message.hidden = false;
  };

  async function follow() {
    for (;;) {
      // a cookie caller's GET needs the XSRF token too (the hub's rule for fetches)
      const r = await fetch(api, { credentials: "same-origin", headers });
      if (!r.ok) {
        say(`Could not follow the run (${r.status}).`);
        return;
      }
      const report = await r.json();
      const run = report.running;
      if (!run) {
        window.location.assign(window.location.pathname);
        return;
      }
      progress.hidden = false;
      progress.textContent = `Refreshing: ${run.status}, cell ${run.cell} of ${run.cells}`;
      await new Promise((done) => setTimeout(done, 1000));
    }
  }

  if (button) {
    button.addEventListener("click", async () => {
      button.disabled = true;
      const r = await fetch(`${api}/runs`, {
        method: "POST", credentials: "same-origin", headers, body: "{}",
      });
      if (!r.ok) {
        const body = await r.json().catch(() => ({}));
        say(body.message || `Refresh refused (${r.status}).`);
        button.disabled = false;
        return;
      }
      await follow();
    });
  }
  if (!progress.hidden) {
    follow();
  }
})();
