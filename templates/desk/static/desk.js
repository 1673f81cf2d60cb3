// Progressive enhancement only: every page works without this file.
// Buttons that ask for a confirmation (data-confirm) ask before their form goes. The
// article editor becomes a rich editor (EasyMDE, vendored; Markdown stays the text
// posted as `body`), counts words, autosaves into the article's versions, warns before
// leaving unsaved changes, refreshes its previews while the author types, uploads
// pictures, and sends its current text along with a test copy.
// A form pressed twice (a double click on Send or Schedule) goes once: the second press
// within a few seconds is ignored while the first is on its way.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var text = button && button.getAttribute("data-confirm");
    if (text && !window.confirm(text)) { event.preventDefault(); return; }
    var form = event.target;
    if (event.defaultPrevented || (form.method || "").toLowerCase() !== "post") { return; }
    if (form.getAttribute("data-submitted")) { event.preventDefault(); return; }
    form.setAttribute("data-submitted", "yes");
    setTimeout(function () { form.removeAttribute("data-submitted"); }, 4000);
  });
  // Back to a page kept in the browser's memory: its forms may go again.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-submitted]").forEach(function (f) { f.removeAttribute("data-submitted"); });
  });
})();

(function () {
  "use strict";
  var AUTOSAVE_EVERY = 5000;
  var WORDS_PER_MINUTE = 230;
  var FIELDS = ["title", "slug", "date", "tags", "summary", "image", "image_alt", "body"];

  function start() {
    var editor = document.getElementById("editor");
    var body = document.getElementById("body");
    if (!editor || !body) { return; }
    var rich = enhance(editor, body);
    var countBox = document.getElementById("word-count");
    var statusBox = document.getElementById("autosave-status");

    function text() { return rich ? rich.value() : body.value; }
    function sync() { if (rich) { rich.codemirror.save(); } }

    // What the form holds now, to compare with what was last stored (saved or autosaved).
    function snapshot() {
      sync();
      var values = FIELDS.map(function (name) {
        var field = editor.elements.namedItem(name);
        return field ? field.value : "";
      });
      var draft = editor.elements.namedItem("draft");
      values.push(draft && draft.checked ? "draft" : "");
      return JSON.stringify(values);
    }
    // A restored version is not stored as the article until saved.
    var stored = editor.getAttribute("data-dirty") ? null : snapshot();
    var leaving = false;

    // Words and reading time, by the rule the server counts with (services/revisions.py).
    var entities = document.createElement("textarea");
    function countWords() {
      if (!countBox) { return; }
      var plain = text().replace(/<!--[\s\S]*?(?:-->|$)|<(script|style|xml)\b[^>]*>[\s\S]*?(?:<\/\1\s*>|$)|<[!?][^<>]*>|<\/?[A-Za-z][\w:.-]*(?:\s(?:[^<>"']|"[^"]*"|'[^']*')*)?\/?>/gi, " ");
      entities.innerHTML = plain.replace(/</g, "&lt;");
      var found = entities.value.replace(/\]\([^)]*\)/g, "]").match(/[\p{L}\p{N}][\p{L}\p{N}_'’-]*/gu);
      var words = found ? found.length : 0;
      var minutes = words ? Math.ceil(words / WORDS_PER_MINUTE) : 0;
      countBox.textContent = words + (words === 1 ? " word" : " words") + " · about " + minutes + " min to read";
      countBox.setAttribute("data-words", String(words));
    }

    // Autosave: every few seconds, only when the fields changed since the last one.
    var autosaveUrl = editor.getAttribute("data-autosave");
    var posted = stored;
    var busy = false;
    function say(message) { if (statusBox) { statusBox.textContent = message; } }
    function autosave() {
      if (!autosaveUrl || busy || leaving) { return; }
      var now = snapshot();
      if (now === posted) { return; }
      var data = new FormData(editor);
      data.set("article", editor.getAttribute("data-article") || "");
      busy = true;
      fetch(autosaveUrl, { method: "POST", body: data, credentials: "same-origin" })
        .then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (answer) { return [r.status, answer]; });
        })
        .then(function (result) {
          var status = result[0], answer = result[1];
          if (status === 201 || status === 200) {
            posted = now;
            stored = now;
            if (answer.saved) { say("Autosaved at " + answer.at + "."); }
          } else if (status === 401) {
            say("Autosave stopped: your session has ended. Sign in again in another tab; your text is still here.");
          } else {
            say("Autosave failed: " + (answer.error || "the desk answered " + status) + ". Your text is still here.");
            posted = now;  // Not again until the text changes.
          }
        })
        .catch(function () { say("Autosave failed: the desk cannot be reached. Your text is still here."); })
        .then(function () { busy = false; });
    }
    if (autosaveUrl) { setInterval(autosave, AUTOSAVE_EVERY); }

    window.addEventListener("beforeunload", function (event) {
      if (leaving || snapshot() === stored) { return; }
      event.preventDefault();
      event.returnValue = "";
    });
    editor.addEventListener("submit", function () { sync(); leaving = true; });

    // The previews follow the text (the frames are the desk's, for this session only).
    var timer = null;
    function refresh() {
      var frames = document.querySelectorAll("iframe[data-preview]");
      if (!frames.length) { return; }
      sync();
      fetch("/desk/articles/preview", { method: "POST", body: new FormData(editor), credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (answer) {
          if (!answer) { return; }
          frames.forEach(function (frame) { frame.src = answer[frame.getAttribute("data-preview")]; });
        });
    }
    function changed() {
      countWords();
      clearTimeout(timer);
      timer = setTimeout(refresh, 800);
    }
    editor.addEventListener("input", changed);
    if (rich) { rich.codemirror.on("change", changed); }
    countWords();

    // A test copy is the text on screen, saved or not: its form carries the editor's fields.
    document.querySelectorAll("form#test-copy").forEach(function (form) {
      form.addEventListener("submit", function () {
        sync();
        form.querySelectorAll("input[data-from-editor]").forEach(function (el) { el.remove(); });
        FIELDS.concat(["draft"]).forEach(function (name) {
          var field = editor.elements.namedItem(name);
          if (!field || (field.type === "checkbox" && !field.checked)) { return; }
          var copy = document.createElement("input");
          copy.type = "hidden";
          copy.name = name;
          copy.value = field.type === "checkbox" ? "on" : field.value;
          copy.setAttribute("data-from-editor", "");
          form.appendChild(copy);
        });
      });
    });
  }

  // The rich editor over the textarea; null where it cannot run (no EasyMDE, read-only).
  function enhance(editor, body) {
    if (typeof window.EasyMDE !== "function" || body.disabled || body.closest("fieldset[disabled]")) { return null; }
    var announce = document.getElementById("upload-status");
    var csrf = editor.elements.namedItem("csrf");
    function tell(message) { if (announce) { announce.textContent = message; } }
    function label(name, action, text, title) {
      return { name: name, action: action, text: text, title: title, className: "label-" + name };
    }
    function upload(file, onSuccess, onError) {
      var data = new FormData();
      data.append("file", file);
      data.append("csrf", csrf ? csrf.value : "");
      tell("Uploading " + file.name + "…");
      fetch("/desk/media", { method: "POST", body: data, credentials: "same-origin" })
        .then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (answer) { return [r.status, answer]; });
        })
        .then(function (result) {
          var status = result[0], answer = result[1];
          if (status === 201 && answer.markdown) {
            place(answer.markdown);
            tell("Uploaded " + (answer.name || file.name) + ": the picture is in the text. Describe it between " +
                 "the brackets [ ], where the cursor is, for readers who cannot see it: the checks before " +
                 "sending ask for it. For a caption under it, write the caption in quotes after the " +
                 "picture's address: " + answer.markdown.replace(/\)$/, " \"Your caption\")") + ".");
          } else if (status === 404 || status === 405) {
            tell("Pictures cannot be uploaded from this desk yet. Put the picture's address in the text with the Link button instead.");
          } else if (status === 401) {
            tell("Your session has ended: sign in again in another tab, then upload " + file.name + " again.");
          } else if (status === 413 && !answer.error) {  // a proxy in front refused it, in its own words
            tell(file.name + " was not uploaded: it is larger than this server takes. Make it smaller " +
                 "(a photo exported at 2,000 pixels wide is plenty) and upload it again.");
          } else {
            var said = answer.error || "the desk answered " + status;
            tell(file.name + " was not uploaded: " + said + (/[.!?]$/.test(said) ? "" : "."));
          }
        })
        .catch(function () { tell(file.name + " was not uploaded: the desk cannot be reached. Try again."); });
    }
    // A picture is a paragraph of its own (two uploaded in a row would otherwise share a
    // line), with the cursor between its empty brackets: what it shows is typed there, the
    // alt text the checks before sending ask for.
    function place(markdown) {
      var cm = mde.codemirror;
      var from = cm.getCursor("from"), to = cm.getCursor("to");
      // Still inside the last picture's brackets (a second one dropped before the first is
      // described): the new one goes after it, not into it.
      var pictures = /!\[[^\]]*\]\([^)]*\)/g, found;
      while ((found = pictures.exec(cm.getLine(from.line))) !== null) {
        if (from.ch > found.index && from.ch < found.index + found[0].length) {
          from = to = { line: from.line, ch: found.index + found[0].length };
          cm.setCursor(from);
        }
      }
      var line = cm.getLine(from.line), rest = cm.getLine(to.line).slice(to.ch);
      var above = from.line > 0 ? cm.getLine(from.line - 1) : "";
      var before = line.slice(0, from.ch).trim() ? "\n\n" : (from.ch === 0 && above.trim() ? "\n" : "");
      var after = rest.trim() ? "\n\n" : "\n";
      var start = cm.indexFromPos(from) + before.length;
      cm.replaceSelection(before + markdown + after);
      var brackets = markdown.indexOf("[]");
      cm.setCursor(cm.posFromIndex(start + (brackets < 0 ? markdown.length : brackets + 1)));
      cm.focus();
    }
    var M = window.EasyMDE;
    var mde = new M({
      element: body,
      forceSync: true,
      autoDownloadFontAwesome: false,
      spellChecker: false,
      nativeSpellcheck: true,
      inputStyle: "contenteditable",
      status: false,
      promptURLs: false,
      minHeight: "18rem",
      uploadImage: true,
      imageUploadFunction: upload,
      imageAccept: "image/png, image/jpeg, image/gif, image/webp",
      errorCallback: tell,
      toolbar: [
        label("heading-2", M.toggleHeading2, "H2", "Heading"),
        label("heading-3", M.toggleHeading3, "H3", "Subheading"),
        "|",
        label("bold", M.toggleBold, "B", "Bold"),
        label("italic", M.toggleItalic, "I", "Italic"),
        label("link", M.drawLink, "Link", "Link"),
        label("quote", M.toggleBlockquote, "Quote", "Quote"),
        "|",
        label("unordered-list", M.toggleUnorderedList, "• List", "Bulleted list"),
        label("ordered-list", M.toggleOrderedList, "1. List", "Numbered list"),
        label("upload-image", M.drawUploadedImage, "Image", "Upload an image"),
        label("horizontal-rule", M.drawHorizontalRule, "Divider", "Divider (horizontal line)"),
        "|",
        label("undo", M.undo, "Undo", "Undo"),
        label("redo", M.redo, "Redo", "Redo"),
      ],
    });
    // The editing area is named by the field's label and help; the toolbar is reachable by Tab.
    var input = mde.codemirror.getInputField();
    input.setAttribute("aria-labelledby", "body-label");
    input.setAttribute("aria-describedby", "body-help");
    input.setAttribute("aria-multiline", "true");
    input.setAttribute("role", "textbox");
    var bar = mde.gui.toolbar;
    if (bar) {
      bar.setAttribute("role", "toolbar");
      bar.setAttribute("aria-label", "Formatting");
      bar.querySelectorAll("button").forEach(function (button) { button.tabIndex = 0; });
      bar.querySelectorAll("i.separator").forEach(function (sep) { sep.setAttribute("aria-hidden", "true"); });
    }
    var labelEl = document.getElementById("body-label");
    if (labelEl) { labelEl.addEventListener("click", function () { mde.codemirror.focus(); }); }
    return mde;
  }

  // This file and EasyMDE are deferred: both have run when DOMContentLoaded fires (the
  // document is "interactive" while they run, so readyState alone cannot tell).
  if (document.readyState === "complete") {
    start();
  } else {
    document.addEventListener("DOMContentLoaded", start);
  }
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
