// The live session table: server-sent events, falling back to polling. Our own code, no library.
(function () {
  "use strict";
  var status = document.getElementById("live-status");
  if (!status) { return; }
  var rows = document.getElementById("live-rows");
  var note = document.getElementById("live-note");

  function apply(data) {
    rows.innerHTML = data.rows;  // rendered and escaped by the server's templates
    ["present", "pending", "failed", "locked", "total"].forEach(function (k) {
      var el = document.getElementById("count-" + k);
      if (el && data.counts && k in data.counts) { el.textContent = data.counts[k]; }
    });
    var state = document.getElementById("live-state");
    if (state && data.status) { state.textContent = data.status; state.className = "tag " + data.status; }
    var expires = document.getElementById("live-expires");
    if (expires && data.expires) { expires.textContent = data.expires; }
    if (note) { note.textContent = "(updated " + new Date().toLocaleTimeString() + ")"; }
  }

  function poll() {
    fetch(status.dataset.poll, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { apply(data); } })
      .catch(function () {})
      .finally(function () { setTimeout(poll, parseInt(status.dataset.pollMs, 10) || 3000); });
  }

  if (window.EventSource) {
    var source = new EventSource(status.dataset.events);
    source.addEventListener("table", function (event) { apply(JSON.parse(event.data)); });
  } else {
    poll();
  }
})();
