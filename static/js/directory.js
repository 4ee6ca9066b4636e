// The directory (/links/): a live count and an empty-state for the filter that switchyard.js
// applies, "/" to focus the filter, and Enter to open the only matching link. No inline code (CSP).
(function () {
  "use strict";
  function onReady(fn) { if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn); }
  onReady(function () {
    var input = document.getElementById("link-filter");
    var container = document.getElementById("directory");
    if (!input || !container) return;
    var counter = document.querySelector("[data-filter-count]");
    var empty = container.querySelector("[data-filter-empty]");
    var all = container.querySelectorAll(".client-links [data-filter-text]");
    function visibleLinks() {
      return Array.prototype.filter.call(all, function (row) { return !row.hidden; });
    }
    function update() {
      // An open "why" panel follows its link's row in and out of view.
      container.querySelectorAll("tr.why-row").forEach(function (row) {
        var link = row.previousElementSibling;
        row.hidden = !!(link && link.hidden);
      });
      var shown = visibleLinks().length;
      if (counter) counter.textContent = (input.value.trim() ? shown + " of " + all.length : all.length) + " link" + (all.length === 1 ? "" : "s");
      if (empty) empty.hidden = shown !== 0;
    }
    // switchyard.js hides the rows on the same event; count once it has.
    input.addEventListener("input", function () { window.setTimeout(update, 0); });
    input.addEventListener("keydown", function (event) {
      if (event.key !== "Enter") return;
      var rows = visibleLinks();
      if (rows.length !== 1) return;
      var link = rows[0].querySelector("a.go");
      if (link) { event.preventDefault(); link.click(); }
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "/" && document.activeElement !== input && !/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement.tagName)) {
        event.preventDefault(); input.focus();
      }
    });
    // Row actions, delegated (one listener for thousands of rows; without JavaScript the same
    // controls are a plain link and a form submission). "Why can I see this?" inserts its answer
    // as a row under the link, a second click closes it; the star swaps itself for the answer.
    container.addEventListener("click", function (event) {
      var why = event.target.closest("a.why");
      if (why) {
        event.preventDefault();
        var row = why.closest("tr");
        var open = row.nextElementSibling;
        if (open && open.classList.contains("why-row")) { open.remove(); return; }
        htmx.ajax("GET", why.getAttribute("href"), {source: why, target: row, swap: "afterend"}).then(function () {
          var panel = row.nextElementSibling;
          if (panel && panel.classList.contains("why-row")) panel.querySelector("td").focus();
        });
        return;
      }
      var star = event.target.closest("button.star");
      if (star) {
        event.preventDefault();
        htmx.ajax("POST", star.getAttribute("formaction"), {source: star, target: star, swap: "outerHTML"});
      }
    });
    update();
  });
})();
