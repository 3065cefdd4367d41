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

  async function refresh(trigger, body) {
    trigger.disabled = true;
    const r = await fetch(`${api}/runs`, {
      method: "POST", credentials: "same-origin", headers, body: JSON.stringify(body),
    });
    if (!r.ok) {
      const answer = await r.json().catch(() => ({}));
      say(answer.message || `Refresh refused (${r.status}).`);
      trigger.disabled = false;
      return;
    }
    message.hidden = true;
    await follow();
  }

  // a typed value as JSON (the server checks each against the notebook's parameters:
  // what does not parse as a number is sent as typed, and refused with a message)
  function value(input) {
    const kind = input.dataset.kind;
    if (kind === "bool") {
      return input.checked;
    }
    const text = input.value;
    if ((kind === "int" || kind === "float") && text.trim() !== "" && Number.isFinite(Number(text))) {
      return Number(text);
    }
    return text;
  }

  if (button) {
    button.addEventListener("click", () => refresh(button, {}));
  }
  const form = document.getElementById("report-parameters");
  const typed = () => {
    const parameters = {};
    for (const input of form.querySelectorAll("input[data-kind]")) {
      parameters[input.name] = value(input);
    }
    return parameters;
  };
  // the owner keeps the typed values as the report's own (PATCH, checked by the server)
  async function saveScheduled(trigger) {
    trigger.disabled = true;
    const r = await fetch(api, {
      method: "PATCH", credentials: "same-origin", headers,
      body: JSON.stringify({ parameters: typed() }),
    });
    const answer = await r.json().catch(() => ({}));
    say(r.ok ? "Scheduled runs will use these values." : answer.message || `Not saved (${r.status}).`);
    trigger.disabled = false;
  }
  if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      refresh(document.getElementById("report-run-with"), { parameters: typed() });
    });
    const save = document.getElementById("report-save-scheduled");
    if (save) {
      save.addEventListener("click", () => saveScheduled(save));
    }
  }
  if (!progress.hidden) {
    follow();
  }
})();
