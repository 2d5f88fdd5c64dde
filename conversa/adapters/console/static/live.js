// Live updates of the console's message list: listens to the console's event stream
// (Server-Sent Events) and reloads the table's rows when a message is queued, received or
// changes status. No inline script: the Content-Security-Policy forbids it.
(function () {
  "use strict";
  var table = document.querySelector("[data-live-rows]");
  if (!table || !window.EventSource) { return; }
  var status = document.querySelector("[data-live-status]");
  var rowsUrl = table.getAttribute("data-live-rows");
  var streamUrl = table.getAttribute("data-live-stream");
  var pending = false;

  function say(text) { if (status) { status.textContent = text; } }

  function refresh() {
    if (pending) { return; }
    pending = true;
    window.setTimeout(function () {
      fetch(rowsUrl, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.redirected || !response.ok) { throw new Error("status " + response.status); }
          return response.text();
        })
        .then(function (html) {
          var known = {};
          table.querySelectorAll("tbody tr[data-id]").forEach(function (row) { known[row.getAttribute("data-id")] = true; });
          var template = document.createElement("template");
          template.innerHTML = html;  // server-rendered, autoescaped rows
          var body = template.content.querySelector("tbody");
          if (!body) { return; }
          body.querySelectorAll("tr[data-id]").forEach(function (row) {
            if (!known[row.getAttribute("data-id")]) { row.classList.add("fresh"); }
          });
          table.querySelector("tbody").replaceWith(body);
          var total = template.content.querySelector("[data-total]");
          var shown = document.querySelector("[data-total]");
          if (total && shown) { shown.textContent = total.textContent; }
        })
        .catch(function () { say("Live updates paused: reload the page."); })
        .then(function () { pending = false; });
    }, 250);
  }

  var source = new EventSource(streamUrl);
  source.addEventListener("open", function () { say("Live: new messages appear as they come."); });
  source.addEventListener("change", refresh);
  source.addEventListener("error", function () { say("Live updates reconnecting…"); });
})();
