/* attn-demos neuron view (neuron.py): how one weight is made from q and each k, step by step. */
(function (views) {
  "use strict";
  var el = views.el, lut = views.lut, level = views.level, fmt = views.fmt, decode = views.decode,
      showTip = views.showTip, hideTip = views.hideTip, emit = views.emit;

  views.builders.neuron = function (root, live, p) {
    var d = p.d, nk = p.keys.length;
    var q = decode(p.q, p.vdecimals), k = decode(p.k, p.vdecimals), prod = decode(p.p, p.vdecimals);
    var vcol = lut(p.vstops), pcol = lut(p.pstops);
    var CELL = Math.max(2, Math.min(10, Math.floor(256 / d)));

    function strip(values, offset, colours, max, kind, row) {
      // one pixel per component, widened by CSS (image-rendering: pixelated)
      var canvas = el("canvas", "attn-strip");
      canvas.width = d;
      canvas.height = 1;
      canvas.style.width = d * CELL + "px";
      canvas.style.height = "14px";
      canvas.setAttribute("data-kind", kind);
      canvas.setAttribute("data-row", row);
      var ctx = canvas.getContext("2d"), image = ctx.createImageData(d, 1), data = image.data;
      for (var i = 0; i < d; i++) {
        var lv = level(values[offset + i], -max, max);
        for (var c = 0; c < 3; c++) data[4 * i + c] = lv < 0 ? 204 : colours.bytes[3 * lv + c];
        data[4 * i + 3] = 255;
      }
      ctx.putImageData(image, 0, 0);
      return canvas;
    }

    if (p.pick) { // this row in another layer or head: the tab then shows that head everywhere
      var picks = el("div", "attn-controls attn-nv-pick");
      var chosen = { layer: p.layer, head: p.head };
      [["layer", p.pick.layers], ["head", p.pick.heads]].forEach(function (pair) {
        var label = el("label", null, pair[0] + " ");
        var choice = el("select", "attn-nv-" + pair[0]);
        for (var n = 0; n < pair[1]; n++) {
          var option = el("option", null, String(n));
          option.value = n;
          if (n === chosen[pair[0]]) option.selected = true;
          choice.appendChild(option);
        }
        choice.addEventListener("change", function () {
          chosen[pair[0]] = +choice.value;
          emit(root, { view: "neuron", layer: chosen.layer, head: chosen.head, query: p.pick.query });
        });
        label.appendChild(choice);
        picks.appendChild(label);
      });
      picks.appendChild(el("span", "attn-note", "choose another layer or head: every view of the tab follows"));
      live.appendChild(picks);
    }
    var head = el("div", "attn-nv-query");
    head.appendChild(el("span", "attn-nv-label", "query \u201c" + p.query + "\u201d \u00b7 layer " + p.layer + " \u00b7 head " + p.head +
      " \u00b7 d = " + d + " \u00b7 scale = " + fmt(p.scale, 6) + (p.softcap ? " \u00b7 softcap = " + p.softcap : "") + "   q: "));
    head.appendChild(strip(q, 0, vcol, p.vmax, "q", -1));
    live.appendChild(head);
    var detail = el("div", "attn-nv-detail");
    live.appendChild(detail);

    var columns = [["key", null], ["k", null], ["q\u2218k (products)", null], ["\u03a3 q\u00b7k", "sums"],
                   ["\u00d7 scale", "scaled"], ["+ bias", "bias"], ["+ mask", "mask"], ["= logit", "logits"],
                   ["softmax", "softmax"], [p.checked_against_label, "checked_against"], ["|\u0394|", "delta"]];
    columns = columns.filter(function (c) { return c[1] === null || c[1] === "scaled" || c[1] === "delta" || p[c[1]] !== null; });
    var scroller = el("div", "attn-scroll attn-nv-scroll");
    var table = el("table", "attn-nv-table");
    var thead = el("tr");
    columns.forEach(function (c) { thead.appendChild(el("th", null, c[0])); });
    table.appendChild(thead);
    function value(name, j) {
      if (name === "scaled") return p.sums[j] === null ? null : p.sums[j] * p.scale;
      if (name === "delta") return p.softmax[j] === null || p.checked_against[j] === null ? null : Math.abs(p.softmax[j] - p.checked_against[j]);
      return p[name][j];
    }
    for (var j = 0; j < nk; j++) {
      var tr = el("tr", "attn-nv-row");
      tr.setAttribute("data-key", j);
      columns.forEach(function (c) {
        var td;
        if (c[0] === "key") td = el("td", "attn-nv-key", p.keys[j]);
        else if (c[0] === "k" || c[1] === null) { td = el("td", "attn-nv-strip"); td.style.width = d * CELL + "px"; }
        else {
          var v = value(c[1], j);
          var digits = c[1] === "softmax" || c[1] === "checked_against" ? 6 : 4;
          td = el("td", "attn-num attn-" + c[1].replace(/_/g, "-"), c[1] === "delta" ? (v === null ? "" : v.toExponential(1)) : fmt(v, digits));
          td.setAttribute("data-value", v === null ? "" : String(v));
        }
        tr.appendChild(td);
      });
      table.appendChild(tr);
    }
    scroller.appendChild(table);
    function fillStrips(tr) {
      // the k and product cells of one row, drawn when the row first comes into view
      if (tr.__attnDrawn) return;
      tr.__attnDrawn = true;
      var j = +tr.getAttribute("data-key"), cells = tr.querySelectorAll("td.attn-nv-strip");
      cells[0].appendChild(strip(k, j * d, vcol, p.vmax, "k", j));
      cells[1].appendChild(strip(prod, j * d, pcol, p.pmax, "p", j));
    }
    var rowsOfTable = table.querySelectorAll(".attn-nv-row");
    if (window.IntersectionObserver && nk > 60) {
      var seen = new IntersectionObserver(function (entries) {
        entries.forEach(function (entry) {
          if (entry.isIntersecting) { fillStrips(entry.target); seen.unobserve(entry.target); }
        });
      }, { root: scroller, rootMargin: "300px" });
      rowsOfTable.forEach(function (tr) { seen.observe(tr); });
    } else {
      rowsOfTable.forEach(fillStrips);
    }
    live.appendChild(scroller);

    function explain(j) {
      // the seed tutorial's three lines for key j, with the terms of this model
      table.querySelectorAll(".attn-nv-row.attn-focus").forEach(function (r) { r.classList.remove("attn-focus"); });
      var row = table.querySelector('.attn-nv-row[data-key="' + j + '"]');
      if (row) row.classList.add("attn-focus");
      var terms = [];
      for (var i = 0; i < d; i++) terms.push([Math.abs(prod[j * d + i]), i]);
      terms.sort(function (a, b) { return b[0] - a[0]; });
      var largest = terms.slice(0, 6).map(function (t) { return "q" + t[1] + "\u00b7k" + t[1] + " = " + fmt(prod[j * d + t[1]], 4); });
      var logitParts = fmt(value("scaled", j), 4) + (p.bias ? " + " + fmt(p.bias[j], 4) + " (bias)" : "") +
        (p.mask ? " + " + fmt(p.mask[j], 4) + " (mask)" : "");
      var lines = [
        "key \u201c" + p.keys[j] + "\u201d",
        "1. score  q\u00b7k = \u03a3 of " + d + " products = " + fmt(p.sums[j], 6) + "   (largest: " + largest.join(", ") + (d > 6 ? ", \u2026" : "") + ")",
        "2. scaled  " + fmt(p.sums[j], 6) + " \u00d7 " + fmt(p.scale, 6) + " = " + fmt(value("scaled", j), 6) +
          "   logit = " + logitParts + (p.softcap ? " (softcapped)" : "") + " = " + fmt(p.logits[j], 6),
        "3. softmax over the " + nk + " keys = " + fmt(p.softmax[j], 6) + "   " + p.checked_against_label + ": " + fmt(p.checked_against[j], 6) +
          "   |\u0394| = " + (value("delta", j) === null ? "\u2013" : value("delta", j).toExponential(2)),
      ];
      detail.textContent = lines.join("\n");
    }
    var best = 0;
    for (var b = 1; b < nk; b++) if ((p.softmax[b] || 0) > (p.softmax[best] || 0)) best = b;
    explain(best);
    table.addEventListener("mouseover", function (event) {
      var row = event.target.closest ? event.target.closest(".attn-nv-row") : null;
      if (row) explain(+row.getAttribute("data-key"));
    });
    live.addEventListener("mousemove", function (event) {
      var canvas = event.target;
      if (!canvas.classList || !canvas.classList.contains("attn-strip")) { hideTip(); return; }
      var i = Math.min(d - 1, Math.max(0, Math.floor((event.clientX - canvas.getBoundingClientRect().left) / CELL)));
      var row = +canvas.getAttribute("data-row");
      var text = "q" + i + " = " + fmt(q[i], 4);
      if (row >= 0) text += "\nk" + i + " = " + fmt(k[row * d + i], 4) + "\nq" + i + "\u00b7k" + i + " = " + fmt(prod[row * d + i], 4) +
        "\nkey \u201c" + p.keys[row] + "\u201d";
      showTip(text, event);
    });
    live.addEventListener("mouseleave", hideTip);
  };

  views.schedule(); // draw the views of this kind already on the page
})(window.attnViews);
