/* attn-demos heatmap (heatmap.py): a canvas of the matrix, zoom, hide special tokens, hover, click a row. */
(function (views) {
  "use strict";
  var el = views.el, lut = views.lut, level = views.level, fmt = views.fmt, decode = views.decode,
      showTip = views.showTip, hideTip = views.hideTip, emit = views.emit, checkbox = views.checkbox;
  var MAX_VIEW_HEIGHT = 620; // px of a scrolling canvas view

  function rescaleLegend(root, vmin, vmax) {
    var legend = root.querySelector(".attn-legend");
    if (!legend) return;
    var digits = +legend.getAttribute("data-decimals") || 3;
    legend.querySelectorAll(".attn-tick").forEach(function (tick) {
      var frac = +tick.getAttribute("data-frac");
      tick.textContent = (vmin + frac * (vmax - vmin)).toFixed(digits);
    });
  }

  views.builders.heatmap = function (root, live, p) {
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

  views.schedule(); // draw the views of this kind already on the page
})(window.attnViews);
