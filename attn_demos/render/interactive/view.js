/* attn-demos interactive views: one script for every view of attn_demos.render.interactive.
 * Each view is a <div data-attn-view="kind" data-attn-key data-attn-payload="JSON">; this script
 * builds it when it appears or when its key changes (a MutationObserver watches the page, so
 * views set later by Gradio, in any tab, are built too). Labels are written with textContent or
 * canvas fillText only. Selections: a bubbling "attn-select" CustomEvent on the view, and, where
 * the view names data-attn-target, the JSON of the selection written into that element's
 * textarea/input followed by an "input" event (Gradio then fires the textbox's .change). */
(function () {
  "use strict";
  if (window.attnViews) {
    window.attnViews.scan();
    return;
  }
  var builders = {};
  var clicks = 0;
  var MAX_VIEW_HEIGHT = 620; // px of a scrolling canvas view
  var tooltip = null;

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function lut(stops) {
    // 256 colours interpolated between the stops, as "rgb()" strings and as bytes
    var css = [], bytes = new Uint8Array(256 * 3);
    for (var i = 0; i < 256; i++) {
      var pos = (i / 255) * (stops.length - 1);
      var lo = Math.min(Math.floor(pos), stops.length - 2), w = pos - lo;
      for (var c = 0; c < 3; c++) bytes[i * 3 + c] = Math.round(stops[lo][c] * (1 - w) + stops[lo + 1][c] * w);
      css.push("rgb(" + bytes[i * 3] + "," + bytes[i * 3 + 1] + "," + bytes[i * 3 + 2] + ")");
    }
    return { css: css, bytes: bytes };
  }

  function level(value, vmin, vmax) {
    // value -> 0..255 on the scale; -1 for NaN
    if (value === null || isNaN(value)) return -1;
    var f = vmax > vmin ? (value - vmin) / (vmax - vmin) : 0;
    return Math.max(0, Math.min(255, Math.round(f * 255)));
  }

  function fmt(value, digits) {
    if (value === null || value === undefined) return "\u2212\u221e"; // null = -inf or NaN
    if (isNaN(value)) return "NaN";
    return value.toFixed(digits);
  }

  function decode(ints, decimals) {
    var scale = Math.pow(10, decimals), out = new Float64Array(ints.length);
    for (var i = 0; i < ints.length; i++) out[i] = ints[i] === null ? NaN : ints[i] / scale;
    return out;
  }

  function showTip(text, event) {
    if (!tooltip) {
      tooltip = el("div", "attn-tooltip");
      document.body.appendChild(tooltip);
    }
    tooltip.textContent = text;
    tooltip.style.display = "block";
    var x = event.clientX + 14, y = event.clientY + 14;
    var width = tooltip.offsetWidth, height = tooltip.offsetHeight;
    if (x + width > window.innerWidth - 4) x = Math.max(4, event.clientX - width - 10);
    if (y + height > window.innerHeight - 4) y = Math.max(4, event.clientY - height - 10);
    tooltip.style.left = x + "px";
    tooltip.style.top = y + "px";
  }

  function hideTip() {
    if (tooltip) tooltip.style.display = "none";
  }

  function emit(root, detail) {
    root.dispatchEvent(new CustomEvent("attn-select", { bubbles: true, detail: detail }));
    var target = root.getAttribute("data-attn-target");
    if (!target) return;
    var box = document.getElementById(target);
    var field = box && (box.matches("textarea, input") ? box : box.querySelector("textarea, input"));
    if (!field) {
      console.warn("attn-demos: no textbox with elem_id " + target + " for this view's selection");
      return;
    }
    var message = Object.assign({}, detail, { n: ++clicks, t: Date.now() }); // always a new value
    field.value = JSON.stringify(message);
    field.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function checkbox(text, onchange) {
    var label = el("label", "attn-check");
    var input = el("input");
    input.type = "checkbox";
    input.addEventListener("change", function () { onchange(input.checked); });
    label.appendChild(input);
    label.appendChild(document.createTextNode(" " + text));
    return label;
  }

  function rescaleLegend(root, vmin, vmax) {
    var legend = root.querySelector(".attn-legend");
    if (!legend) return;
    var digits = +legend.getAttribute("data-decimals") || 3;
    legend.querySelectorAll(".attn-tick").forEach(function (tick) {
      var frac = +tick.getAttribute("data-frac");
      tick.textContent = (vmin + frac * (vmax - vmin)).toFixed(digits);
    });
  }

  /* ---------------------------------------------------------------- heatmap */
  builders.heatmap = function (root, live, p) {
    var nq = p.q.length, nk = p.k.length;
    var m = decode(p.m, p.decimals); // (nq * nk,) row-major
    var colours = lut(p.stops);
    var anySpecial = p.qs.some(Boolean) || p.ks.some(Boolean);
    var state = { cell: p.cell, hide: false, selected: p.chosen, rows: [], cols: [], vmin: p.vmin, vmax: p.vmax,
                  left: 0, top: 0, font: 12, step: 1 };

    var controls = el("div", "attn-controls");
    var zoomLabel = el("label", "attn-zoom", "cell ");
    var zoom = el("select");
    [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48].concat([p.cell]).sort(function (a, b) { return a - b; })
      .filter(function (v, i, all) { return all.indexOf(v) === i; })
      .forEach(function (size) {
        var option = el("option", null, size + " px");
        option.value = size;
        if (size === p.cell) option.selected = true;
        zoom.appendChild(option);
      });
    zoom.addEventListener("change", function () { state.cell = +zoom.value; layout(); });
    zoomLabel.appendChild(zoom);
    controls.appendChild(zoomLabel);
    if (anySpecial) {
      controls.appendChild(checkbox("hide special tokens", function (on) { state.hide = on; layout(); }));
    }
    var note = el("span", "attn-note");
    controls.appendChild(note);
    live.appendChild(controls);

    var scroller = el("div", "attn-scroll");
    var canvas = el("canvas", "attn-hm-canvas");
    var spacer = el("div", "attn-spacer");
    scroller.appendChild(canvas);
    scroller.appendChild(spacer);
    live.appendChild(scroller);
    var ctx = canvas.getContext("2d");

    function visible(flags) {
      var out = [];
      for (var i = 0; i < flags.length; i++) if (!(state.hide && flags[i])) out.push(i);
      return out;
    }

    function layout() {
      state.rows = visible(p.qs);
      state.cols = visible(p.ks);
      if (state.hide) {
        var lo = 0, hi = -Infinity;
        state.rows.forEach(function (i) {
          state.cols.forEach(function (j) {
            var v = m[i * nk + j];
            if (!isNaN(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
          });
        });
        state.vmin = lo;
        state.vmax = hi > lo ? hi : lo + 1;
      } else {
        state.vmin = p.vmin;
        state.vmax = p.vmax;
      }
      rescaleLegend(root, state.vmin, state.vmax);
      var c = state.cell;
      state.font = Math.max(9, Math.min(13, c - 2));
      state.step = Math.max(1, Math.ceil((state.font + 3) / c));
      ctx.font = state.font + "px sans-serif";
      var widest = function (labels, indices) {
        var w = 0;
        for (var n = 0; n < indices.length; n += state.step) w = Math.max(w, ctx.measureText(labels[indices[n]]).width);
        return w;
      };
      state.left = Math.ceil(Math.min(180, widest(p.q, state.rows) + 22));
      state.top = Math.ceil(Math.min(140, widest(p.k, state.cols) + 10));
      var fullWidth = state.left + state.cols.length * c, fullHeight = state.top + state.rows.length * c;
      var room = scroller.clientWidth || root.clientWidth || 800;
      var width = Math.max(60, Math.min(fullWidth, room));
      var height = Math.min(fullHeight, MAX_VIEW_HEIGHT);
      canvas.width = width;
      canvas.height = height;
      canvas.style.width = width + "px";
      canvas.style.height = height + "px";
      spacer.style.width = fullWidth + "px";
      spacer.style.height = Math.max(0, fullHeight - height) + "px";
      scroller.style.maxHeight = (MAX_VIEW_HEIGHT + 20) + "px";
      root.setAttribute("data-shown-rows", state.rows.length);
      root.setAttribute("data-shown-cols", state.cols.length);
      var hidden = (nq - state.rows.length) + " rows and " + (nk - state.cols.length) + " columns of special tokens hidden";
      note.textContent = (state.hide ? hidden + "; weights not renormalised, colours refitted. " : "") +
        (state.selected !== null && state.selected !== undefined ? "\u25b6 selected query: " + p.q[state.selected] : "click a row to select its query");
      draw();
    }

    function draw() {
      var c = state.cell, L = state.left, T = state.top, W = canvas.width, H = canvas.height;
      var sx = scroller.scrollLeft, sy = scroller.scrollTop;
      var rows = state.rows, cols = state.cols;
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(0, 0, W, H);
      // the matrix, pixel by pixel within the window
      var mw = W - L, mh = H - T;
      if (mw > 0 && mh > 0) {
        var image = ctx.createImageData(mw, mh), data = image.data;
        var colIndex = new Int32Array(mw);
        for (var x = 0; x < mw; x++) {
          var cc = Math.floor((sx + x) / c);
          colIndex[x] = cc < cols.length ? cols[cc] : -1;
        }
        for (var y = 0; y < mh; y++) {
          var r = Math.floor((sy + y) / c);
          var i = r < rows.length ? rows[r] : -1;
          var offset = y * mw * 4;
          for (var x2 = 0; x2 < mw; x2++, offset += 4) {
            var j = colIndex[x2];
            if (i < 0 || j < 0) { data[offset] = data[offset + 1] = data[offset + 2] = 255; data[offset + 3] = 255; continue; }
            var lv = level(m[i * nk + j], state.vmin, state.vmax);
            if (lv < 0) { data[offset] = data[offset + 1] = data[offset + 2] = 200; }
            else { data[offset] = colours.bytes[lv * 3]; data[offset + 1] = colours.bytes[lv * 3 + 1]; data[offset + 2] = colours.bytes[lv * 3 + 2]; }
            data[offset + 3] = 255;
          }
        }
        ctx.putImageData(image, L, T);
      }
      var r0 = Math.floor(sy / c), r1 = Math.min(rows.length, Math.ceil((sy + mh) / c));
      var c0 = Math.floor(sx / c), c1 = Math.min(cols.length, Math.ceil((sx + mw) / c));
      ctx.save();
      ctx.beginPath();
      ctx.rect(L, T, mw, mh);
      ctx.clip();
      if (p.annotate && c >= 24) { // small matrices: each cell carries its number
        ctx.font = Math.min(13, Math.floor(c / 3)) + "px sans-serif";
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        for (var ra = r0; ra < r1; ra++) {
          for (var ca = c0; ca < c1; ca++) {
            var value = m[rows[ra] * nk + cols[ca]];
            ctx.fillStyle = level(value, state.vmin, state.vmax) > 150 ? "#111" : "#fff";
            ctx.fillText(fmt(value, p.shown), L + ca * c - sx + c / 2, T + ra * c - sy + c / 2);
          }
        }
      }
      var selectedRow = rows.indexOf(state.selected);
      if (selectedRow >= 0) {
        ctx.lineWidth = c >= 6 ? 2 : 1;
        ctx.strokeStyle = "#ff1f5a";
        ctx.strokeRect(L - sx + 1, T + selectedRow * c - sy + 0.5, cols.length * c - 2, Math.max(1, c - 1));
      }
      ctx.restore();
      // labels: left (queries) and top (keys), every state.step-th one
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(0, 0, L, H);
      ctx.fillRect(0, 0, W, T);
      ctx.font = state.font + "px sans-serif";
      ctx.textBaseline = "middle";
      ctx.save();
      ctx.beginPath();
      ctx.rect(0, T, L, H - T);
      ctx.clip();
      ctx.textAlign = "right";
      for (var rl = r0 - (r0 % state.step); rl < r1; rl += state.step) {
        var qi = rows[rl], yy = T + rl * c - sy + c / 2;
        var chosen = qi === state.selected;
        ctx.fillStyle = p.qs[qi] ? "#8a8a8a" : "#111111";
        ctx.font = (chosen ? "bold " : "") + state.font + "px sans-serif";
        ctx.fillText(p.q[qi], L - 6, yy);
        if (chosen) { ctx.fillStyle = "#ff1f5a"; ctx.fillText("\u25b6", 12, yy); }
      }
      for (var mk = 0; mk < p.marked.length; mk++) {
        var mr = rows.indexOf(p.marked[mk]);
        if (mr < 0 || mr < r0 || mr >= r1) continue;
        ctx.fillStyle = "#f59e0b";
        ctx.beginPath();
        ctx.arc(4, T + mr * c - sy + c / 2, 3, 0, 2 * Math.PI);
        ctx.fill();
      }
      ctx.restore();
      ctx.save();
      ctx.beginPath();
      ctx.rect(L, 0, W - L, T);
      ctx.clip();
      ctx.font = state.font + "px sans-serif";
      ctx.textAlign = "left";
      for (var cl = c0 - (c0 % state.step); cl < c1; cl += state.step) {
        var kj = cols[cl];
        ctx.save();
        ctx.translate(L + cl * c - sx + c / 2, T - 5);
        ctx.rotate(-Math.PI / 2);
        ctx.fillStyle = p.ks[kj] ? "#8a8a8a" : "#111111";
        ctx.fillText(p.k[kj], 0, 0);
        ctx.restore();
      }
      ctx.restore();
    }

    function cellAt(event) {
      var rect = canvas.getBoundingClientRect();
      var x = event.clientX - rect.left, y = event.clientY - rect.top, c = state.cell;
      var r = y >= state.top ? Math.floor((scroller.scrollTop + y - state.top) / c) : -1;
      var cc = x >= state.left ? Math.floor((scroller.scrollLeft + x - state.left) / c) : -1;
      return {
        i: r >= 0 && r < state.rows.length ? state.rows[r] : -1,
        j: cc >= 0 && cc < state.cols.length ? state.cols[cc] : -1,
      };
    }

    canvas.addEventListener("mousemove", function (event) {
      var at = cellAt(event);
      if (at.i < 0) { hideTip(); return; }
      if (at.j < 0) { showTip(p.q[at.i] + " (click to select)", event); return; }
      showTip(p.q[at.i] + " \u2192 " + p.k[at.j] + ": " + fmt(m[at.i * nk + at.j], p.shown), event);
    });
    canvas.addEventListener("mouseleave", hideTip);
    canvas.addEventListener("click", function (event) {
      var at = cellAt(event);
      if (at.i < 0) return;
      state.selected = at.i;
      layout();
      emit(root, { view: "heatmap", query: at.i, token: p.q[at.i] });
    });
    var pending = false;
    scroller.addEventListener("scroll", function () {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () { pending = false; draw(); });
    });
    watchWidth(root, scroller, layout);
    layout();
  };

  function watchWidth(root, box, relayout) {
    // re-lay out when the view's width changes (a tab shown, a window resized)
    if (!window.ResizeObserver) return;
    var last = box.clientWidth;
    var observer = new ResizeObserver(function () {
      if (!root.isConnected) { observer.disconnect(); return; }
      if (box.clientWidth !== last) { last = box.clientWidth; relayout(); }
    });
    observer.observe(box);
  }

  /* -------------------------------------------------------------- head view */
  builders.head = function (root, live, p) {
    var nq = p.q.length, nk = p.k.length, H = p.heads, ROW = 20;
    var scale = Math.pow(10, p.decimals);
    var cache = {};
    var state = { layer: p.layer, active: p.colours.map(function () { return true; }), focus: null, locked: false, hide: false };

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

    var controls = el("div", "attn-controls");
    var layerLabel = el("label", null, "layer ");
    var select = el("select", "attn-layer");
    p.layers.forEach(function (name, l) {
      var option = el("option", null, name);
      option.value = l;
      if (l === p.layer) option.selected = true;
      select.appendChild(option);
    });
    select.addEventListener("change", function () { state.layer = +select.value; draw(); });
    layerLabel.appendChild(select);
    controls.appendChild(layerLabel);
    var chips = el("span", "attn-chips");
    chips.appendChild(el("span", "attn-note", "heads "));
    p.colours.forEach(function (colour, h) {
      var chip = el("button", "attn-chip", String(h));
      chip.type = "button";
      chip.style.background = colour;
      chip.title = "head " + h + ": click to hide or show";
      chip.setAttribute("data-head", h);
      chip.addEventListener("click", function () {
        state.active[h] = !state.active[h];
        chip.classList.toggle("attn-off", !state.active[h]);
        draw();
      });
      chips.appendChild(chip);
    });
    [["all", true], ["none", false]].forEach(function (pair) {
      var button = el("button", "attn-link", pair[0]);
      button.type = "button";
      button.addEventListener("click", function () {
        state.active = state.active.map(function () { return pair[1]; });
        chips.querySelectorAll(".attn-chip").forEach(function (chip) { chip.classList.toggle("attn-off", !pair[1]); });
        draw();
      });
      chips.appendChild(button);
    });
    controls.appendChild(chips);
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
            var bucket = Math.min(9, Math.floor(Math.sqrt(data.weights[e]) * 10)); // opacity ~ √weight
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
      var dropped = p.min_weight > 0 ? "; weights below " + p.min_weight + " are not drawn" : "";
      count.textContent = lines + " lines (layer " + p.layers[state.layer] + ")" + dropped +
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
    draw();
  };

  /* -------------------------------------------------------- layer × head grid */
  builders.grid = function (root, live, p) {
    var L = p.layers.length, H = p.heads, rows = p.rows, cols = p.cols;
    var values = decode(p.t, p.decimals), colours = lut(p.stops);
    var room = (root.clientWidth || 640) - 50;
    var size = Math.max(14, Math.min(48, Math.floor(room / H) - 6));
    var height = Math.max(8, Math.round(size * rows / cols));
    var grid = el("div", "attn-grid");
    grid.style.gridTemplateColumns = "auto repeat(" + H + ", " + (size + 4) + "px)";
    grid.appendChild(el("div", "attn-grid-corner", "layer \\ head"));
    for (var h = 0; h < H; h++) grid.appendChild(el("div", "attn-grid-head", String(h)));
    var shown = p.shown;
    for (var l = 0; l < L; l++) {
      grid.appendChild(el("div", "attn-grid-layer", p.layers[l]));
      for (var h2 = 0; h2 < H; h2++) {
        var cell = el("button", "attn-cell");
        cell.type = "button";
        cell.setAttribute("data-layer", l);
        cell.setAttribute("data-head", h2);
        cell.title = "layer " + p.layers[l] + ", head " + h2;
        cell.setAttribute("aria-label", cell.title);
        if (shown && shown[0] === l && shown[1] === h2) cell.classList.add("attn-shown");
        var canvas = el("canvas");
        canvas.width = cols;
        canvas.height = rows;
        canvas.style.width = size + "px";
        canvas.style.height = height + "px";
        var ctx = canvas.getContext("2d"), image = ctx.createImageData(cols, rows), data = image.data;
        var base = (l * H + h2) * rows * cols;
        for (var n = 0; n < rows * cols; n++) {
          var lv = level(values[base + n], 0, 1);
          if (lv < 0) lv = 0;
          data[4 * n] = colours.bytes[3 * lv];
          data[4 * n + 1] = colours.bytes[3 * lv + 1];
          data[4 * n + 2] = colours.bytes[3 * lv + 2];
          data[4 * n + 3] = 255;
        }
        ctx.putImageData(image, 0, 0);
        cell.appendChild(canvas);
        grid.appendChild(cell);
      }
    }
    grid.addEventListener("click", function (event) {
      var cell = event.target.closest ? event.target.closest(".attn-cell") : null;
      if (!cell) return;
      grid.querySelectorAll(".attn-cell.attn-shown").forEach(function (c) { c.classList.remove("attn-shown"); });
      cell.classList.add("attn-shown");
      emit(root, { view: "grid", layer: +cell.getAttribute("data-layer"), head: +cell.getAttribute("data-head") });
    });
    var scroller = el("div", "attn-scroll attn-grid-scroll");
    scroller.appendChild(grid);
    live.appendChild(scroller);
  };

  /* ------------------------------------------------------------ neuron view */
  builders.neuron = function (root, live, p) {
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

    var head = el("div", "attn-nv-query");
    head.appendChild(el("span", "attn-nv-label", "query \u201c" + p.query + "\u201d \u00b7 layer " + p.layer + " \u00b7 head " + p.head +
      " \u00b7 d = " + d + " \u00b7 scale = " + fmt(p.scale, 6) + (p.softcap ? " \u00b7 softcap = " + p.softcap : "") + "   q: "));
    head.appendChild(strip(q, 0, vcol, p.vmax, "q", -1));
    live.appendChild(head);
    var detail = el("div", "attn-nv-detail");
    live.appendChild(detail);

    var columns = [["key", null], ["k", null], ["q\u2218k (products)", null], ["\u03a3 q\u00b7k", "sums"],
                   ["\u00d7 scale", "scaled"], ["+ bias", "bias"], ["+ mask", "mask"], ["= logit", "logits"],
                   ["softmax", "softmax"], [p.reference_label, "reference"], ["|\u0394|", "delta"]];
    columns = columns.filter(function (c) { return c[1] === null || c[1] === "scaled" || c[1] === "delta" || p[c[1]] !== null; });
    var scroller = el("div", "attn-scroll attn-nv-scroll");
    var table = el("table", "attn-nv-table");
    var thead = el("tr");
    columns.forEach(function (c) { thead.appendChild(el("th", null, c[0])); });
    table.appendChild(thead);
    function value(name, j) {
      if (name === "scaled") return p.sums[j] === null ? null : p.sums[j] * p.scale;
      if (name === "delta") return p.softmax[j] === null || p.reference[j] === null ? null : Math.abs(p.softmax[j] - p.reference[j]);
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
          var digits = c[1] === "softmax" || c[1] === "reference" ? 6 : 4;
          td = el("td", "attn-num attn-" + c[1], c[1] === "delta" ? (v === null ? "" : v.toExponential(1)) : fmt(v, digits));
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
        "3. softmax over the " + nk + " keys = " + fmt(p.softmax[j], 6) + "   " + p.reference_label + ": " + fmt(p.reference[j], 6) +
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

  /* ------------------------------------------------------------------ build */
  function build(root) {
    var key = root.getAttribute("data-attn-key");
    var existing = root.querySelector(":scope > .attn-live");
    if (root.__attnKey === key && existing) return;
    var builder = builders[root.getAttribute("data-attn-view")];
    if (!builder) return;
    if (existing) existing.remove();
    root.__attnKey = key;
    var live = el("div", "attn-live");
    root.appendChild(live);
    try {
      builder(root, live, JSON.parse(root.getAttribute("data-attn-payload")));
      root.classList.add("attn-ready");
    } catch (error) {
      live.textContent = "This view could not be drawn: " + error;
      console.error("attn-demos view", error);
    }
  }

  function scan() {
    document.querySelectorAll("[data-attn-view]").forEach(build);
  }

  var scheduled = false;
  function schedule() {
    if (scheduled) return;
    scheduled = true;
    setTimeout(function () { scheduled = false; scan(); }, 0);
  }

  window.attnViews = { scan: scan, builders: builders, emit: emit };
  new MutationObserver(schedule).observe(document.documentElement, {
    childList: true, subtree: true, attributes: true, attributeFilter: ["data-attn-key"],
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scan);
  else scan();
})();
