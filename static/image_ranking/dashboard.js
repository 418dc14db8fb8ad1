// Review dashboard: the keyboard labelling loop, the lightbox, the help overlay and the
// status line. Everything here is an enhancement: every action is a plain form that works
// without it, and the lightbox only presses the tile's own buttons (one code path, one undo
// stack). The lightbox reads the tile's data-lightbox (JSON written by the server) and puts it
// in the page as text, never as HTML.
(function () {
  "use strict";

  let pendingFocus = null; // tile id to focus once htmx has swapped the answer in
  let undoFocus = null;    // element id the last undo changed (from its HX-Retarget)
  const lb = { tileId: null }; // the lightbox's tile, while it is open

  const tiles = () => Array.from(document.querySelectorAll("#poi-list .tile"));
  const cards = () => Array.from(document.querySelectorAll("#poi-list .poi"));
  const lightbox = () => document.getElementById("lightbox");
  const lightboxOpen = () => { const el = lightbox(); return !!el && !el.hidden; };
  const currentTile = () => {
    if (lightboxOpen()) return lb.tileId ? document.getElementById(lb.tileId) : null;
    const active = document.activeElement;
    return active && active.closest ? active.closest(".tile") : null;
  };

  function focusTile(tile) {
    if (!tile) return;
    tile.focus({ preventScroll: true });
    tile.scrollIntoView({ block: "nearest", inline: "nearest", behavior: "auto" });
  }

  // Show `tile`: in the lightbox while it is open, else by focusing it in the grid.
  function goTo(tile) {
    if (!tile) return;
    if (lightboxOpen()) { lb.tileId = tile.id; renderLightbox(); } else focusTile(tile);
  }

  // --- Pages: the keys go on across page boundaries, filters kept (the pager's URLs) ----------

  function goPage(rel, where) {
    const link = document.querySelector('.pager a[rel="' + rel + '"]');
    if (!link) return false;
    const url = new URL(link.href, location.href);
    url.hash = "focus=" + where + (lightboxOpen() ? "&open" : "");
    location.assign(url.toString());
    return true;
  }

  function focusFromHash() {
    const match = /^#focus=(first|last|last-poi)(&open)?$/.exec(location.hash);
    if (!match) return;
    history.replaceState(null, "", location.pathname + location.search);
    const all = tiles();
    let tile = null;
    if (match[1] === "first") tile = all[0];
    else if (match[1] === "last") tile = all[all.length - 1];
    else { const list = cards(); tile = list.length ? list[list.length - 1].querySelector(".tile") : null; }
    if (!tile) return;
    focusTile(tile);
    if (match[2]) openLightbox(tile);
  }

  function move(delta) {
    const all = tiles();
    if (!all.length) return;
    const i = all.indexOf(currentTile());
    if (i >= 0 && i + delta >= all.length && goPage("next", "first")) return;
    if (i >= 0 && i + delta < 0 && goPage("prev", "last")) return;
    goTo(all[i < 0 ? 0 : Math.max(0, Math.min(all.length - 1, i + delta))]);
  }

  function movePoi(delta) {
    const list = cards();
    if (!list.length) return;
    const tile = currentTile();
    const i = list.indexOf(tile ? tile.closest(".poi") : null);
    if (i >= 0 && i + delta >= list.length && goPage("next", "first")) return;
    if (i >= 0 && i + delta < 0 && goPage("prev", "last-poi")) return;
    const card = list[i < 0 ? 0 : Math.max(0, Math.min(list.length - 1, i + delta))];
    goTo(card.querySelector(".tile"));
  }

  // --- Actions: each presses the tile's (or card's) own button ---------------------------------

  function label(kind) {
    const tile = currentTile();
    if (!tile) { move(0); return; }
    const all = tiles();
    const next = all[all.indexOf(tile) + 1] || tile;
    if (kind === "clear") {
      // A curator's own label is cleared by its pressed button, a bootstrap one by "Clear".
      const pressed = tile.querySelector(
        '.label-form button[aria-pressed="true"], .label-form button[data-key="clear"]');
      if (pressed) { pendingFocus = tile.id; pressed.click(); }
      return;
    }
    const button = tile.querySelector('.label-form button[data-key="' + kind + '"]');
    if (!button) return;
    if (button.getAttribute("aria-pressed") === "true") { goTo(next); return; }
    pendingFocus = next.id;
    button.click();
    goTo(next); // advance at once; re-focused after the swap if the swap took focus
  }

  // "Use this image" and "only this one good": their answer is the whole card.
  function tileAction(key) {
    const tile = currentTile();
    const button = tile && tile.querySelector('.label-form button[data-key="' + key + '"]');
    if (!button) return;
    pendingFocus = tile.id;
    button.click();
  }

  function rerank() {
    const tile = currentTile();
    const card = tile && tile.closest(".poi");
    const button = card && card.querySelector('.poi-actions form[action$="/rerank/"] button');
    if (!button || button.disabled) return;
    pendingFocus = tile.id;
    button.click();
  }

  function undo() {
    const button = document.getElementById("undo-button");
    if (button && !button.disabled) button.click();
  }

  // --- The lightbox --------------------------------------------------------------------------

  function tileData(tile) {
    try { return JSON.parse(tile.dataset.lightbox || "{}"); } catch (e) { return {}; }
  }

  function setText(box, name, value) {
    const el = box.querySelector('[data-lb="' + name + '"]');
    if (el) el.textContent = value === null || value === undefined || value === "" ? "—" : String(value);
  }

  function renderLightbox() {
    const box = lightbox();
    const tile = lb.tileId ? document.getElementById(lb.tileId) : null;
    if (!box || !tile) { closeLightbox(); return; }
    const data = tileData(tile);
    const all = tiles();
    const card = tile.closest(".poi");
    const name = card ? card.querySelector(".poi-name h3") : null;
    setText(box, "poi", name ? name.textContent : "");
    setText(box, "position", "image " + (all.indexOf(tile) + 1) + " of " + all.length + " on this page");
    setText(box, "title", data.title);
    setText(box, "resolution", data.resolution);
    setText(box, "size", data.size);
    setText(box, "mime", data.mime);
    setText(box, "rank", data.rank);
    setText(box, "distance", data.distance);
    setText(box, "score", data.score);

    const img = box.querySelector("#lb-img");
    if (img.getAttribute("src") !== (data.src || "")) {
      img.classList.add("is-loading");
      if (data.src) img.setAttribute("src", data.src); else img.removeAttribute("src");
    }
    img.alt = data.title || "";

    const reasons = box.querySelector('[data-lb="reasons"]');
    reasons.replaceChildren();
    (data.reasons || []).forEach(function (reason) {
      const li = document.createElement("li");
      li.className = "note" + (reason.kind ? " note--" + reason.kind : "");
      li.textContent = reason.text;
      reasons.appendChild(li);
    });
    reasons.hidden = !reasons.children.length;

    const link = box.querySelector('[data-lb="commons"]');
    if (data.commons && /^https?:\/\//.test(data.commons)) {
      link.href = data.commons; link.hidden = false;
    } else {
      link.removeAttribute("href"); link.hidden = true;
    }

    // The label state and the buttons mirror the tile's.
    const mark = box.querySelector('[data-lb="mark"]');
    const labelled = tile.dataset.label || "";
    const auto = !!tile.querySelector('[data-label-source="bootstrap"]');
    mark.hidden = !labelled;
    mark.className = "lb-mark label-mark--" + labelled;
    mark.textContent = labelled ? (auto ? "auto " : "") + (labelled === "good" ? "✓ good" : "✗ bad") : "";
    ["good", "bad", "clear", "use", "only"].forEach(function (key) {
      const own = tile.querySelector('.label-form button[data-key="' + key + '"]');
      const mine = box.querySelector('[data-lb-action="' + key + '"]');
      if (key === "clear") mine.disabled = !tile.querySelector('.label-form button[aria-pressed="true"], .label-form button[data-key="clear"]');
      else mine.disabled = !own;
      if (own && own.hasAttribute("aria-pressed")) mine.setAttribute("aria-pressed", own.getAttribute("aria-pressed"));
    });
    const undoButton = document.getElementById("undo-button");
    box.querySelector('[data-lb-action="undo"]').disabled = !undoButton || undoButton.disabled;
  }

  function openLightbox(tile) {
    const box = lightbox();
    if (!box || !tile) return;
    lb.tileId = tile.id;
    box.hidden = false;
    document.documentElement.classList.add("has-lightbox");
    renderLightbox();
    box.querySelector(".lb-box").focus();
  }

  function closeLightbox() {
    const box = lightbox();
    if (!box || box.hidden) return;
    box.hidden = true;
    document.documentElement.classList.remove("has-lightbox");
    const tile = lb.tileId ? document.getElementById(lb.tileId) : null;
    lb.tileId = null;
    focusTile(tile); // focus goes back to the tile the lightbox showed last
  }

  function focusables(box) {
    return Array.from(box.querySelectorAll("button:not([disabled]), a[href]:not([hidden]), [tabindex='-1'].lb-box"))
      .filter(function (el) { return el.offsetParent !== null || el.classList.contains("lb-box"); });
  }

  function trapTab(event) {
    const box = lightbox();
    const items = focusables(box).filter(function (el) { return !el.classList.contains("lb-box"); });
    if (!items.length) return;
    const first = items[0], last = items[items.length - 1];
    const i = items.indexOf(document.activeElement);
    if (event.shiftKey && (i <= 0)) { last.focus(); event.preventDefault(); }
    else if (!event.shiftKey && (i === items.length - 1 || i < 0)) { first.focus(); event.preventDefault(); }
  }

  // --- Help and status line -----------------------------------------------------------------

  function toggleHelp(force) {
    const help = document.getElementById("help");
    if (!help) return;
    const show = typeof force === "boolean" ? force : help.hidden;
    help.hidden = !show;
    if (show) help.querySelector("button").focus();
    else if (lightboxOpen()) lightbox().querySelector(".lb-box").focus();
  }

  function toast(message, level) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = message;
    el.className = "toast toast--show toast--" + (level || "error");
  }

  const ACTIONS = {
    "j": () => move(1), "ArrowRight": () => move(1),
    "k": () => move(-1), "ArrowLeft": () => move(-1),
    "g": () => label("good"), "b": () => label("bad"), "c": () => label("clear"),
    "G": () => tileAction("only"), "s": () => tileAction("use"), "r": rerank,
    "u": undo, "n": () => movePoi(1), "p": () => movePoi(-1),
    "o": () => { const tile = currentTile(); if (tile) openLightbox(tile); },
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
    if (lightboxOpen()) {
      if (event.key === "Escape") { closeLightbox(); event.preventDefault(); return; }
      if (event.key === "Tab") { trapTab(event); return; }
      if (event.key === "o") { event.preventDefault(); return; }
    } else if ((event.key === "Enter" || event.key === " ") && t && t.classList && t.classList.contains("tile")) {
      openLightbox(t);
      event.preventDefault();
      return;
    }
    const action = ACTIONS[event.key];
    if (action) { action(); event.preventDefault(); }
  });

  // Focus never leaves the open lightbox (a click behind it, a swap that took the focus).
  document.addEventListener("focusin", function (event) {
    const box = lightbox();
    const help = document.getElementById("help");
    if (!lightboxOpen() || box.contains(event.target) || (help && help.contains(event.target))) return;
    box.querySelector(".lb-box").focus();
  });

  document.addEventListener("click", function (event) {
    const target = event.target;
    if (!target.closest) return;
    const toggle = target.closest("[data-help-toggle]");
    if (toggle) { toggleHelp(); return; }
    if (target.id === "help") { toggleHelp(false); return; }
    const action = target.closest("[data-lb-action]");
    if (action && lightboxOpen()) {
      const key = action.dataset.lbAction;
      const run = {
        close: closeLightbox, prev: () => move(-1), next: () => move(1), undo: undo,
        good: () => label("good"), bad: () => label("bad"), clear: () => label("clear"),
        use: () => tileAction("use"), only: () => tileAction("only"),
      }[key];
      if (run) run();
      return;
    }
    if (target.id === "lightbox") { closeLightbox(); return; }
    // A click on a tile's image opens the lightbox; with a modifier (or the middle button)
    // the link still opens the Commons page in a new tab, as it does without JavaScript.
    const thumb = target.closest("#poi-list .tile .thumb");
    if (thumb && event.button === 0 && !(event.ctrlKey || event.metaKey || event.shiftKey || event.altKey)) {
      event.preventDefault();
      openLightbox(thumb.closest(".tile"));
    }
  });

  document.addEventListener("change", function (event) {
    const form = event.target.closest && event.target.closest("form[data-autosubmit]");
    if (form) form.requestSubmit();
  });

  // The lightbox's image: shown when loaded; the stored file's resolution read from it.
  document.addEventListener("load", function (event) {
    if (event.target.id !== "lb-img") return;
    event.target.classList.remove("is-loading");
    const dd = lightbox().querySelector('[data-lb="resolution"]');
    if (dd && dd.textContent === "—" && event.target.naturalWidth) {
      dd.textContent = event.target.naturalWidth + "×" + event.target.naturalHeight;
    }
  }, true);

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

  document.addEventListener("htmx:afterSettle", function () {
    if (undoFocus) {
      const el = document.getElementById(undoFocus);
      undoFocus = null;
      pendingFocus = null;
      const tile = el && (el.classList.contains("tile") ? el : el.querySelector(".tile"));
      if (tile) goTo(tile);
    }
    if (lightboxOpen()) { pendingFocus = null; renderLightbox(); return; }
    if (!pendingFocus) return;
    const el = document.getElementById(pendingFocus);
    pendingFocus = null;
    const active = document.activeElement;
    if (el && (!active || active === document.body || !active.closest(".tile"))) focusTile(el);
  });

  // A refused or failed action must never pass unnoticed: show why.
  document.addEventListener("htmx:responseError", function (event) {
    const xhr = event.detail.xhr;
    toast((xhr.responseText || "").slice(0, 300) || ("Error " + xhr.status), "error");
  });
  document.addEventListener("htmx:targetError", function () {
    toast("Done, on an image that is not on this page.", "warning");
  });
  document.addEventListener("htmx:sendError", function () {
    toast("Network error: the action was not saved. Try again.", "error");
  });

  // The status line fades after a while; errors stay until the next action.
  let fade = null;
  document.addEventListener("htmx:afterSettle", function () {
    const el = document.getElementById("toast");
    if (!el || !el.classList.contains("toast--show") || el.dataset.fading) return;
    if (el.classList.contains("toast--error")) return;
    el.dataset.fading = "1"; // the oob swap brings a fresh element, without this mark
    clearTimeout(fade);
    fade = setTimeout(function () {
      const now = document.getElementById("toast");
      if (now) now.classList.remove("toast--show");
    }, 3000);
  });

  focusFromHash();
})();
