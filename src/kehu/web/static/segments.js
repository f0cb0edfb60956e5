// The segment builder (templates/segment.html): add and remove rule rows, show the inputs of
// each row's kind, remember which side (rows or YAML) was edited last, and let HTMX show a
// 422 preview (the messages beside the rows). No inline scripts: the CSP forbids them.
(function () {
  var FORM = "segment-form";

  function form() { return document.getElementById(FORM); }

  function inForm(el) { return el && el.closest && el.closest("#" + FORM); }

  // ids follow the row's position: rule-field-0, row-error-0 … (previews address them)
  function renumber() {
    document.querySelectorAll("#segment-rows .rule-row").forEach(function (row, i) {
      row.querySelectorAll("[data-id]").forEach(function (el) { el.id = el.dataset.id + "-" + i; });
    });
  }

  function sync(row) {
    var kind = row.querySelector("[name=kind]");
    var field = row.querySelector("[name=field]");
    var op = row.querySelector("[name=op]");
    var value = row.querySelector("[name=value]");
    row.dataset.kind = kind ? kind.value : "field";
    row.dataset.op = op ? op.value : "";
    if (!field || !op || !value) return;
    var chosen = field.options[field.selectedIndex];
    var isText = chosen && chosen.dataset.kind === "text";
    op.querySelectorAll("option[data-text-only]").forEach(function (o) { o.disabled = !isText; });
    var list = "values-" + field.value;
    if (document.getElementById(list)) value.setAttribute("list", list);
    else value.removeAttribute("list");
  }

  function syncAll() { document.querySelectorAll(".rule-row").forEach(sync); }

  function setSource(target) {
    var src = document.getElementById("segment-source");
    if (!src || !inForm(target) || target.name === "overwrite") return;
    src.value = target.id === "segment-yaml" ? "yaml" : "rules";
  }

  function preview() {
    var f = form();
    if (f && window.htmx) window.htmx.trigger(f, "change");
  }

  // capture: runs before HTMX reads the form for the request this same event triggers
  // typing (or pasting) in a text input previews after a pause: HTMX listens for "edit"
  document.addEventListener("input", function (e) {
    var t = e.target;
    setSource(t);
    var typed = t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type !== "checkbox");
    if (typed && inForm(t) && window.htmx) window.htmx.trigger(form(), "edit");
  }, true);
  document.addEventListener("change", function (e) {
    setSource(e.target);
    var row = e.target.closest && e.target.closest(".rule-row");
    if (row) sync(row);
  }, true);

  document.addEventListener("click", function (e) {
    var t = e.target;
    if (!t.closest) return;
    if (t.closest("#segment-add-row")) {
      var tpl = document.getElementById("segment-row-template");
      var rows = document.getElementById("segment-rows");
      if (!tpl || !rows) return;
      rows.appendChild(tpl.content.cloneNode(true));
      renumber();
      syncAll();
      var added = rows.lastElementChild && rows.lastElementChild.querySelector("[name=field]");
      if (added) added.focus();
      return;
    }
    var remove = t.closest(".rule-remove");
    if (remove && inForm(remove)) {
      remove.closest(".rule-row").remove();
      renumber();
      document.getElementById("segment-source").value = "rules";
      preview();
    }
  });

  // Enter in a one-line input previews instead of saving
  document.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && e.target.tagName === "INPUT" && inForm(e.target)) {
      e.preventDefault();
      preview();
    }
  });

  document.addEventListener("submit", function (e) {
    var f = e.target;
    if (f.classList && f.classList.contains("seg-delete") && !window.confirm(f.dataset.confirm || "?")) {
      e.preventDefault();
    }
  });

  // a 422 preview carries the messages to show beside the rows: swap it like a 200
  document.addEventListener("htmx:beforeSwap", function (e) {
    var target = e.detail.target;
    if (e.detail.xhr.status === 422 && target && target.id === "segment-preview") {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
  // a preview rewrites the side not being edited; if the person has switched sides since the
  // request left (typing in the YAML while the rows' preview was under way), keep their edit
  var REWRITTEN_BY = { "segment-yaml": "rules", "segment-rules": "yaml", "segment-name": "yaml",
                       "segment-description": "yaml" };
  document.addEventListener("htmx:oobBeforeSwap", function (e) {
    var src = document.getElementById("segment-source");
    var side = REWRITTEN_BY[e.detail.target && e.detail.target.id];
    if (src && side && src.value !== side) e.detail.shouldSwap = false;
  });
  document.addEventListener("htmx:afterSettle", function () { renumber(); syncAll(); });
  document.addEventListener("DOMContentLoaded", function () { renumber(); syncAll(); });
})();
