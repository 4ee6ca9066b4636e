// The onboarding form: suggest the root e-mail as the client's short name is typed, and show only
// the fields that apply. The form works without it (the server checks everything again).
(function () {
  "use strict";
  function onReady(fn) { if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn); }
  onReady(function () {
    var form = document.querySelector("form.onboarding-form");
    if (!form) return;
    var mailbox = form.getAttribute("data-mailbox") || "";
    var slugs = {};
    try { slugs = JSON.parse(form.getAttribute("data-client-slugs") || "{}"); } catch (e) { slugs = {}; }
    var clientSelect = form.querySelector("[data-client-select]");
    var slugInput = form.querySelector("[data-client-slug]");
    var nameInput = form.querySelector("[data-account-name]");
    var emailInput = form.querySelector("[data-root-email]");
    var newClient = form.querySelector("[data-new-client]");
    var at = mailbox.indexOf("@");
    var local = at > 0 ? mailbox.slice(0, at) : mailbox;
    var domain = at > 0 ? mailbox.slice(at + 1) : "";
    // Stop suggesting once the manager typed an address of their own.
    var lastSuggested = emailInput ? emailInput.value : "";

    function currentSlug() {
      if (clientSelect && clientSelect.value) return slugs[clientSelect.value] || "";
      return slugInput ? slugInput.value.trim().toLowerCase() : "";
    }
    function suggest() {
      if (!emailInput || !domain) return;
      if (emailInput.value !== "" && emailInput.value !== lastSuggested) return;
      var tag = currentSlug();
      var account = nameInput ? nameInput.value.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "") : "";
      if (tag && account) tag = tag + "-" + account;
      var value = tag ? local + "+" + tag + "@" + domain : "";
      emailInput.value = value;
      lastSuggested = value;
    }
    function showClientFields() {
      if (newClient && clientSelect) newClient.hidden = clientSelect.value !== "";
    }
    function showOriginFields() {
      var chosen = form.querySelector("input[name=origin]:checked");
      var origin = chosen ? chosen.value : "created";
      form.querySelectorAll("[data-origin-only]").forEach(function (block) {
        block.hidden = block.getAttribute("data-origin-only") !== origin;
      });
    }
    if (slugInput) slugInput.addEventListener("input", suggest);
    if (nameInput) nameInput.addEventListener("input", suggest);
    if (clientSelect) clientSelect.addEventListener("change", function () { showClientFields(); suggest(); });
    form.querySelectorAll("input[name=origin]").forEach(function (radio) { radio.addEventListener("change", showOriginFields); });
    showClientFields();
    showOriginFields();
    suggest();
  });
})();
