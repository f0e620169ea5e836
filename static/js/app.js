// natsctl: the little script every page may use. No framework, no CDN.
// - [data-poll="URL"] with [data-every="seconds"]: replace the element's content with the fragment at URL.
// - [data-copy="#id"]: copy the text of the element #id to the clipboard.
// - form[data-confirm="question"]: ask before submitting; a refusal cancels the submit.
// - select[data-autosubmit]: submit its form when the choice changes (a <noscript> button does it without JS).
// - a[data-back]: go back in the history; the href is where it goes when there is nothing to go back to.
// - table: each cell gets its column's header as data-label, which the phone layout shows above the cell (app.css
//   stacks a table's rows there); the header row is marked .head and the table .labelled.
// The page's Content-Security-Policy (script-src 'self') refuses inline handlers and javascript: URLs, so every
// behaviour lives here. Listeners sit on the document so fragments loaded by [data-poll] behave the same.
(function () {
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
  });
  document.addEventListener("change", function (event) {
    var select = event.target.closest("select[data-autosubmit]");
    if (select && select.form) { select.form.requestSubmit(); }
  });
  document.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-back]");
    if (link && window.history.length > 1) { event.preventDefault(); window.history.back(); }
  });

  function label(root) {
    root.querySelectorAll("table").forEach(function (table) {
      var head = table.tHead ? table.tHead.rows[0] : table.rows[0];
      if (!head || head.querySelector("td")) { return; }  // a table without a header row (label, value) stays as is
      var names = [];
      Array.prototype.forEach.call(head.cells, function (th) {
        for (var i = 0; i < (th.colSpan || 1); i++) { names.push(th.innerText.trim()); }
      });
      head.classList.add("head");
      table.classList.add("labelled");
      Array.prototype.forEach.call(table.rows, function (row) {
        if (row === head) { return; }
        var column = 0;
        Array.prototype.forEach.call(row.cells, function (cell) {
          if (!cell.hasAttribute("data-label")) { cell.setAttribute("data-label", names[column] || ""); }
          column += cell.colSpan || 1;
        });
      });
    });
  }

  function poll(el) {
    var url = el.getAttribute("data-poll"), every = parseFloat(el.getAttribute("data-every") || "5") * 1000;
    function tick() {
      fetch(url, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { el.innerHTML = html; label(el); } })
        .catch(function () {})
        .finally(function () { setTimeout(tick, every); });
    }
    tick();
  }
  document.addEventListener("DOMContentLoaded", function () {
    label(document);
    document.querySelectorAll("[data-poll]").forEach(poll);
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var source = document.querySelector(button.getAttribute("data-copy"));
        if (source && navigator.clipboard) {
          navigator.clipboard.writeText(source.innerText.trim()).then(function () {
            var before = button.innerText; button.innerText = "copied"; setTimeout(function () { button.innerText = before; }, 1200);
          });
        }
      });
    });
  });
})();
