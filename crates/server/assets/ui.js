// wharfage console: small enhancements over pages that work without JavaScript.
// - copy buttons next to digests and commands (hidden when there is no script);
// - progress bars for a staging's streamed progress lines, updated as lines arrive
//   (this script runs before the page is parsed, so it can watch the stream).
"use strict";
(function () {
  document.documentElement.classList.add("js");

  function enableCopy(root) {
    root.querySelectorAll("button.copy[hidden]").forEach(function (b) {
      b.hidden = false;
      b.addEventListener("click", function () {
        var text = b.getAttribute("data-copy") || "";
        var done = function () {
          b.classList.add("done");
          b.textContent = "Copied";
          setTimeout(function () { b.classList.remove("done"); b.textContent = "Copy"; }, 1500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () {});
        }
      });
    });
  }

  var bars = {};
  function human(n) {
    var u = ["B", "kB", "MB", "GB", "TB"], i = 0;
    while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
    return (i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)) + " " + u[i];
  }
  function onRow(li) {
    var d = li.getAttribute("data-digest");
    var box = document.getElementById("bars");
    if (!d || !box) return;
    var b = bars[d];
    if (!b) {
      var row = document.createElement("div");
      row.className = "bar";
      var name = document.createElement("code");
      name.textContent = d.slice(0, 19);
      name.title = d;
      var p = document.createElement("progress");
      p.max = 1; p.value = 0;
      var amount = document.createElement("span");
      amount.className = "amount";
      row.append(name, p, amount);
      box.append(row);
      b = bars[d] = { row: row, p: p, amount: amount, size: 0 };
    }
    var size = Number(li.getAttribute("data-size")) || b.size;
    var bytes = Number(li.getAttribute("data-bytes")) || 0;
    b.size = size;
    if (size > 0) { b.p.max = size; b.p.value = Math.min(bytes, size); }
    b.amount.textContent = human(bytes) + (size ? " / " + human(size) : "");
    if (li.classList.contains("ev-done") || li.classList.contains("ev-reused")) {
      b.row.classList.add("done");
      b.p.max = 1; b.p.value = 1;
      if (li.classList.contains("ev-reused")) b.amount.textContent = "reused";
    }
  }

  new MutationObserver(function (records) {
    records.forEach(function (r) {
      r.addedNodes.forEach(function (n) {
        if (n.nodeType !== 1) return;
        if (n.matches && n.matches("li.ev")) onRow(n);
        if (n.matches && n.matches("#result")) enableCopy(n);
      });
    });
  }).observe(document.documentElement, { childList: true, subtree: true });

  document.addEventListener("DOMContentLoaded", function () { enableCopy(document); });
})();
