/* attn-demos panel (panel.py): Layer and Head selects over the maps embedded in the page. A change,
 * or a click on a grid cell inside the panel, swaps that map's payload into the panel's heatmap,
 * moves the grid's outline and sets the head view's layer (each view is rebuilt from its new
 * payload, as when a server sends a new value); no server is involved. */
(function (views) {
  "use strict";
  var el = views.el;
  var swaps = 0;

  function swap(view, changes) {
    // give a child view a changed payload and a new key: the shared script rebuilds it
    if (!view) return;
    var payload = JSON.parse(view.getAttribute("data-attn-payload"));
    Object.keys(changes).forEach(function (name) { payload[name] = changes[name]; });
    view.setAttribute("data-attn-payload", JSON.stringify(payload));
    view.setAttribute("data-attn-key", (view.getAttribute("data-attn-key") || "").split("~")[0] + "~" + (++swaps));
  }

  function child(root, kind) {
    return root.querySelector('[data-attn-view="' + kind + '"]');
  }

  views.builders.panel = function (root, live, p) {
    var title = root.querySelector(":scope > .attn-title");
    root.insertBefore(live, title ? title.nextSibling : root.firstChild); // the selects above the views
    var badge = root.querySelector(":scope > .attn-panel-badge");
    var controls = el("div", "attn-controls");
    var layerSelect = el("select", "attn-panel-layer"), headSelect = el("select", "attn-panel-head");
    p.layers.forEach(function (name, l) {
      var option = el("option", null, name);
      option.value = String(l);
      option.disabled = !Object.keys(p.maps).some(function (key) { return key.split(":")[0] === String(l); });
      layerSelect.appendChild(option);
    });
    ["mean"].concat(Array.from({ length: p.heads }, function (_, h) { return String(h); })).forEach(function (name) {
      var option = el("option", null, name);
      option.value = name;
      headSelect.appendChild(option);
    });
    [["layer ", layerSelect], ["head ", headSelect]].forEach(function (pair) {
      var label = el("label", null, pair[0]);
      label.appendChild(pair[1]);
      controls.appendChild(label);
    });
    var message = el("span", "attn-note attn-panel-message");
    controls.appendChild(message);
    live.appendChild(controls);

    function show(layer, head) {
      var key = layer + ":" + head, entry = p.maps[key];
      if (!entry) {
        message.textContent = "layer " + p.layers[layer] + ", head " + head + " is not embedded in this view";
        layerSelect.value = String(p.shown[0]);
        headSelect.value = String(p.shown[1]);
        return;
      }
      message.textContent = "";
      p.shown = [layer, head];
      layerSelect.value = String(layer);
      headSelect.value = String(head);
      root.setAttribute("data-shown", key);
      if (badge) badge.textContent = entry.badge;
      var heatmap = child(root, "heatmap");
      if (heatmap) {
        var heading = heatmap.querySelector(":scope > .attn-title");
        if (heading) heading.textContent = entry.title;
        swap(heatmap, Object.assign({}, entry.payload, { chosen: null }));
      }
      swap(child(root, "grid"), { shown: head === "mean" ? null : [layer, +head] });
      swap(child(root, "head"), { layer: layer });
      Object.keys(entry.children || {}).forEach(function (kind) { swap(child(root, kind), entry.children[kind]); });
    }

    function chosen() {
      return [+layerSelect.value, headSelect.value];
    }
    layerSelect.addEventListener("change", function () { show.apply(null, chosen()); });
    headSelect.addEventListener("change", function () { show.apply(null, chosen()); });
    root.addEventListener("attn-select", function (event) {
      var detail = event.detail || {};
      if (detail.view === "grid") show(detail.layer, String(detail.head));
    });
    layerSelect.value = String(p.shown[0]);
    headSelect.value = String(p.shown[1]);
    root.setAttribute("data-shown", p.shown[0] + ":" + p.shown[1]);
  };

  views.schedule(); // draw the views of this kind already on the page
})(window.attnViews);
