// Live parts of the console's pages. A page whose <main> has data-live-parts (a URL) and
// data-live-stream (the console's Server-Sent Events stream) is kept up to date: when the
// stream says the message log changed, the script fetches the parts URL (server-rendered,
// autoescaped HTML) and swaps each element marked data-live-part="name" for the fetched one
// of the same name. Elements with a data-id not seen before are marked "fresh" (highlighted).
// No inline script anywhere: the Content-Security-Policy forbids it.
(function () {
  "use strict";
  var main = document.querySelector("main[data-live-parts]");
  if (!main || !window.EventSource || !window.fetch) { return; }
  var status = document.querySelector("[data-live-status]");
  var partsUrl = main.getAttribute("data-live-parts");
  var pending = false;
  var again = false;

  function say(text) { if (status) { status.textContent = text; } }

  function seen() {
    var ids = {};
    document.querySelectorAll("[data-live-part] [data-id]").forEach(function (element) {
      ids[element.getAttribute("data-id")] = true;
    });
    return ids;
  }

  function swap(html) {
    var known = seen();
    var template = document.createElement("template");
    template.innerHTML = html;
    template.content.querySelectorAll("[data-live-part]").forEach(function (part) {
      var name = part.getAttribute("data-live-part");
      var current = document.querySelector('[data-live-part="' + name + '"]');
      if (!current) { return; }
      part.querySelectorAll("[data-id]").forEach(function (element) {
        if (!known[element.getAttribute("data-id")]) { element.classList.add("fresh"); }
      });
      current.replaceWith(document.importNode(part, true));
    });
  }

  function refresh() {
    if (pending) { again = true; return; }
    pending = true;
    fetch(partsUrl, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.redirected || !response.ok) { throw new Error("status " + response.status); }
        return response.text();
      })
      .then(swap)
      .catch(function () { say("Live updates paused: reload the page."); })
      .then(function () {
        pending = false;
        if (again) { again = false; refresh(); }
      });
  }

  var source = new EventSource(main.getAttribute("data-live-stream"));
  source.addEventListener("open", function () { say("Live: changes appear as they happen."); });
  source.addEventListener("change", refresh);
  source.addEventListener("error", function () { say("Live updates reconnecting…"); });
})();
