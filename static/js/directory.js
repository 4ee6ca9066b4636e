// The directory (/links/). Without JavaScript the page works as it is: the filter is a GET form
// (?q=), a collapsed client opens with ?client=<slug>. With it:
// - the filter matches every word in any order against client, account name and ID and tier,
//   through an index read once from the page (#directory-index), drawing at most ROWS_SHOWN rows;
// - Down/Up in the filter choose a link, Enter opens it (or the only match); "/" focuses the filter;
// - a client opened for the first time gets its rows from the index;
// - Copy URL copies the link's /go/ address (every use goes through the portal and is recorded);
// - "Why?" and the star work in place (htmx). No inline code (CSP).
(function () {
  "use strict";
  var ROWS_SHOWN = 25;  // about two screens; typing another word narrows the rest
  function onReady(fn) { if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn); }
  onReady(function () {
    var input = document.getElementById("link-filter");
    var container = document.getElementById("directory");
    var data = document.getElementById("directory-index");
    var template = document.getElementById("link-row-template");
    if (!input || !container || !data || !template) return;
    var index = JSON.parse(data.textContent);
    var clients = index.clients;
    var links = index.links.map(function (row) {
      var client = clients[row[1]];
      return {row: row, text: (client[1] + " " + client[0] + " " + row[2] + " " + row[3] + " " + row[4]).toLowerCase()};
    });
    var counter = document.getElementById("link-filter-count");
    var results = document.getElementById("filter-results");
    var resultsList = document.getElementById("results-list");
    var empty = results.querySelector("[data-filter-empty]");
    var browse = document.getElementById("browse");
    // Rows drawn here leave out the star's form="favourite-form": that tie is for the page without
    // JavaScript (here htmx posts the star), and the browser looks a form-tied button up again
    // each time its row enters or leaves the list, about as long as drawing the row.
    var rowTemplate = template.content.firstElementChild.cloneNode(true);
    rowTemplate.querySelectorAll("[form]").forEach(function (button) { button.removeAttribute("form"); });
    var active = -1;
    var lastQuery = null;
    var lastShown = "";  // the ids drawn: when a keystroke keeps the same rows, the page is not touched

    // The full list is set aside while filtering with content-visibility (class "set-aside"), not
    // display: none, so the browser keeps its layout and bringing it back costs no relayout of
    // hundreds of clients. The server's ?q= page hides it with the hidden attribute instead.
    function showBrowse(show) {
      browse.hidden = false;
      browse.classList.toggle("set-aside", !show);
    }
    if (browse.hidden) showBrowse(false);

    function plural(n) { return n + " link" + (n === 1 ? "" : "s"); }

    // One row from the server-rendered template: ids in its three addresses, texts, colour, star.
    function drawRow(row) {
      var id = String(row[0]);
      var li = rowTemplate.cloneNode(true);
      li.setAttribute("data-id", id);
      li.querySelectorAll("[href],[formaction]").forEach(function (element) {
        var name = element.hasAttribute("href") ? "href" : "formaction";
        element.setAttribute(name, element.getAttribute(name).replace("/0/", "/" + id + "/"));
      });
      var chip = li.querySelector(".chip");
      chip.textContent = row[4];
      chip.className = "chip chip-" + (row[6] || "none");
      var name = li.querySelector(".name");
      if (row[8]) {
        var bad = document.createElement("span");
        bad.className = "name bad"; bad.title = row[8]; bad.textContent = row[5] + ": link unavailable";
        name.replaceWith(bad);
        var copy = li.querySelector("[data-copy-link]");
        if (copy) copy.remove();
      } else {
        name.textContent = row[5];
      }
      li.querySelector(".acct").textContent = row[3];
      if (row[9]) {  // AWS would refuse it: the same mark, why and what to do, as the server draws
        var mark = document.createElement("span");
        mark.className = "aws-refuses"; mark.setAttribute("data-aws-refuses-link", "");
        var title = document.createElement("strong");
        title.textContent = "AWS will refuse this link.";
        mark.append(title, " " + index.refusals[row[9] - 1]);
        li.append(" ", mark);
      }
      var star = li.querySelector("button.star");
      if (row[7]) { star.setAttribute("aria-pressed", "true"); star.textContent = "\u2605"; star.title = "Remove from favourites"; }
      return li;
    }

    function draw(list, rows) {
      var fragment = document.createDocumentFragment();
      rows.forEach(function (row) { fragment.appendChild(drawRow(row)); });
      list.replaceChildren(fragment);
    }

    function shownLinks() {
      var scope = results.hidden ? browse : results;
      return Array.prototype.filter.call(scope.querySelectorAll("a.go"), function (a) { return a.offsetParent !== null; });
    }

    function choose(next) {
      var shown = shownLinks();
      container.querySelectorAll(".link-row.is-active").forEach(function (row) { row.classList.remove("is-active"); });
      if (!shown.length) { active = -1; return; }
      active = Math.max(0, Math.min(next, shown.length - 1));
      var row = shown[active].closest(".link-row");
      row.classList.add("is-active");
      row.scrollIntoView({block: "nearest"});
    }

    // Each link's row for the results is made once and kept (drawn by the server for ?q=, else on
    // first match); a keystroke then only moves rows in and out of the list. Rows that stay are not
    // touched (no new nodes, no text to lay out again), so typing costs little more than the typing.
    var resultRows = {};
    Array.prototype.forEach.call(resultsList.children, function (li) {
      if (li.hasAttribute("data-id")) resultRows[li.getAttribute("data-id")] = li;
    });
    var more = document.createElement("li");
    more.className = "more";
    var shownCount = -1;

    function resultRow(row) {
      var li = resultRows[row[0]];
      if (!li) li = resultRows[row[0]] = drawRow(row);
      return li;
    }

    // The list becomes exactly ``wanted`` (then the "more" line when asked): first the rows not
    // wanted leave, then the wanted ones are put in order, so a row shown before and after a
    // keystroke never leaves the document.
    function showRows(wanted, moreText) {
      var keep = new Set(wanted);
      if (moreText) keep.add(more);
      Array.prototype.slice.call(resultsList.children).forEach(function (li) {
        if (!keep.has(li)) li.remove();
      });
      if (moreText && more.textContent !== moreText) more.textContent = moreText;
      if (moreText) wanted = wanted.concat([more]);
      var current = resultsList.firstChild;
      for (var i = 0; i < wanted.length; i++) {
        if (wanted[i] === current) { current = current.nextSibling; continue; }
        resultsList.insertBefore(wanted[i], current);
      }
    }

    function setCount(text) { if (counter.textContent !== text) counter.textContent = text; }

    var lastWords = [];
    var lastMatched = null;

    function apply() {
      var query = input.value.trim().toLowerCase();
      if (query === lastQuery) return;
      lastQuery = query;
      if (active >= 0) container.querySelectorAll(".link-row.is-active").forEach(function (row) { row.classList.remove("is-active"); });
      active = -1;
      var words = query.replace(/\//g, " ").split(/\s+/).filter(Boolean);
      if (!words.length) {
        results.hidden = true; showBrowse(true); lastShown = ""; lastWords = []; lastMatched = null;
        setCount(plural(links.length));
        return;
      }
      // Typing on narrows the last matches (every old word is part of a new one in the same place):
      // only those are looked at again, not every link.
      var narrows = lastMatched !== null && lastWords.length <= words.length && lastWords.every(function (word, n) {
        return words[n].indexOf(word) !== -1;
      });
      var pool = narrows ? lastMatched : links;
      var matched = [];
      for (var i = 0; i < pool.length; i++) {
        var text = pool[i].text, ok = true;
        for (var w = 0; w < words.length; w++) { if (text.indexOf(words[w]) === -1) { ok = false; break; } }
        if (ok) matched.push(pool[i]);
      }
      lastWords = words; lastMatched = matched;
      var shown = matched.slice(0, ROWS_SHOWN);
      var ids = matched.length + ":" + shown.map(function (link) { return link.row[0]; }).join(",");
      if (ids !== lastShown || results.hidden) {
        lastShown = ids;
        showRows(shown.map(function (link) { return resultRow(link.row); }), matched.length > ROWS_SHOWN
          ? "The first " + ROWS_SHOWN + " of " + plural(matched.length) + " are shown: type another word to narrow them."
          : "");
        if (shownCount !== matched.length) {
          empty.hidden = matched.length !== 0;
          shownCount = matched.length;
        }
        setCount(matched.length + " of " + plural(links.length));
      }
      if (results.hidden) { results.hidden = false; showBrowse(false); }
    }

    input.addEventListener("input", apply);
    input.addEventListener("keydown", function (event) {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        choose(active + (event.key === "ArrowDown" ? 1 : -1));
      } else if (event.key === "Enter") {
        var shown = shownLinks();
        var target = active >= 0 ? shown[active] : (shown.length === 1 ? shown[0] : null);
        if (target) { event.preventDefault(); target.click(); }
      } else if (event.key === "Escape" && input.value) {
        input.value = ""; apply();
      }
    });
    // Without JavaScript the filter is a form; with it the typing already filtered: the address
    // becomes the deep link to this view (/links/?q=...) instead of a reload.
    input.form.addEventListener("submit", function (event) {
      event.preventDefault();
      var query = input.value.trim();
      history.replaceState(null, "", query ? "?q=" + encodeURIComponent(query).replace(/%20/g, "+") : location.pathname);
    });
    document.addEventListener("keydown", function (event) {
      var tag = document.activeElement && document.activeElement.tagName;
      if (event.key === "/" && document.activeElement !== input && !/^(INPUT|TEXTAREA|SELECT)$/.test(tag)) {
        event.preventDefault(); input.focus();
      }
    });

    // A collapsed client gets its rows the first time it is opened.
    var byClient = {};
    index.links.forEach(function (row) { (byClient[row[1]] = byClient[row[1]] || []).push(row); });
    var position = {};
    clients.forEach(function (client, i) { position[client[0]] = i; });
    container.addEventListener("toggle", function (event) {
      var details = event.target;
      if (!details.open || !details.classList || !details.classList.contains("client-links")) return;
      var placeholder = details.querySelector(":scope > p.more");
      if (!placeholder) return;
      var list = document.createElement("ul");
      list.className = "link-list";
      draw(list, byClient[position[details.getAttribute("data-client")]] || []);
      placeholder.replaceWith(list);
    }, true);

    container.addEventListener("click", function (event) {
      var copy = event.target.closest("[data-copy-link]");
      if (copy) {
        var go = copy.closest(".link-row").querySelector("a.go");
        if (!go || !navigator.clipboard) return;
        navigator.clipboard.writeText(go.href).then(function () {
          copy.textContent = "Copied"; setTimeout(function () { copy.textContent = "Copy URL"; }, 1500);
        });
        return;
      }
      var why = event.target.closest("a.why");
      if (why) {
        event.preventDefault();
        var row = why.closest(".link-row");
        var open = row.nextElementSibling;
        if (open && open.classList.contains("why-row")) { open.remove(); return; }
        htmx.ajax("GET", why.getAttribute("href"), {source: why, target: row, swap: "afterend"}).then(function () {
          var panel = row.nextElementSibling;
          if (panel && panel.classList.contains("why-row")) panel.focus();
        });
        return;
      }
      var star = event.target.closest("button.star");
      if (star) {
        event.preventDefault();
        htmx.ajax("POST", star.getAttribute("formaction"), {source: star, target: star, swap: "outerHTML"});
      }
    });

    if (input.value.trim()) apply(); else lastQuery = "";
  });
})();
