"""The live status page (HTML + a little JavaScript, no build step).

Kept as a Python string so it ships with the package without package-data
configuration. ``$api_url``, ``$runs_url``, ``$xsrf`` and ``$my_queries`` are
filled by ``string.Template``. Every request, the list polls included, sends the
XSRF token as ``X-XSRFToken`` (the ``_xsrf`` cookie's value, else the one the
page was rendered with): under JupyterHub a single-user server refuses any
cookie-authenticated fetch without it, GET included. Below the queries it lists
this server's notebook runs (report runs, ``api/civis/execute``) with their
progress, cell *i* of *n*.
"""

STATUS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Queries and runs — this server</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
 table { border-collapse: collapse; width: 100%; }
 th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #ddd; vertical-align: top; }
 td.sql { font-family: ui-monospace, monospace; font-size: .85rem; max-width: 40rem; overflow-wrap: anywhere; }
 .state-running, .state-fetching, .state-storing, .state-queued { color: #0b5cad; font-weight: 600; }
 .state-failed { color: #b00020; } .state-cancelled { color: #777; } .state-done { color: #1b7f3b; }
 #error { color: #b00020; }
</style>
</head>
<body>
<h1>Warehouse queries on this server</h1>
<p>Running and recent queries; updates live. <a id="my-queries" hidden>My queries (all servers)</a>
<span id="error" role="alert"></span></p>
<table>
 <thead><tr><th>SQL</th><th>State</th><th>Elapsed</th><th>Rows</th><th>Cache</th><th></th></tr></thead>
 <tbody id="queries"><tr><td colspan="6">Loading…</td></tr></tbody>
</table>
<section id="runs-section" hidden>
<h2>Notebook runs on this server</h2>
<p>Report runs executing here (or recently), with the cell each is at.</p>
<table>
 <thead><tr><th>Notebook</th><th>State</th><th>Progress</th><th>Elapsed</th><th></th></tr></thead>
 <tbody id="runs"></tbody>
</table>
</section>
<script>
(function () {
  "use strict";
  var API = $api_url;
  var RUNS = $runs_url;
  var XSRF = $xsrf;
  var MY_QUERIES = $my_queries;
  var errorBox = document.getElementById("error");
  if (MY_QUERIES) {
    var link = document.getElementById("my-queries");
    link.href = MY_QUERIES;
    link.hidden = false;
  }

  // under JupyterHub a cookie-authenticated fetch needs the XSRF token even to read
  function xsrf() {
    var m = document.cookie.match(/(?:^|; )_xsrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : XSRF;
  }

  function request(url, method) {
    return fetch(url, {
      method: method || "GET", credentials: "same-origin", headers: { "X-XSRFToken": xsrf() }
    });
  }

  function json(r) {
    if (!r.ok) throw new Error("HTTP " + r.status);
    return r.json();
  }

  function cell(row, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  // a row's last cell: a Cancel button while it is not final
  function actions(tr, final, onCancel) {
    var td = cell(tr, "", "actions");
    if (!final) {
      var b = document.createElement("button");
      b.type = "button";
      b.textContent = "Cancel";
      b.addEventListener("click", function () { b.disabled = true; onCancel(b); });
      td.appendChild(b);
    }
  }

  function every(seconds, refresh) {
    (function loop() { refresh().then(function () { setTimeout(loop, seconds * 1000); }); })();
  }

  var RUN_FINAL = { done: 1, failed: 1, cancelled: 1, timeout: 1 };
  var runsSection = document.getElementById("runs-section");
  var runsBody = document.getElementById("runs");

  function renderRuns(runs) {
    runsBody.textContent = "";
    runs.forEach(function (r) {
      var tr = document.createElement("tr");
      tr.dataset.id = r.id;
      tr.dataset.state = r.state;
      cell(tr, r.path, "path");
      cell(tr, r.state + (r.error && r.state !== "cancelled" ? ": " + r.error.message : ""), "state state-" + r.state);
      cell(tr, "cell " + r.cell + " of " + r.cells, "progress");
      cell(tr, r.duration.toFixed(1) + " s", "elapsed");
      actions(tr, RUN_FINAL[r.state], function () {
        request(RUNS + "/" + r.id + "/cancel", "POST").then(refreshRuns);
      });
      runsBody.appendChild(tr);
    });
    runsSection.hidden = runs.length === 0;
  }

  function refreshRuns() {
    return request(RUNS).then(json)
      .then(function (data) { renderRuns(data.runs); })
      .catch(function () { runsSection.hidden = true; });  // no execution extension, or not the owner
  }

  var QUERY_FINAL = { done: 1, failed: 1, cancelled: 1 };
  var queriesBody = document.getElementById("queries");

  function renderQueries(queries) {
    queriesBody.textContent = "";
    if (!queries.length) {
      var empty = document.createElement("tr");
      cell(empty, "No queries yet.").colSpan = 6;
      queriesBody.appendChild(empty);
      return;
    }
    queries.forEach(function (q) {
      var tr = document.createElement("tr");
      tr.dataset.id = q.id;
      tr.dataset.state = q.state;
      cell(tr, q.sql, "sql").title = q.sql;
      cell(tr, q.state + (q.error && q.state !== "cancelled" ? ": " + q.error : ""), "state state-" + q.state);
      cell(tr, q.elapsed.toFixed(1) + " s", "elapsed");
      cell(tr, q.rows.toLocaleString(), "rows");
      cell(tr, q.cache ? q.cache + (q.shared ? " (shared)" : "") : "", "cache");
      actions(tr, QUERY_FINAL[q.state], function (button) {
        request(API + "/" + q.id + "/cancel", "POST").then(function (r) {
          if (!r.ok) { errorBox.textContent = "Cancel failed: HTTP " + r.status; button.disabled = false; }
          refreshQueries();
        });
      });
      queriesBody.appendChild(tr);
    });
  }

  function refreshQueries() {
    return request(API).then(json)
      .then(function (data) { errorBox.textContent = ""; renderQueries(data.queries); })
      .catch(function (e) { errorBox.textContent = "Cannot load queries: " + e.message; });
  }

  every(1, refreshRuns);
  every(1, refreshQueries);
})();
</script>
</body>
</html>
"""
