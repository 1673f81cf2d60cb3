// Progressive enhancement only: every page works without this file.
// The article editor refreshes its previews while the author types, and buttons that
// ask for a confirmation (data-confirm) ask before their form goes.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var text = button && button.getAttribute("data-confirm");
    if (text && !window.confirm(text)) { event.preventDefault(); }
  });
  var editor = document.getElementById("editor");
  if (!editor) { return; }
  var timer = null;
  function refresh() {
    var data = new FormData(editor);
    fetch("/desk/articles/preview", { method: "POST", body: data, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (answer) {
        if (!answer) { return; }
        document.querySelectorAll("iframe[data-preview]").forEach(function (frame) {
          frame.src = answer[frame.getAttribute("data-preview")];
        });
      });
  }
  editor.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 800);
  });
})();
// Live counts on an issue's page while it sends.
(function () {
  "use strict";
  var box = document.getElementById("live-counts");
  if (!box || box.getAttribute("data-status") !== "sending") { return; }
  var url = "/desk/issues/" + box.getAttribute("data-issue") + "/counts";
  function poll() {
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        box.querySelectorAll("[data-count]").forEach(function (cell) {
          cell.textContent = data[cell.getAttribute("data-count")];
        });
        if (data.status === "sending") { setTimeout(poll, 2000); }
      });
  }
  setTimeout(poll, 2000);
})();
