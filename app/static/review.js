// The review page's keyboard, dialogs, lease heartbeat and release on leave.
// Every action is also a plain button or form, so the mouse and screen readers work too.
(function () {
  "use strict";
  const HEARTBEAT_MS = 30000;
  const ACTIVE_MS = 120000; // only an active reviewer keeps the lease alive
  let lastActivity = Date.now();
  // From a request until the new item has settled, keys wait: a form htmx has not taken
  // over yet would submit as a plain page load, and a second key would answer twice.
  let busy = false;
  document.addEventListener("htmx:beforeRequest", (event) => {
    busy = true;
    // Answering or skipping: show the item leased ahead at once; the server's answer,
    // the same item with its evidence and live buttons, replaces this preview.
    const form = event.target.closest && event.target.closest("#decide-form, .actions form");
    // A typed answer may be refused (not one of the labels): keep the item until we know.
    if (form && form.id === "decide-form" && document.getElementById("other-answer")?.value.trim()) return;
    const preview = document.getElementById("prefetched-item");
    const layout = document.querySelector("#review-item .review-layout");
    if (form && preview && layout) layout.replaceWith(preview.content.cloneNode(true));
  });
  document.addEventListener("htmx:afterSettle", (event) => {
    busy = false;
    // A new item: move focus to its title, so a screen reader reads it out.
    if (event.target.id === "review-item") document.getElementById("item-title")?.focus({ preventScroll: true });
  });
  document.addEventListener("htmx:afterRequest", (e) => { if (!e.detail.successful) busy = false; });
  document.addEventListener("htmx:sendError", () => { busy = false; });

  const root = () => document.getElementById("review-item");
  const candidates = () => Array.from(document.querySelectorAll("#review-item .candidate"));
  // Text entry keeps its keys; radios and checkboxes do not (they would swallow 1-9 and Enter).
  const typing = (el) => {
    if (!el) return false;
    const tag = (el.tagName || "").toLowerCase();
    if (tag === "input") return !["radio", "checkbox", "button", "submit"].includes(el.type);
    return el.isContentEditable || tag === "textarea" || tag === "select";
  };

  function select(delta) {
    const all = candidates();
    if (!all.length) return;
    let i = all.findIndex((b) => b.classList.contains("selected"));
    all.forEach((b) => b.classList.remove("selected"));
    i = Math.max(0, Math.min(all.length - 1, (i < 0 ? 0 : i) + delta));
    all[i].classList.add("selected");
    all[i].focus({ preventScroll: false });
  }

  function openDialog(id) {
    const dialog = document.getElementById(id);
    if (!dialog || dialog.open) return;
    dialog.showModal();
    const input = dialog.querySelector("input:not([type=hidden]), textarea");
    if (input) input.focus();
  }

  // A closed dialog hands focus back to the item, so the next key is not typed into it.
  document.addEventListener("close", (event) => {
    if (event.target.tagName === "DIALOG") document.getElementById("item-title")?.focus({ preventScroll: true });
  }, true);

  document.addEventListener("click", (event) => {
    const opener = event.target.closest("[data-dialog]");
    if (opener) openDialog(opener.dataset.dialog);
    const closer = event.target.closest("[data-close]");
    if (closer) closer.closest("dialog").close();
  });

  document.addEventListener("keydown", (event) => {
    lastActivity = Date.now();
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (document.querySelector("dialog[open]")) return; // the dialog's own form handles keys
    const target = event.target;
    if (typing(target)) {
      if (event.key === "Escape") target.blur();
      return;
    }
    if (!root()) return;
    if (busy) { event.preventDefault(); return; }
    const key = event.key;
    let handled = true;
    if (key === "?") openDialog("help-dialog");
    else if (key === "/") document.getElementById("other-answer")?.focus();
    else if (key === "e") openDialog("escalate-dialog");
    else if (key === "f") openDialog("flag-dialog");
    else if (key === "ArrowDown") select(1);
    else if (key === "ArrowUp") select(-1);
    else if (key === "Enter" && !(target.tagName === "BUTTON")) {
      document.querySelector("#review-item .candidate.selected")?.click();
    } else {
      const button = document.querySelector(`#review-item [data-key="${CSS.escape(key)}"]`);
      if (button && !button.disabled) button.click();
      else handled = false;
    }
    if (handled) event.preventDefault();
  });

  ["mousemove", "mousedown", "touchstart", "scroll"].forEach((name) =>
    document.addEventListener(name, () => { lastActivity = Date.now(); }, { passive: true }));

  function csrf() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; }
    catch (e) { return ""; }
  }

  // Keep the lease while the reviewer works; say so plainly when it is gone.
  setInterval(async () => {
    const el = root();
    if (!el || !el.dataset.heartbeatUrl || Date.now() - lastActivity > ACTIVE_MS) return;
    const response = await fetch(el.dataset.heartbeatUrl, {
      method: "POST", headers: { "X-CSRFToken": csrf() }, credentials: "same-origin",
    }).catch(() => null);
    if (response && response.status === 410 && root() === el) {
      const notice = document.getElementById("notice");
      notice.textContent = "Your hold on " + el.dataset.externalId + " expired while you were away; it went back to the queue. Reload for the next item.";
      notice.classList.remove("hidden");
      el.querySelectorAll("#decide-form button").forEach((b) => { b.disabled = true; });
    }
  }, HEARTBEAT_MS);

  // Back to a page from the back/forward cache: its item was released on leaving, so reload.
  window.addEventListener("pageshow", (event) => { if (event.persisted && root()) location.reload(); });

  // Leaving the page gives the item back at once instead of when the lease runs out.
  window.addEventListener("pagehide", () => {
    const el = root();
    if (!el || !el.dataset.releaseUrl) return;
    const body = new FormData();
    body.append("csrf_token", csrf());
    navigator.sendBeacon(el.dataset.releaseUrl, body);
  });
})();
