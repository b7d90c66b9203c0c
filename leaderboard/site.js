/* Sortable leaderboard tables, in plain JavaScript (inlined into every page by bench/leaderboard.py).
 *
 * A table.board has header cells th[data-key] holding a button, with data-type ("number" or
 * "text") and data-first (the direction of a first click: "desc" when higher is better). The
 * rows of its tbody.measured are reordered by their cells' data-sort values, rows without a
 * value last in both directions; tbody.published (rows reported in papers) is never touched.
 * The URL hash "#sort=<table id>:<key>:<asc|desc>" is applied when the page loads, and a click
 * writes its sort there, so a sorted table can be linked.
 */
"use strict";
(function () {
  function sortTable(table, key, dir) {
    var headers = Array.prototype.slice.call(table.tHead.rows[0].cells);
    var index = headers.findIndex(function (th) { return th.dataset.key === key; });
    if (index < 0 || (dir !== "asc" && dir !== "desc")) return false;
    var numeric = headers[index].dataset.type === "number";
    var sign = dir === "asc" ? 1 : -1;
    var body = table.querySelector("tbody.measured");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[index].dataset.sort, y = b.cells[index].dataset.sort;
      if (x === "" || y === "") return (x === "") - (y === "");
      return sign * (numeric ? Number(x) - Number(y) : x.localeCompare(y));
    });
    rows.forEach(function (row) { body.appendChild(row); });
    headers.forEach(function (th) { th.removeAttribute("aria-sort"); });
    headers[index].setAttribute("aria-sort", dir === "asc" ? "ascending" : "descending");
    table.dataset.sortKey = key;
    table.dataset.sortDir = dir;
    return true;
  }

  function onClick(event) {
    var th = event.currentTarget.closest("th");
    var table = th.closest("table");
    var key = th.dataset.key;
    var again = table.dataset.sortKey === key;
    var dir = again ? (table.dataset.sortDir === "asc" ? "desc" : "asc") : th.dataset.first;
    sortTable(table, key, dir);
    try {
      history.replaceState(null, "", "#sort=" + table.id + ":" + key + ":" + dir);
    } catch (e) {
      /* the sort still applies when the browser refuses to change the URL */
    }
  }

  function applyHash() {
    var match = /^#sort=([^:]+):([^:]+):(asc|desc)$/.exec(decodeURIComponent(location.hash));
    var table = match && document.getElementById(match[1]);
    if (table && table.classList.contains("board")) sortTable(table, match[2], match[3]);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.board th[data-key] button").forEach(function (button) {
      button.addEventListener("click", onClick);
    });
    applyHash();
  });
  window.addEventListener("hashchange", applyHash);
})();
