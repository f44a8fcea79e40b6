/* attn-demos heatmap (heatmap.py): a canvas of the matrix, zoom, hide special tokens, hover, click a row.
 * "fit" (the first zoom) makes the cells as wide as the view allows and rows tall enough for a label;
 * labels are cut with an ellipsis to their room and skipped only when a cell is thinner than a line. */
(function (views) {
  "use strict";
  var el = views.el, lut = views.lut, level = views.level, fmt = views.fmt, decode = views.decode,
      showTip = views.showTip, hideTip = views.hideTip, emit = views.emit, checkbox = views.checkbox,
      fitText = views.fitText, ink = views.ink;
  var MAX_VIEW_HEIGHT = 640; // px of a scrolling canvas view
  var CELL_WIDTH_MAX = 160; // px: "fit" widens few columns up to this
  var ROW_MAX = 32; // px: "fit" rows at most this tall
  var ROW_LABELLED = 16; // px: a row this tall carries its label ...
  var LABELLED_ROWS_UP_TO = 160; // ... and "fit" makes rows that tall up to this many rows
  var LEFT_MAX = 180, TOP_MAX = 120; // px of label room (left: queries, top: keys written upwards)

  function rescaleLegend(root, vmin, vmax, note) {
    var legend = root.querySelector(".attn-legend");
    if (legend) {
      var digits = +legend.getAttribute("data-decimals") || 3;
      legend.querySelectorAll(".attn-tick").forEach(function (tick) {
        var frac = +tick.getAttribute("data-frac");
        tick.textContent = (vmin + frac * (vmax - vmin)).toFixed(digits);
      });
    }
    var line = root.querySelector(".attn-scale-note");
    if (line && note !== null) line.textContent = note;
  }

  function clamp(value, lo, hi) { return Math.max(lo, Math.min(hi, value)); }

  views.builders.heatmap = function (root, live, p) {
    var nq = p.q.length, nk = p.k.length;
    var m = decode(p.m, p.decimals); // (nq * nk,) row-major
    var colours = lut(p.stops);
    var anySpecial = p.qs.some(Boolean) || p.ks.some(Boolean);
    var noteLine = root.querySelector(".attn-scale-note");
    var specialOut = noteLine ? noteLine.textContent : null; // heatmap.py's SCALE_NOTE, when it left special tokens out
    var state = { zoom: "fit", hide: false, specialInScale: false, selected: p.chosen, rows: [], cols: [],
                  vmin: p.vmin, vmax: p.vmax, left: 0, top: 0, cw: 1, ch: 1, rowFont: 12, colFont: 12,
                  rowStep: 1, colStep: 1, flat: false, qText: [], kText: [], ink: ink(root) };

    function masked(i, j) { return p.visible !== null && p.visible !== undefined && j >= p.visible[i]; }

    var controls = el("div", "attn-controls");
    var zoomLabel = el("label", "attn-zoom", "cells ");
    var zoom = el("select");
    ["fit"].concat([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48]).forEach(function (size) {
      var option = el("option", null, size === "fit" ? "fit the width" : size + " px");
      option.value = size;
      zoom.appendChild(option);
    });
    zoom.addEventListener("change", function () { state.zoom = zoom.value === "fit" ? "fit" : +zoom.value; layout(); });
    zoomLabel.appendChild(zoom);
    controls.appendChild(zoomLabel);
    if (anySpecial) {
      controls.appendChild(checkbox("hide special tokens", function (on) { state.hide = on; layout(); }));
      if (!p.fixed) {
        controls.appendChild(checkbox("special tokens in the colour scale", function (on) { state.specialInScale = on; layout(); }));
      }
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

    function fitScale() {
      // the shown cells, without special tokens' rows and columns unless asked (all cells if that leaves none)
      if (p.fixed) return { vmin: p.vmin, vmax: p.vmax, note: null };
      var leave = !state.specialInScale && !state.hide;
      var rows = state.rows.filter(function (i) { return !(leave && p.qs[i]); });
      var cols = state.cols.filter(function (j) { return !(leave && p.ks[j]); });
      var out = leave && (rows.length < state.rows.length || cols.length < state.cols.length) && rows.length && cols.length;
      if (!rows.length || !cols.length) { rows = state.rows; cols = state.cols; }
      var lo = 0, hi = -Infinity;
      rows.forEach(function (i) {
        cols.forEach(function (j) {
          var v = m[i * nk + j];
          if (!isNaN(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
        });
      });
      if (hi === -Infinity) { lo = p.vmin; hi = p.vmax; }
      var note = out ? specialOut : state.hide ? "colour scale fitted to the cells shown" : "colour scale over every cell";
      return { vmin: lo, vmax: hi > lo ? hi : lo + 1, note: note };
    }

    function layout() {
      state.ink = ink(root);
      state.rows = visible(p.qs);
      state.cols = visible(p.ks);
      var scale = fitScale();
      state.vmin = scale.vmin;
      state.vmax = scale.vmax;
      rescaleLegend(root, state.vmin, state.vmax, scale.note);
      var room = scroller.clientWidth || root.clientWidth || 800;
      var nr = Math.max(1, state.rows.length), nc = Math.max(1, state.cols.length);
      // row labels' room first (at the largest font a row may get), then the cells in what is left
      ctx.font = "13px sans-serif";
      var widestRow = 0;
      state.rows.forEach(function (i) { widestRow = Math.max(widestRow, ctx.measureText(p.q[i]).width); });
      state.left = Math.ceil(Math.min(LEFT_MAX, widestRow + 22, Math.max(60, room * 0.4)));
      if (state.zoom === "fit") {
        state.cw = clamp(Math.floor((room - state.left - 4) / nc), 2, CELL_WIDTH_MAX);
        state.ch = clamp(state.cw, 2, ROW_MAX);
        if (state.ch > ROW_LABELLED && nr * state.ch > MAX_VIEW_HEIGHT) state.ch = Math.max(ROW_LABELLED, Math.floor(MAX_VIEW_HEIGHT / nr));
        if (state.ch < ROW_LABELLED && nr <= LABELLED_ROWS_UP_TO) state.ch = ROW_LABELLED;
      } else {
        state.cw = state.ch = state.zoom;
      }
      var cw = state.cw, ch = state.ch;
      state.rowFont = clamp(ch - 3, 9, 13);
      state.rowStep = Math.max(1, Math.ceil((state.rowFont + 2) / ch));
      // keys: written across a cell when it is wide enough for most of them, else upwards
      function widestKey(font) {
        ctx.font = font + "px sans-serif";
        var widest = 0;
        state.cols.forEach(function (j) { widest = Math.max(widest, ctx.measureText(p.k[j]).width); });
        return widest;
      }
      state.flat = cw >= Math.min(widestKey(12) + 8, 64);
      state.colFont = state.flat ? 12 : clamp(cw - 3, 9, 13);
      state.colStep = state.flat ? 1 : Math.max(1, Math.ceil((state.colFont + 2) / cw));
      state.top = state.flat ? 22 : Math.ceil(Math.min(TOP_MAX, widestKey(state.colFont) + 12));
      ctx.font = state.colFont + "px sans-serif";
      state.kText = p.k.map(function (label) { return fitText(ctx, label, state.flat ? cw - 6 : state.top - 10); });
      ctx.font = state.rowFont + "px sans-serif";
      state.qText = p.q.map(function (label) { return fitText(ctx, label, state.left - 22); });
      var fullWidth = state.left + state.cols.length * cw, fullHeight = state.top + state.rows.length * ch;
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
      root.setAttribute("data-cell-width", cw);
      root.setAttribute("data-cell-height", ch);
      root.setAttribute("data-vmax", state.vmax);
      var hidden = (nq - state.rows.length) + " rows and " + (nk - state.cols.length) + " columns of special tokens hidden";
      var chosen = state.selected !== null && state.selected !== undefined;
      note.textContent = (state.hide ? hidden + "; weights not renormalised. " : "") +
        (chosen ? "\u25b6 selected query: " + p.q[state.selected] + (state.rows.indexOf(state.selected) < 0 ? " (hidden)" : "")
                : "click a row to select its query");
      draw();
    }

    function draw() {
      var cw = state.cw, ch = state.ch, L = state.left, T = state.top, W = canvas.width, H = canvas.height;
      var sx = scroller.scrollLeft, sy = scroller.scrollTop;
      var rows = state.rows, cols = state.cols, tone = state.ink;
      ctx.clearRect(0, 0, W, H); // transparent: the page's own background shows (light or dark)
      // the matrix, pixel by pixel within the window; masked cells hatched in the text colour
      var mw = W - L, mh = H - T;
      if (mw > 0 && mh > 0) {
        var image = ctx.createImageData(mw, mh), data = image.data;
        var colIndex = new Int32Array(mw);
        for (var x = 0; x < mw; x++) {
          var cc = Math.floor((sx + x) / cw);
          colIndex[x] = cc < cols.length ? cols[cc] : -1;
        }
        for (var y = 0; y < mh; y++) {
          var r = Math.floor((sy + y) / ch);
          var i = r < rows.length ? rows[r] : -1;
          var offset = y * mw * 4;
          for (var x2 = 0; x2 < mw; x2++, offset += 4) {
            var j = colIndex[x2];
            if (i < 0 || j < 0) { data[offset + 3] = 0; continue; }
            if (masked(i, j)) {
              var stripe = ((sx + x2 + sy + y) % 6) < 2;
              data[offset] = tone.rgb[0]; data[offset + 1] = tone.rgb[1]; data[offset + 2] = tone.rgb[2];
              data[offset + 3] = stripe ? 90 : 28;
              continue;
            }
            var lv = level(m[i * nk + j], state.vmin, state.vmax);
            if (lv < 0) { data[offset] = data[offset + 1] = data[offset + 2] = 200; }
            else { data[offset] = colours.bytes[lv * 3]; data[offset + 1] = colours.bytes[lv * 3 + 1]; data[offset + 2] = colours.bytes[lv * 3 + 2]; }
            data[offset + 3] = 255;
          }
        }
        ctx.putImageData(image, L, T);
      }
      var r0 = Math.floor(sy / ch), r1 = Math.min(rows.length, Math.ceil((sy + mh) / ch));
      var c0 = Math.floor(sx / cw), c1 = Math.min(cols.length, Math.ceil((sx + mw) / cw));
      ctx.save();
      ctx.beginPath();
      ctx.rect(L, T, mw, mh);
      ctx.clip();
      if (p.annotate && Math.min(cw, ch) >= 24) { // small matrices: each cell carries its number
        ctx.font = Math.min(13, Math.floor(Math.min(cw, ch) / 3)) + "px sans-serif";
        ctx.textAlign = "center";
        ctx.textBaseline = "middle";
        for (var ra = r0; ra < r1; ra++) {
          for (var ca = c0; ca < c1; ca++) {
            if (masked(rows[ra], cols[ca])) continue;
            var value = m[rows[ra] * nk + cols[ca]];
            ctx.fillStyle = level(value, state.vmin, state.vmax) > 150 ? "#111" : "#fff";
            ctx.fillText(fmt(value, p.shown), L + ca * cw - sx + cw / 2, T + ra * ch - sy + ch / 2);
          }
        }
      }
      var selectedRow = rows.indexOf(state.selected);
      if (selectedRow >= 0) {
        ctx.lineWidth = ch >= 6 ? 2 : 1;
        ctx.strokeStyle = "#ff1f5a";
        ctx.strokeRect(L - sx + 1, T + selectedRow * ch - sy + 0.5, cols.length * cw - 2, Math.max(1, ch - 1));
      }
      ctx.restore();
      // labels: left (queries) and top (keys), every step-th one where cells are thinner than a line
      ctx.textBaseline = "middle";
      ctx.save();
      ctx.beginPath();
      ctx.rect(0, T, L, H - T);
      ctx.clip();
      ctx.textAlign = "right";
      for (var rl = r0 - (r0 % state.rowStep); rl < r1; rl += state.rowStep) {
        var qi = rows[rl], yy = T + rl * ch - sy + ch / 2;
        var chosen = qi === state.selected;
        ctx.fillStyle = p.qs[qi] ? tone.faint : tone.css;
        ctx.font = (chosen ? "bold " : "") + state.rowFont + "px sans-serif";
        ctx.fillText(state.qText[qi], L - 6, yy);
        if (chosen) { ctx.fillStyle = "#ff1f5a"; ctx.fillText("\u25b6", 12, yy); }
      }
      for (var mk = 0; mk < p.marked.length; mk++) {
        var mr = rows.indexOf(p.marked[mk]);
        if (mr < 0 || mr < r0 || mr >= r1) continue;
        ctx.fillStyle = "#f59e0b";
        ctx.beginPath();
        ctx.arc(4, T + mr * ch - sy + ch / 2, 3, 0, 2 * Math.PI);
        ctx.fill();
      }
      ctx.restore();
      ctx.save();
      ctx.beginPath();
      ctx.rect(L, 0, W - L, T);
      ctx.clip();
      ctx.font = state.colFont + "px sans-serif";
      for (var cl = c0 - (c0 % state.colStep); cl < c1; cl += state.colStep) {
        var kj = cols[cl];
        ctx.fillStyle = p.ks[kj] ? tone.faint : tone.css;
        if (state.flat) {
          ctx.textAlign = "center";
          ctx.fillText(state.kText[kj], L + cl * cw - sx + cw / 2, T / 2 + 2);
          continue;
        }
        ctx.save();
        ctx.translate(L + cl * cw - sx + cw / 2, T - 5);
        ctx.rotate(-Math.PI / 2);
        ctx.textAlign = "left";
        ctx.fillText(state.kText[kj], 0, 0);
        ctx.restore();
      }
      ctx.restore();
    }

    function cellAt(event) {
      var rect = canvas.getBoundingClientRect();
      var x = event.clientX - rect.left, y = event.clientY - rect.top;
      var r = y >= state.top ? Math.floor((scroller.scrollTop + y - state.top) / state.ch) : -1;
      var cc = x >= state.left ? Math.floor((scroller.scrollLeft + x - state.left) / state.cw) : -1;
      return {
        i: r >= 0 && r < state.rows.length ? state.rows[r] : -1,
        j: cc >= 0 && cc < state.cols.length ? state.cols[cc] : -1,
      };
    }

    canvas.addEventListener("mousemove", function (event) {
      var at = cellAt(event);
      if (at.i < 0) {
        if (at.j >= 0) showTip(p.k[at.j], event); else hideTip();
        return;
      }
      if (at.j < 0) { showTip(p.q[at.i] + " (click to select)", event); return; }
      var shown = masked(at.i, at.j) ? "masked (cannot attend to a later token)" : fmt(m[at.i * nk + at.j], p.shown);
      showTip(p.q[at.i] + " \u2192 " + p.k[at.j] + ": " + shown, event);
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
    root.__attnRedraw = layout;
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

  views.schedule(); // draw the views of this kind already on the page
})(window.attnViews);
