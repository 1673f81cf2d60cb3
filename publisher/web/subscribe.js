/* publisher: inline answers for a copied signup form.
 * Optional: without it the form still works as a plain POST that answers with a page.
 * It sends the form's fields to /subscribe.json on the same server as the form's action
 * and shows the answer in the form's [data-publisher-message] element. When the server
 * cannot be reached, or this site is not among the publication's allowed origins, the
 * form is sent the plain way instead, so no signup is lost. No other site is contacted.
 */
(function () {
  "use strict";
  function endpoint(form) {
    var url = new URL(form.action, document.baseURI);
    url.pathname = url.pathname.replace(/\/subscribe(\/[^\/]*)?\/?$/, "/subscribe.json");
    return url.href;
  }
  function attach(form) {
    var message = form.querySelector("[data-publisher-message]");
    var button = form.querySelector("button[type=submit], button:not([type])");
    form.addEventListener("submit", function (event) {
      if (!window.fetch || !window.FormData) { return; }
      event.preventDefault();
      var body = {};
      new FormData(form).forEach(function (value, key) {
        if (typeof value === "string" && !(key in body)) { body[key] = value; }
      });
      if (button) { button.disabled = true; }
      fetch(endpoint(form), {
        method: "POST", mode: "cors", credentials: "omit",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(body)
      }).then(function (response) {
        return response.json().then(function (answer) {
          if (response.status === 403) { form.submit(); return; }
          if (message) {
            message.textContent = answer.detail || "";
            message.setAttribute("data-state", response.ok ? "done" : "error");
          }
          if (response.ok) { form.reset(); }
        });
      }).catch(function () {
        form.submit();
      }).then(function () {
        if (button) { button.disabled = false; }
      });
    });
  }
  var forms = document.querySelectorAll("form[data-publisher-subscribe]");
  for (var i = 0; i < forms.length; i += 1) { attach(forms[i]); }
}());
