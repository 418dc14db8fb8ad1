// Review dashboard: the keyboard loop over the grid of photos, the action bar a tile shows
// under the pointer or the focus, selection across POIs, the tile size, the help overlay and
// the status line; and the keys of the focused review (one POI, its images large).
// Everything here is an enhancement: without it, a photo links to the focused review, whose
// actions are plain forms. Server text is put in the page as text, never as HTML.
(function () {
  "use strict";

  let pendingFocus = null; // tile id to focus once htmx has swapped the answer in
  let undoFocus = null;    // element id the last undo changed (from its HX-Retarget)
  const selected = new Set(); // tile ids selected for a bulk action (kept across swaps)
  let lastSelected = null;
  const focusView = () => !!document.getElementById("focus");

  // The images the keys step through: a POI's "Missing" tile only when it has no other, so a
  // POI without photos is reached too, and one with photos costs no extra key.
  const tiles = () => Array.from(document.querySelectorAll("#poi-list .tile")).filter(function (t) {
    return !t.classList.contains("tile--missing") || !t.parentElement.querySelector(".tile:not(.tile--missing)");
  });
  const firstTile = (card) => card.querySelector(".tile:not(.tile--missing)") || card.querySelector(".tile");
  const cards = () => Array.from(document.querySelectorAll("#poi-list .poi"));
  const currentTile = () => {
    const active = document.activeElement;
    return active && active.closest ? active.closest("#poi-list .tile") : null;
  };

  function focusTile(tile) {
    if (!tile) return;
    tile.focus({ preventScroll: true });
    tile.scrollIntoView({ block: "nearest", inline: "nearest", behavior: "auto" });
  }

  // --- Pages: the keys go on across page boundaries, filters kept (the pager's URLs) ----------

  function goPage(rel, where) {
    const link = document.querySelector('.pager a[rel="' + rel + '"]');
    if (!link) return false;
    const url = new URL(link.href, location.href);
    url.hash = "focus=" + where;
    location.assign(url.toString());
    return true;
  }

  function focusFromHash() {
    const match = /^#focus=(first|last|last-poi)$/.exec(location.hash);
    if (!match) return;
    history.replaceState(null, "", location.pathname + location.search);
    const all = tiles();
    let tile = null;
    if (match[1] === "first") tile = all[0];
    else if (match[1] === "last") tile = all[all.length - 1];
    else { const list = cards(); tile = list.length ? firstTile(list[list.length - 1]) : null; }
    focusTile(tile);
  }

  function move(delta) {
    const all = tiles();
    if (!all.length) return;
    const i = all.indexOf(currentTile());
    if (i >= 0 && i + delta >= all.length && goPage("next", "first")) return;
    if (i >= 0 && i + delta < 0 && goPage("prev", "last")) return;
    focusTile(all[i < 0 ? 0 : Math.max(0, Math.min(all.length - 1, i + delta))]);
  }

  // Every card has a tile (a POI without an image has its "Missing" one), so n/p stop at
  // every POI, also those without candidates.
  function movePoi(delta) {
    const list = cards();
    if (!list.length) return;
    const tile = currentTile();
    const i = list.indexOf(tile ? tile.closest(".poi") : null);
    if (i >= 0 && i + delta >= list.length && goPage("next", "first")) return;
    if (i >= 0 && i + delta < 0 && goPage("prev", "last-poi")) return;
    const card = list[i < 0 ? 0 : Math.max(0, Math.min(list.length - 1, i + delta))];
    focusTile(firstTile(card));
  }

  // --- The action bar: one template, added to a tile when it is hovered or focused -----------

  function acts(tile) {
    if (!tile) return null;
    const have = tile.querySelector(".acts");
    if (have) return have;
    const template = document.getElementById("tile-acts");
    const can = tile.dataset.acts || "";
    if (!template || !can) return null;
    const bar = template.content.firstElementChild.cloneNode(true);
    const candidate = tile.id.startsWith("t-c") ? tile.id.slice(3) : "";
    const id = candidate || tile.closest(".poi").id.replace("poi-", "");
    const label = tile.dataset.label || "";
    const auto = tile.hasAttribute("data-auto");
    bar.querySelectorAll("button").forEach(function (button) {
      const url = candidate ? button.dataset.url : button.dataset.currentUrl;
      const key = button.dataset.key;
      if (!can.includes(button.dataset.needs) || !url || (key === "clear" && !label)) {
        button.remove();
        return;
      }
      button.setAttribute("formaction", url.replace("/0/", "/" + id + "/"));
      if (key === "good" || key === "bad") {
        const mine = !auto && label === key; // pressing a curator's own label clears it
        button.setAttribute("aria-pressed", mine ? "true" : "false");
        button.value = mine ? "clear" : key;
      }
    });
    tile.appendChild(bar);
    return bar;
  }

  function button(tile, key) {
    const bar = acts(tile);
    return bar ? bar.querySelector('button[data-key="' + key + '"]') : null;
  }

  // Every action goes out through htmx.ajax with its own URL and values, from the card's (or
  // the focused review's) form: its hidden fields, its hx-sync queue. Not through the form's
  // submitter: a queued submit would post the wrong button once the focus has moved on.
  function send(own, extra) {
    const form = own.form || own.closest("form");
    const url = own.getAttribute("formaction") || own.dataset.url;
    if (!form || !url || !window.htmx) return false;
    const values = Object.assign({}, extra || {});
    if (own.name) values[own.name] = own.value;
    htmx.ajax("POST", url, { source: form, values: values });
    return true;
  }

  function label(kind) {
    if (focusView()) { focusAction(kind, true); return; }
    const tile = currentTile();
    if (!tile) { move(0); return; }
    const all = tiles();
    const next = all[all.indexOf(tile) + 1] || tile;
    if (kind === "clear") {
      const pressed = button(tile, "clear");
      if (pressed) { pendingFocus = tile.id; send(pressed); }
      return;
    }
    const own = button(tile, kind);
    if (!own) {
      toast(tile.classList.contains("tile--missing") ? "No image to label here: n goes to the next POI."
        : "The category fallback image is no photo of this POI: it takes no label.", "warning");
      return;
    }
    if (own.getAttribute("aria-pressed") === "true") { focusTile(next); return; }
    pendingFocus = next.id;
    send(own);
    focusTile(next); // advance at once; re-focused after the swap if the swap took focus
  }

  // "Use this image" and "only this one good": their answer is the whole card.
  const NOT_HERE = {
    only: "“Only this” is for a candidate of a POI with several: this image has none to compare.",
    use: "“Use this image” is not offered here: it is the image in use, another POI's photo, or no candidate.",
  };

  function tileAction(key) {
    if (focusView()) { focusAction(key, false); return; }
    const tile = currentTile();
    const own = button(tile, key);
    if (!own) { if (tile) toast(NOT_HERE[key], "warning"); return; }
    pendingFocus = tile.id;
    send(own);
  }

  function rerank() {
    if (focusView()) { focusAction("rerank", false); return; }
    const tile = currentTile();
    const card = tile && tile.closest(".poi");
    const own = card && card.querySelector(".poi-actions button[data-rerank]");
    if (!own || own.disabled) return;
    pendingFocus = tile.id;
    send(own);
  }

  function undo() {
    const own = document.getElementById("undo-button");
    if (own && !own.disabled) own.click();
  }

  // The focused review of a tile: its own link, with the page's filters.
  function openFocus(tile) {
    const link = tile && tile.querySelector("a.thumb");
    if (link) location.assign(withFilters(link.href));
  }

  function withFilters(href) {
    const url = new URL(href, location.href);
    new URLSearchParams(location.search).forEach(function (value, name) {
      if (!url.searchParams.has(name)) url.searchParams.set(name, value);
    });
    return url.toString();
  }

  // --- Selection across POIs: x selects, X (or shift-click) selects a range -------------------

  function toggleSelect(tile, range) {
    if (!tile || !tile.dataset.acts || !tile.dataset.acts.includes("l")) return;
    const all = tiles().filter(function (t) { return (t.dataset.acts || "").includes("l"); });
    let chosen = [tile];
    if (range && lastSelected && document.getElementById(lastSelected)) {
      const a = all.indexOf(document.getElementById(lastSelected)), b = all.indexOf(tile);
      chosen = all.slice(Math.min(a, b), Math.max(a, b) + 1);
    }
    const on = range || !selected.has(tile.id);
    chosen.forEach(function (t) { if (on) selected.add(t.id); else selected.delete(t.id); });
    lastSelected = tile.id;
    showSelection();
  }

  function showSelection() {
    tiles().forEach(function (t) { t.classList.toggle("is-selected", selected.has(t.id)); });
    Array.from(selected).forEach(function (id) { if (!document.getElementById(id)) selected.delete(id); });
    const bar = document.getElementById("selection-bar");
    if (!bar) return;
    bar.hidden = selected.size === 0;
    const count = bar.querySelector("[data-selected-count]");
    const pois = new Set(Array.from(selected).map(function (id) { return document.getElementById(id).closest(".poi").id; }));
    if (count) count.textContent = selected.size + " image" + (selected.size === 1 ? "" : "s") + " of " + pois.size + " POI" + (pois.size === 1 ? "" : "s") + " selected";
  }

  function fillSelection(form) {
    form.querySelectorAll('input[name="sel"]').forEach(function (el) { el.remove(); });
    selected.forEach(function (id) {
      const input = document.createElement("input");
      input.type = "hidden"; input.name = "sel"; input.value = id.replace(/^t-/, "");
      form.appendChild(input);
    });
  }

  // --- The focused review -------------------------------------------------------------------

  // A move in the focused review: its link's panel, fetched and swapped in, the URL pushed (a
  // key may come before htmx has processed a panel just swapped in, so not link.click()).
  function focusLink(name) {
    const link = document.querySelector('#focus [data-nav="' + name + '"]');
    const url = link && link.getAttribute("href");
    if (!url) {
      toast(link ? (link.dataset.none || "Nothing more in this view.") : "Nothing more in this view.", "warning");
      return;
    }
    if (name === "grid" || !window.htmx) { location.assign(url); return; }
    htmx.ajax("GET", url, { target: "#focus", swap: "outerHTML" }).then(function () {
      history.pushState(null, "", url);
    });
  }

  function focusAction(key, advance) {
    const form = document.getElementById("focus-actions");
    const own = form && form.querySelector('button[data-key="' + key + '"]');
    if (!own || own.disabled) return;
    send(own, { advance: advance ? "1" : "" });
  }

  // 100 %: the candidate's photo at its own size, scrolled in its pane (to judge blur).
  function zoom(img) {
    const photo = img || document.querySelector("#focus .pane--candidate img") ||
      document.querySelector("#focus .pane--current img");
    const pane = photo && photo.closest(".pane");
    if (pane) pane.classList.toggle("is-zoomed");
  }

  // --- Help, size and status line -------------------------------------------------------------

  function toggleHelp(force) {
    const help = document.getElementById("help");
    if (!help) return;
    const show = typeof force === "boolean" ? force : help.hidden;
    help.hidden = !show;
    if (show) help.querySelector("button").focus();
  }

  function setSize(size) {
    const root = document.querySelector(".ir");
    if (!root) return;
    root.classList.remove("tiles-s", "tiles-m", "tiles-l");
    root.classList.add("tiles-" + size);
    document.cookie = "ir_tiles=" + size + "; path=/; max-age=31536000; samesite=lax";
    document.querySelectorAll("[data-tile-size]").forEach(function (b) {
      b.setAttribute("aria-pressed", b.dataset.tileSize === size ? "true" : "false");
    });
    const tile = currentTile();
    if (tile) tile.scrollIntoView({ block: "nearest" });
  }

  // Each message has its own life: a success fades after 4 s, a warning or an error stays
  // until the next action. A poll or a later answer never takes an error away.
  let fade = null;
  function toast(message, level) {
    const el = document.getElementById("toast");
    if (!el || !message) return;
    clearTimeout(fade);
    el.textContent = message;
    el.className = "toast toast--show toast--" + (level || "error");
    if (level === "success") fade = setTimeout(function () { el.classList.remove("toast--show"); }, 4000);
  }

  const ACTIONS = {
    "j": () => focusView() ? focusLink("next-image") : move(1),
    "ArrowRight": () => focusView() ? focusLink("next-image") : move(1),
    "k": () => focusView() ? focusLink("prev-image") : move(-1),
    "ArrowLeft": () => focusView() ? focusLink("prev-image") : move(-1),
    "g": () => label("good"), "1": () => label("good"),
    "b": () => label("bad"), "2": () => label("bad"),
    "c": () => label("clear"), "0": () => label("clear"),
    "G": () => tileAction("only"), "s": () => tileAction("use"), "r": rerank,
    "u": undo,
    "n": () => focusView() ? focusLink("next-poi") : movePoi(1),
    "p": () => focusView() ? focusLink("prev-poi") : movePoi(-1),
    "l": () => focusView() && focusLink("next-unlabelled"),
    "f": () => focusView() && focusLink("next-flagged"),
    "z": () => focusView() && zoom(),
    "x": () => toggleSelect(currentTile(), false),
    "X": () => toggleSelect(currentTile(), true),
    "o": () => openFocus(currentTile()),
    "?": () => toggleHelp(true),
  };

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const t = event.target;
    if (t && t.matches && t.matches("input, select, textarea, [contenteditable]")) return;
    const help = document.getElementById("help");
    if (help && !help.hidden) {
      if (event.key === "Escape" || event.key === "?") { toggleHelp(false); event.preventDefault(); }
      return;
    }
    if (event.key === "Escape") {
      if (focusView()) { focusLink("grid"); event.preventDefault(); return; }
      if (selected.size) { selected.clear(); showSelection(); event.preventDefault(); }
      return;
    }
    if (event.key === "Enter" && t && t.classList && t.classList.contains("tile")) {
      openFocus(t);
      event.preventDefault();
      return;
    }
    const action = ACTIONS[event.key];
    if (action) { action(); event.preventDefault(); }
  });

  document.addEventListener("mouseover", function (event) {
    const tile = event.target.closest && event.target.closest("#poi-list .tile");
    if (tile) acts(tile);
  });
  document.addEventListener("focusin", function (event) {
    const tile = event.target.closest && event.target.closest("#poi-list .tile");
    if (tile) acts(tile);
  });

  document.addEventListener("click", function (event) {
    const target = event.target;
    if (!target.closest) return;
    if (target.closest("[data-help-toggle]")) { toggleHelp(); return; }
    if (target.id === "help") { toggleHelp(false); return; }
    const size = target.closest("[data-tile-size]");
    if (size) { setSize(size.dataset.tileSize); return; }
    if (target.closest("[data-clear-selection]")) { selected.clear(); showSelection(); return; }
    const bulk = target.closest("#selection-bar button[type=submit]");
    if (bulk) { fillSelection(bulk.form); return; }
    // The action bar's buttons and the focused review's: sent by send() (see there).
    const own = target.closest("#poi-list .acts button, #focus-actions button, .poi-actions button");
    if (own && !own.disabled && window.htmx) {
      event.preventDefault();
      const tile = own.closest(".tile");
      if (tile) pendingFocus = tile.id;
      send(own);
      return;
    }
    const tile = target.closest("#poi-list .tile");
    // Shift-click (or ctrl-click) selects; a plain click on the photo opens the focused review.
    if (tile && (event.shiftKey || event.ctrlKey || event.metaKey) && event.button === 0) {
      event.preventDefault();
      toggleSelect(tile, event.shiftKey && !!lastSelected);
      return;
    }
    const link = target.closest('#poi-list a[href*="review/?"]');
    if (link && event.button === 0 && !event.altKey) {
      event.preventDefault();
      location.assign(withFilters(link.href));
      return;
    }
    const photo = target.closest("#focus .pane img");
    if (photo) zoom(photo);
  });

  document.addEventListener("change", function (event) {
    const form = event.target.closest && event.target.closest("form[data-autosubmit]");
    if (form) form.requestSubmit();
  });

  // An undo answers with the tile (or card) it changed: focus follows it there, or to the tile
  // its X-Undo-Focus names (a bulk action's card: the image it had marked good).
  document.addEventListener("htmx:beforeSwap", function (event) {
    const elt = event.detail.elt || (event.detail.requestConfig && event.detail.requestConfig.elt);
    const form = elt && (elt.matches("form") ? elt : elt.closest("form"));
    if (!form || !form.querySelector("#undo-button") || !event.detail.xhr) return;
    const xhr = event.detail.xhr;
    const target = xhr.getResponseHeader("X-Undo-Focus") || xhr.getResponseHeader("HX-Retarget") || "";
    undoFocus = target.startsWith("#") ? target.slice(1) : null;
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    showSelection();
    const el = document.getElementById("toast");
    if (el && el.classList.contains("toast--show") && !el.dataset.seen) {
      el.dataset.seen = "1"; // an answer's own message: it fades only when it is a success
      toast(el.textContent, (el.className.match(/toast--(success|warning|error)/) || [])[1] || "success");
    }
    if (undoFocus) {
      const target = document.getElementById(undoFocus);
      undoFocus = null;
      pendingFocus = null;
      const tile = target && (target.classList.contains("tile") ? target : target.querySelector(".tile"));
      if (tile) focusTile(tile);
    }
    if (!pendingFocus) return;
    const next = document.getElementById(pendingFocus);
    pendingFocus = null;
    const active = document.activeElement;
    if (next && (!active || active === document.body || !active.closest(".tile"))) focusTile(next);
  });

  // A refused action's message (HX-Trigger showToast), a failed request, a lost network.
  document.body.addEventListener("selectionDone", function () { selected.clear(); showSelection(); });
  document.body.addEventListener("showToast", function (event) {
    toast(event.detail.message, event.detail.level);
  });
  document.addEventListener("htmx:responseError", function (event) {
    const xhr = event.detail.xhr;
    const type = xhr.getResponseHeader("Content-Type") || "";
    const text = type.startsWith("text/plain") ? (xhr.responseText || "").slice(0, 300) : "";
    toast(text || ("The server answered " + xhr.status + ": nothing was changed."), "error");
  });
  document.addEventListener("htmx:targetError", function () {
    toast("Done, on an image that is not on this page.", "warning");
  });
  document.addEventListener("htmx:sendError", function () {
    toast("Network error: the action was not saved. Try again.", "error");
  });

  focusFromHash();
  if (focusView()) {
    const stage = document.getElementById("focus");
    if (stage) stage.focus({ preventScroll: true });
  }
})();
