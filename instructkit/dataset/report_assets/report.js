// Record and quarantine browsers: filters, search, paging and keyboard navigation.
// The page is complete without this script (every item is in the HTML); it only hides and shows.
(function () {
  "use strict";
  document.documentElement.className = "js";

  function Browser(root) {
    var items = Array.prototype.slice.call(root.querySelectorAll("[data-items] > .item"));
    var selects = Array.prototype.slice.call(root.querySelectorAll("select[data-facet]"));
    var search = root.querySelector("input[data-search]");
    var count = root.querySelector("[data-count]");
    var more = root.querySelector("button.more");
    var noun = root.getAttribute("data-noun") || "items";
    var page = parseInt(root.getAttribute("data-page") || "25", 10);
    var shown = page, matches = [], texts = null;

    function text(i) {
      if (!texts) texts = items.map(function (el) { return el.textContent.toLowerCase(); });
      return texts[i];
    }
    function apply(resetPage) {
      if (resetPage) shown = page;
      var want = selects.map(function (s) { return [s.getAttribute("data-facet"), s.value]; });
      var words = (search && search.value.trim().toLowerCase().split(/\s+/).filter(Boolean)) || [];
      matches = [];
      items.forEach(function (el, i) {
        var ok = want.every(function (w) { return !w[1] || el.getAttribute("data-" + w[0]) === w[1]; }) &&
          words.every(function (w) { return text(i).indexOf(w) >= 0; });
        if (ok) matches.push(el);
        el.hidden = true;
        el.tabIndex = -1;
      });
      matches.slice(0, shown).forEach(function (el) { el.hidden = false; });
      if (matches.length) matches[0].tabIndex = 0;
      var vis = Math.min(shown, matches.length);
      count.setAttribute("data-matches", String(matches.length));
      count.textContent = matches.length === items.length && !words.length
        ? "Showing " + vis + " of " + items.length + " " + noun
        : matches.length + " of " + items.length + " " + noun + " match" + (vis < matches.length ? " (showing " + vis + ")" : "");
      if (more) more.hidden = vis >= matches.length;
    }
    function visible() { return matches.slice(0, shown); }
    function move(from, delta) {
      var vis = visible(), i = vis.indexOf(from);
      var j = delta === Infinity ? vis.length - 1 : delta === -Infinity ? 0 : Math.max(0, Math.min(vis.length - 1, i + delta));
      if (vis[j]) {
        vis.forEach(function (el) { el.tabIndex = -1; });
        vis[j].tabIndex = 0;
        vis[j].focus();
      }
    }
    selects.forEach(function (s) { s.addEventListener("change", function () { apply(true); }); });
    if (search) search.addEventListener("input", function () { apply(true); });
    if (more) more.addEventListener("click", function () {
      var first = matches[shown];
      shown += page;
      apply(false);
      if (first) { first.tabIndex = 0; first.focus(); }
    });
    root.addEventListener("keydown", function (ev) {
      var el = ev.target.closest ? ev.target.closest(".item") : null;
      if (!el || ev.target.matches("input,select,textarea")) return;
      var k = ev.key;
      if (k === "ArrowDown" || k === "j") { move(el, 1); ev.preventDefault(); }
      else if (k === "ArrowUp" || k === "k") { move(el, -1); ev.preventDefault(); }
      else if (k === "Home") { move(el, -Infinity); ev.preventDefault(); }
      else if (k === "End") { move(el, Infinity); ev.preventDefault(); }
      else if ((k === "Enter" || k === " ") && ev.target === el) {
        var d = el.querySelector("details");
        if (d) { d.open = !d.open; ev.preventDefault(); }
      }
    });
    root.addEventListener("focusin", function (ev) {
      var el = ev.target.closest ? ev.target.closest(".item") : null;
      if (el && !el.hidden) { items.forEach(function (x) { x.tabIndex = -1; }); el.tabIndex = 0; }
    });
    this.search = search;
    apply(true);
  }

  var browsers = Array.prototype.slice.call(document.querySelectorAll("[data-browser]")).map(function (r) {
    return new Browser(r);
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "/" || ev.target.matches("input,select,textarea")) return;
    // "/" searches the browser in view (or the first one)
    var best = browsers[0], top = Infinity;
    browsers.forEach(function (b) {
      var r = b.search && b.search.getBoundingClientRect();
      if (r && Math.abs(r.top) < top && r.bottom > -window.innerHeight) { top = Math.abs(r.top); best = b; }
    });
    if (best && best.search) { best.search.focus(); ev.preventDefault(); }
  });
})();
