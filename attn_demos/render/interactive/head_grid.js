/* attn-demos layer × head grid (head_grid.py): one small map per head; click one to show it. */
(function (views) {
  "use strict";
  var el = views.el, lut = views.lut, level = views.level, decode = views.decode, emit = views.emit;

  views.builders.grid = function (root, live, p) {
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

  views.schedule(); // draw the views of this kind already on the page
})(window.attnViews);
