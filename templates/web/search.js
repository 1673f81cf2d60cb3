/* Search in the archive, without a server: matches every word typed against the title,
   summary and topics of each article in search.json, and lists the articles that have
   them all. The form stays hidden until the index has loaded, so a reader without
   JavaScript (or without the index) sees the plain archive. No library, no other site. */
(function () {
  "use strict";
  var form = document.getElementById("search");
  if (!form || !window.fetch || !String.prototype.normalize) {
    return;
  }
  var input = form.querySelector("input[type=search]");
  var status = document.getElementById("search-status");
  var list = document.getElementById("search-results");
  var source = new URL(form.getAttribute("data-index"), document.baseURI);
  var entries = [];
  var LIMIT = 50;

  function fold(text) {
    return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
  }

  function show() {
    var words = fold(input.value).split(/\s+/).filter(Boolean);
    list.textContent = "";
    if (!words.length) {
      status.textContent = "";
      return;
    }
    var found = entries.filter(function (entry) {
      return words.every(function (word) { return entry.text.indexOf(word) !== -1; });
    });
    status.textContent = found.length
      ? form.getAttribute("data-found").replace("{count}", String(found.length))
      : form.getAttribute("data-none");
    found.slice(0, LIMIT).forEach(function (entry) {
      var item = document.createElement("li");
      var title = document.createElement("h2");
      var link = document.createElement("a");
      link.href = new URL(entry.article.url, source).href;
      link.textContent = entry.article.title;
      link.dir = "auto";
      title.appendChild(link);
      item.appendChild(title);
      var meta = document.createElement("p");
      meta.className = "meta";
      meta.textContent = entry.article.date;
      item.appendChild(meta);
      if (entry.article.summary) {
        var summary = document.createElement("p");
        summary.className = "summary";
        summary.dir = "auto";
        summary.textContent = entry.article.summary;
        item.appendChild(summary);
      }
      list.appendChild(item);
    });
  }

  fetch(source.href, { credentials: "same-origin" })
    .then(function (response) {
      if (!response.ok) {
        throw new Error(response.status);
      }
      return response.json();
    })
    .then(function (articles) {
      entries = articles.map(function (article) {
        var text = [article.title, article.summary, article.tags.join(" ")].join(" ");
        return { article: article, text: fold(text) };
      });
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        show();
      });
      input.addEventListener("input", show);
      form.hidden = false;
    })
    .catch(function () {
      /* No index, no box: the archive below still lists every article. */
    });
})();
