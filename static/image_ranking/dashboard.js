// Review dashboard: the keyboard labelling loop, the help overlay and the status line.
// Everything here is an enhancement: every action is a plain form that works without it.
(function () {
  "use strict";

  let pendingFocus = null; // tile id to focus once htmx has swapped the answer in

  const tiles = () => Array.from(document.querySelectorAll("#poi-list .tile"));
  const currentTile = () => (document.activeElement && document.activeElement.closest)
    ? document.activeElement.closest(".tile") : null;

  function focusTile(tile) {
    if (!tile) return;
    tile.focus({ preventScroll: true });
    tile.scrollIntoView({ block: "nearest", inline: "nearest", behavior: "auto" });
  }

  function move(delta) {
    const all = tiles();
    if (!all.length) return;
    const i = all.indexOf(currentTile());
    focusTile(all[i < 0 ? 0 : Math.max(0, Math.min(all.length - 1, i + delta))]);
  }

  function movePoi(delta) {
    const cards = Array.from(document.querySelectorAll("#poi-list .poi"));
    if (!cards.length) return;
    const here = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest(".poi") : null;
    const i = cards.indexOf(here);
    const card = cards[i < 0 ? 0 : Math.max(0, Math.min(cards.length - 1, i + delta))];
    focusTile(card.querySelector(".tile"));
  }

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
    if (button.getAttribute("aria-pressed") === "true") { focusTile(next); return; }
    pendingFocus = next.id;
    button.click();
    focusTile(next); // advance at once; re-focused after the swap if the swap took focus
  }

  function undo() {
    const button = document.getElementById("undo-button");
    const tile = currentTile();
    if (tile) pendingFocus = tile.id;
    if (button && !button.disabled) button.click();
  }

  function toggleHelp(force) {
    const help = document.getElementById("help");
    if (!help) return;
    const show = typeof force === "boolean" ? force : help.hidden;
    help.hidden = !show;
    if (show) help.querySelector("button").focus();
  }

  function toast(message, level) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = message;
    el.className = "toast toast--show toast--" + (level || "error");
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const t = event.target;
    if (t && t.matches && t.matches("input, select, textarea, [contenteditable]")) return;
    const help = document.getElementById("help");
    if (help && !help.hidden) {
      if (event.key === "Escape" || event.key === "?") { toggleHelp(false); event.preventDefault(); }
      return;
    }
    const actions = {
      "j": () => move(1), "ArrowRight": () => move(1),
      "k": () => move(-1), "ArrowLeft": () => move(-1),
      "g": () => label("good"), "b": () => label("bad"), "c": () => label("clear"),
      "u": undo, "n": () => movePoi(1), "p": () => movePoi(-1),
      "?": () => toggleHelp(true),
    };
    const action = actions[event.key];
    if (action) { action(); event.preventDefault(); }
  });

  document.addEventListener("click", function (event) {
    const toggle = event.target.closest && event.target.closest("[data-help-toggle]");
    if (toggle) toggleHelp();
    else if (event.target.id === "help") toggleHelp(false);
  });

  document.addEventListener("change", function (event) {
    const form = event.target.closest && event.target.closest("form[data-autosubmit]");
    if (form) form.requestSubmit();
  });

  document.addEventListener("htmx:afterSettle", function () {
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
})();
