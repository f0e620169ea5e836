// natsctl: the little script every page may use. No framework, no CDN.
// - [data-poll="URL"] with [data-every="seconds"]: replace the element's content with the fragment at URL.
// - [data-copy="#id"]: copy the text of the element #id to the clipboard.
(function () {
  function poll(el) {
    var url = el.getAttribute("data-poll"), every = parseFloat(el.getAttribute("data-every") || "5") * 1000;
    function tick() {
      fetch(url, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) { el.innerHTML = html; } })
        .catch(function () {})
        .finally(function () { setTimeout(tick, every); });
    }
    tick();
  }
  document.addEventListener("DOMContentLoaded", function () {
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
