/* attn-demos head view (head_view.py): every head's lines between the tokens; hover or click a token. */
(function (views) {
  "use strict";
  var el = views.el, emit = views.emit, checkbox = views.checkbox;

  views.builders.head = function (root, live, p) {
    var nq = p.q.length, nk = p.k.length, H = p.heads, ROW = 20;
    var scale = Math.pow(10, p.decimals);
    var cache = {};
    var group = root.getAttribute("data-attn-group");
    // mode: "one" (Head names a head), "top" (Head is a fusion: the sharpest heads), "own" (chips clicked here)
    var state = { layer: p.layer, active: p.colours.map(function () { return false; }), mode: "top", fused: "",
                  layerMean: false, focus: null, locked: false, hide: false, all: false };

    function layerData(l) {
      // {start: (H*nq+1,), keys, weights} for layer l, decoded once
      if (cache[l]) return cache[l];
      var n = p.w[l].n, kw = p.w[l].kw, start = new Int32Array(n.length + 1);
      for (var r = 0; r < n.length; r++) start[r + 1] = start[r] + n[r];
      var keys = new Int32Array(kw.length / 2), weights = new Float32Array(kw.length / 2);
      for (var e = 0; e < keys.length; e++) { keys[e] = kw[2 * e]; weights[e] = kw[2 * e + 1] / scale; }
      cache[l] = { start: start, keys: keys, weights: weights };
      return cache[l];
    }

    function topHeads(l) {
      // the p.top heads of layer l with the largest Σ w² between non-special tokens (head_view.py)
      var data = layerData(l), scores = [];
      for (var h = 0; h < H; h++) {
        var sum = 0;
        for (var q = 0; q < nq; q++) {
          if (p.qs[q]) continue;
          var row = h * nq + q;
          for (var e = data.start[row]; e < data.start[row + 1]; e++) {
            if (!p.ks[data.keys[e]]) sum += data.weights[e] * data.weights[e];
          }
        }
        scores.push([sum, h]);
      }
      scores.sort(function (a, b) { return b[0] - a[0] || a[1] - b[1]; });
      return scores.slice(0, Math.min(p.top, H)).map(function (s) { return s[1]; });
    }

    function showHeads(list) {
      state.active = state.active.map(function (_, h) { return list.indexOf(h) >= 0; });
      chips.querySelectorAll(".attn-chip").forEach(function (chip) {
        chip.classList.toggle("attn-off", !state.active[+chip.getAttribute("data-head")]);
      });
    }

    var seenQuery = null; // the selection's query row when the view last followed it
    function follow(selection, opening) {
      // the tab's Layer, Head and query row (selection.py); the row only when it changed since the
      // view opened (a first output token inspected by default leaves the overview alone)
      state.layerMean = selection.layer === "mean";
      var named = typeof selection.layer === "number" ? p.layers.indexOf(String(selection.layer)) : -1;
      if (named >= 0) { // the tab's layer, found by its label (a view may hold one layer of many)
        state.layer = named;
        select.value = p.layers[named];
      }
      if (typeof selection.head === "number" && selection.head >= 0 && selection.head < H) {
        state.mode = "one";
        showHeads([selection.head]);
      } else {
        state.mode = "top";
        state.fused = String(selection.head);
        showHeads(topHeads(state.layer));
      }
      var query = typeof selection.query === "number" && selection.query >= 0 && selection.query < nq ? selection.query : null;
      if (opening || query === seenQuery) { seenQuery = query; return; }
      seenQuery = query;
      state.focus = query === null ? null : { side: "q", i: query };
      state.locked = query !== null;
    }

    var controls = el("div", "attn-controls");
    var layerLabel = el("label", null, "layer ");
    var select = el("select", "attn-layer");
    p.layers.forEach(function (name, l) {
      var option = el("option", null, name);
      option.value = name;
      if (l === p.layer) option.selected = true;
      select.appendChild(option);
    });
    select.addEventListener("change", function () {
      state.layer = p.layers.indexOf(select.value);
      if (state.mode === "top") showHeads(topHeads(state.layer));
      draw();
    });
    layerLabel.appendChild(select);
    controls.appendChild(layerLabel);
    var chips = el("span", "attn-chips");
    chips.appendChild(el("span", "attn-note", "heads "));
    p.colours.forEach(function (colour, h) {
      var chip = el("button", "attn-chip attn-off", String(h));
      chip.type = "button";
      chip.style.background = colour;
      chip.title = "head " + h + ": click to hide or show";
      chip.setAttribute("data-head", h);
      chip.addEventListener("click", function () {
        state.active[h] = !state.active[h];
        state.mode = "own";
        chip.classList.toggle("attn-off", !state.active[h]);
        draw();
      });
      chips.appendChild(chip);
    });
    [["all", true], ["none", false]].forEach(function (pair) {
      var button = el("button", "attn-link", pair[0]);
      button.type = "button";
      button.addEventListener("click", function () {
        state.mode = "own";
        showHeads(pair[1] ? p.colours.map(function (_, h) { return h; }) : []);
        draw();
      });
      chips.appendChild(button);
    });
    controls.appendChild(chips);
    controls.appendChild(checkbox("show all lines (also weights below " + p.shown_from + ")", function (on) {
      state.all = on;
      draw();
    }));
    if (p.qs.some(Boolean) || p.ks.some(Boolean)) {
      controls.appendChild(checkbox("hide special tokens", function (on) {
        state.hide = on;
        root.querySelectorAll(".attn-hv-tok.attn-special").forEach(function (t) { t.classList.toggle("attn-dim", on); });
        draw();
      }));
    }
    live.appendChild(controls);
    var count = el("div", "attn-note attn-hv-count");
    live.appendChild(count);

    var scroller = el("div", "attn-scroll attn-hv-scroll");
    var body = el("div", "attn-hv-body");
    var left = el("div", "attn-hv-col attn-hv-left"), right = el("div", "attn-hv-col attn-hv-right");
    left.appendChild(el("div", "attn-hv-head", p.cross ? "decoder (queries)" : "query"));
    right.appendChild(el("div", "attn-hv-head", p.cross ? "encoder (keys)" : "key"));
    function addTokens(column, labels, flags, side) {
      labels.forEach(function (label, i) {
        var token = el("div", "attn-hv-tok" + (flags[i] ? " attn-special" : ""), label);
        token.setAttribute("data-side", side);
        token.setAttribute("data-i", i);
        token.title = label;
        column.appendChild(token);
      });
    }
    addTokens(left, p.q, p.qs, "q");
    addTokens(right, p.k, p.ks, "k");
    var canvas = el("canvas", "attn-hv-canvas");
    var WIDTH = Math.max(90, Math.min(240, (root.clientWidth || 600) - 220));
    canvas.width = WIDTH;
    canvas.height = Math.max(nq, nk) * ROW;
    canvas.style.width = WIDTH + "px";
    canvas.style.height = canvas.height + "px";
    var canvasBox = el("div", "attn-hv-lines");
    canvasBox.appendChild(el("div", "attn-hv-head", "\u00a0"));
    canvasBox.appendChild(canvas);
    body.appendChild(left);
    body.appendChild(canvasBox);
    body.appendChild(right);
    scroller.appendChild(body);
    live.appendChild(scroller);
    var ctx = canvas.getContext("2d");

    function draw() {
      var data = layerData(state.layer), focus = state.focus, lines = 0;
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.lineWidth = focus ? 2.5 : 1.5;
      var queries = [];
      if (focus && focus.side === "q") queries.push(focus.i);
      else for (var q = 0; q < nq; q++) queries.push(q);
      for (var h = 0; h < H; h++) {
        if (!state.active[h]) continue;
        var paths = [];
        for (var b = 0; b < 10; b++) paths.push(new Path2D());
        for (var n = 0; n < queries.length; n++) {
          var qi = queries[n];
          if (state.hide && p.qs[qi]) continue;
          var row = h * nq + qi;
          for (var e = data.start[row]; e < data.start[row + 1]; e++) {
            var kj = data.keys[e];
            if (focus && focus.side === "k" && kj !== focus.i) continue;
            if (state.hide && p.ks[kj]) continue;
            if (!state.all && data.weights[e] < p.shown_from) continue;
            var bucket = Math.min(9, Math.floor(data.weights[e] * 10)); // opacity ~ weight, as BertViz
            paths[bucket].moveTo(0, qi * ROW + ROW / 2);
            paths[bucket].lineTo(canvas.width, kj * ROW + ROW / 2);
            lines++;
          }
        }
        ctx.strokeStyle = p.colours[h];
        for (var b2 = 0; b2 < 10; b2++) {
          ctx.globalAlpha = (b2 + 1) / 10;
          ctx.stroke(paths[b2]);
        }
      }
      ctx.globalAlpha = 1;
      root.setAttribute("data-visible-lines", lines);
      root.setAttribute("data-layer", p.layers[state.layer]); // the model's layer, as labelled
      var shown = [];
      state.active.forEach(function (on, h) { if (on) shown.push(h); });
      root.setAttribute("data-heads", shown.join(","));
      var which = state.mode === "top"
        ? "heads " + shown.join(", ") + ": the " + shown.length + " with the most weight between non-special tokens (Head is " + state.fused + "; click a chip for others)"
        : (shown.length === 1 ? "head " : "heads ") + (shown.length ? shown.join(", ") : "none (click a chip)");
      var floor = state.all ? p.min_weight : Math.max(p.min_weight, p.shown_from);
      var dropped = floor > 0 ? "; weights below " + floor + " not drawn" : "";
      count.textContent = "layer " + p.layers[state.layer] + (state.layerMean ? " (Layer is the mean of layers: the head view draws one layer, choose it here)" : "") +
        " \u00b7 " + which + " \u00b7 " + lines + " lines" + dropped +
        (focus ? "; showing " + (focus.side === "q" ? "query " + p.q[focus.i] : "key " + p.k[focus.i]) + (state.locked ? " (click again to release)" : "") : "; hover a token to show only its lines");
      root.querySelectorAll(".attn-hv-tok.attn-focus").forEach(function (t) { t.classList.remove("attn-focus"); });
      if (focus) {
        var token = (focus.side === "q" ? left : right).querySelector('.attn-hv-tok[data-i="' + focus.i + '"]');
        if (token) token.classList.add("attn-focus");
      }
    }

    function tokenOf(event) {
      var target = event.target;
      return target && target.closest ? target.closest(".attn-hv-tok") : null;
    }
    [left, right].forEach(function (column) {
      column.addEventListener("mouseover", function (event) {
        var token = tokenOf(event);
        if (!token || state.locked) return;
        state.focus = { side: token.getAttribute("data-side"), i: +token.getAttribute("data-i") };
        draw();
      });
      column.addEventListener("mouseleave", function () {
        if (state.locked || !state.focus) return;
        state.focus = null;
        draw();
      });
      column.addEventListener("click", function (event) {
        var token = tokenOf(event);
        if (!token) return;
        var focus = { side: token.getAttribute("data-side"), i: +token.getAttribute("data-i") };
        if (state.locked && state.focus && state.focus.side === focus.side && state.focus.i === focus.i) {
          state.locked = false;
        } else {
          state.locked = true;
          state.focus = focus;
          if (focus.side === "q") emit(root, { view: "head", query: focus.i, token: p.q[focus.i] });
        }
        draw();
      });
    });
    var initial = views.selectionOf(group);
    if (initial) follow(initial, true);
    else if (p.shown_heads) { state.mode = "one"; showHeads(p.shown_heads); }
    else { state.fused = "not one head"; showHeads(topHeads(state.layer)); }
    root.__attnFollow = function (selection) { follow(selection, false); draw(); };
    root.__attnRedraw = draw;
    draw();
  };

  views.schedule(); // draw the views of this kind already on the page
})(window.attnViews);
