/* attn-demos interactive views, shared part (load it first, then one script per view: heatmap.js,
 * head_view.js, head_grid.js, neuron.js; page.py's view_scripts() gives them in that order).
 * Each view is a <div data-attn-view="kind" data-attn-key data-attn-payload="JSON">; this script
 * builds it, with the builder its view's script registered in window.attnViews.builders, when it
 * appears or when its key changes (a MutationObserver watches the page, so views set later by
 * Gradio, in any tab, are built too). Labels are written with textContent or canvas fillText
 * only. Selections: a bubbling "attn-select" CustomEvent on the view, and, where the view names
 * data-attn-target, the JSON of the selection written into that element's textarea/input
 * followed by an "input" event (Gradio then fires the textbox's .change).
 * One selection (selection.py: a hidden view of kind "selection") is followed by every view of
 * its data-attn-group that set root.__attnFollow(selection). Canvases draw on a transparent
 * background in the page's own text colour (ink()), so they follow a light or dark theme. */
(function () {
  "use strict";
  if (window.attnViews) {
    window.attnViews.scan();
    return;
  }
  var builders = {};
  var clicks = 0;
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

  function checkbox(text, onchange, checked) {
    var label = el("label", "attn-check");
    var input = el("input");
    input.type = "checkbox";
    input.checked = !!checked;
    input.addEventListener("change", function () { onchange(input.checked); });
    label.appendChild(input);
    label.appendChild(document.createTextNode(" " + text));
    return label;
  }

  function fitText(ctx, text, room) {
    // text as it fits `room` pixels in ctx's font: cut with an ellipsis when it does not
    if (ctx.measureText(text).width <= room) return text;
    var lo = 0, hi = text.length;
    while (lo < hi) {
      var mid = (lo + hi + 1) >> 1;
      if (ctx.measureText(text.slice(0, mid) + "\u2026").width <= room) lo = mid; else hi = mid - 1;
    }
    return lo > 0 ? text.slice(0, lo) + "\u2026" : "\u2026";
  }

  function ink(root) {
    // the page's text colour where the view sits: {css, rgb: [r, g, b], dark: light text on a dark page}
    var css = window.getComputedStyle(root).color || "rgb(17, 17, 17)";
    var rgb = (css.match(/[\d.]+/g) || [17, 17, 17]).slice(0, 3).map(Number);
    var light = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255 > 0.5;
    return { css: css, rgb: rgb, dark: light, faint: "rgba(" + rgb.join(",") + ",0.55)" };
  }

  function selectionOf(group) {
    // the payload of the selection that views of `group` follow, or null
    if (!group) return null;
    var found = null;
    document.querySelectorAll('[data-attn-view="selection"]').forEach(function (node) {
      if (node.getAttribute("data-attn-group") === group) found = node;
    });
    return found ? JSON.parse(found.getAttribute("data-attn-payload")) : null;
  }

  builders.selection = function (root, live, p) {
    document.querySelectorAll("[data-attn-group]").forEach(function (view) {
      if (view !== root && view.getAttribute("data-attn-group") === p.group && view.__attnFollow) view.__attnFollow(p);
    });
  };

  function redrawAll() {
    // the theme changed: views that draw on canvases draw again in the new colours
    document.querySelectorAll("[data-attn-view]").forEach(function (view) { if (view.__attnRedraw) view.__attnRedraw(); });
  }

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

  window.attnViews = {
    builders: builders, scan: scan, schedule: schedule,
    el: el, lut: lut, level: level, fmt: fmt, decode: decode, showTip: showTip, hideTip: hideTip, emit: emit,
    checkbox: checkbox, fitText: fitText, ink: ink, selectionOf: selectionOf,
  };
  new MutationObserver(schedule).observe(document.documentElement, {
    childList: true, subtree: true, attributes: true, attributeFilter: ["data-attn-key"],
  });
  var themeWatch = new MutationObserver(redrawAll);
  themeWatch.observe(document.documentElement, { attributes: true, attributeFilter: ["class"] });
  if (document.body) themeWatch.observe(document.body, { attributes: true, attributeFilter: ["class"] });
  if (window.matchMedia) {
    var scheme = window.matchMedia("(prefers-color-scheme: dark)");
    if (scheme.addEventListener) scheme.addEventListener("change", redrawAll);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scan);
  else schedule(); // after the view scripts that follow this one
})();
