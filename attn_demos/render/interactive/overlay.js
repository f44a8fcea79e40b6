/* attn-demos overlay (overlay.py): patch attention over its photo; hover a patch, click it as the query. */
(function (views) {
  "use strict";
  var el = views.el, lut = views.lut, level = views.level, fmt = views.fmt, decode = views.decode,
      showTip = views.showTip, hideTip = views.hideTip, emit = views.emit;
  var MAX_WIDTH = 448; // css px of the drawn photo: the view's width, at most this

  views.builders.overlay = function (root, live, p) {
    var values = decode(p.v, p.decimals), colours = lut(p.stops);
    var canvas = el("canvas", "attn-ov-canvas");
    canvas.style.display = "block";
    canvas.style.cursor = root.hasAttribute("data-attn-target") ? "pointer" : "crosshair";
    var clickable = root.hasAttribute("data-attn-target"); // a server answers clicks (the app), or nothing does
    var note = el("div", "attn-note attn-ov-note",
      "hover a patch for its value" + (clickable ? "; click one to see where it looks" : ""));
    live.appendChild(canvas);
    live.appendChild(note);
    var ctx = canvas.getContext("2d");
    var photo = new Image();
    var hovered = -1;

    function box(patch) {
      // [x0, y0, x1, y1] of a patch on the canvas: each covers its share of the photo
      var r = Math.floor(patch / p.cols), c = patch % p.cols;
      return [Math.round(c * canvas.width / p.cols), Math.round(r * canvas.height / p.rows),
              Math.round((c + 1) * canvas.width / p.cols), Math.round((r + 1) * canvas.height / p.rows)];
    }

    function draw() {
      var width = Math.max(120, Math.min(MAX_WIDTH, root.clientWidth || MAX_WIDTH)); // small photos are enlarged
      canvas.width = width;
      canvas.height = Math.max(1, Math.round(width * (photo.naturalHeight || 1) / (photo.naturalWidth || 1)));
      ctx.drawImage(photo, 0, 0, canvas.width, canvas.height);
      for (var n = 0; n < values.length; n++) {
        var fraction = p.vmax > 0 && !isNaN(values[n]) ? Math.max(0, Math.min(1, values[n] / p.vmax)) : 0;
        if (fraction <= 0) continue; // no attention: the photo unchanged
        var lv = level(values[n], 0, p.vmax), b = box(n);
        ctx.fillStyle = "rgba(" + colours.bytes[3 * lv] + "," + colours.bytes[3 * lv + 1] + "," +
          colours.bytes[3 * lv + 2] + "," + (p.alpha * fraction) + ")";
        ctx.fillRect(b[0], b[1], b[2] - b[0], b[3] - b[1]);
      }
      [[p.query, "#22d3ee", 2], [hovered, "#ffffff", 1]].forEach(function (mark) {
        if (mark[0] === null || mark[0] === undefined || mark[0] < 0) return;
        var b = box(mark[0]);
        ctx.lineWidth = mark[2];
        ctx.strokeStyle = mark[1];
        ctx.strokeRect(b[0] + 1, b[1] + 1, b[2] - b[0] - 2, b[3] - b[1] - 2);
      });
      root.setAttribute("data-drawn", "1");
    }

    function patchAt(event) {
      var rect = canvas.getBoundingClientRect();
      var c = Math.floor((event.clientX - rect.left) / rect.width * p.cols);
      var r = Math.floor((event.clientY - rect.top) / rect.height * p.rows);
      return r >= 0 && r < p.rows && c >= 0 && c < p.cols ? r * p.cols + c : -1;
    }

    canvas.addEventListener("mousemove", function (event) {
      var patch = patchAt(event);
      if (patch !== hovered) { hovered = patch; draw(); }
      if (patch < 0) { hideTip(); return; }
      var r = Math.floor(patch / p.cols), c = patch % p.cols;
      showTip("patch " + r + "," + c + ": " + p.label + " " + fmt(values[patch], p.shown) +
        (patch === p.query ? " (the query)" : ""), event);
    });
    canvas.addEventListener("mouseleave", function () { hovered = -1; hideTip(); draw(); });
    canvas.addEventListener("click", function (event) {
      var patch = patchAt(event);
      if (patch < 0) return;
      emit(root, { view: "overlay", patch: patch, row: Math.floor(patch / p.cols), col: patch % p.cols });
    });
    photo.onload = draw;
    photo.src = p.src;
  };

  views.schedule(); // draw the views of this kind already on the page
})(window.attnViews);
