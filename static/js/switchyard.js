// Small progressive enhancements; every page works without them. No inline scripts (CSP).
(function () {
  "use strict";
  function onReady(fn) { if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn); }
  onReady(function () {
    // Copy-to-clipboard buttons: <button data-copy="text">.
    document.addEventListener("click", function (event) {
      var button = event.target.closest("[data-copy]");
      if (!button || !navigator.clipboard) return;
      navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
        var label = button.textContent; button.textContent = "Copied"; setTimeout(function () { button.textContent = label; }, 1500);
      });
    });
    // Filter-as-you-type: <input data-filter-target="#list"> hides [data-filter-text] rows that do not match.
    // A row inside a [data-filter-label] element matches that label too (said once for all its rows).
    document.querySelectorAll("[data-filter-target]").forEach(function (input) {
      var container = document.querySelector(input.getAttribute("data-filter-target"));
      if (!container) return;
      function apply() {
        var needle = input.value.trim().toLowerCase();
        container.querySelectorAll("[data-filter-text]").forEach(function (row) {
          var labelled = row.parentElement.closest("[data-filter-label]");
          var text = (labelled ? labelled.getAttribute("data-filter-label") + " " : "") + row.getAttribute("data-filter-text");
          row.hidden = needle !== "" && text.toLowerCase().indexOf(needle) === -1;
        });
        container.querySelectorAll("[data-filter-group]").forEach(function (group) {
          group.hidden = group.querySelectorAll("[data-filter-text]:not([hidden])").length === 0;
        });
      }
      input.addEventListener("input", apply); apply();
    });
  });
})();
