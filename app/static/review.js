// The review page's keyboard, dialogs, lease heartbeat and tabs; on every page, the presence
// that keeps a reviewer's items theirs while they move around the app.
// Every action is also a plain button or form, so the mouse and screen readers work too.
(function () {
  "use strict";
  const HEARTBEAT_MS = 30000;
  const PRESENCE_MS = 20000;
  const SETTLE_MS = 1500;
  const ACTIVE_MS = 120000; // only an active reviewer keeps the lease alive
  const KEYS = /^([1-9]|[suef/?]|Enter|ArrowUp|ArrowDown)$/;
  let lastActivity = Date.now();
  // From a request until the new item has settled, the item on screen is not live yet (the
  // preview of the next item, or the old item while a typed answer is checked). Keys pressed
  // then wait in `queued`, each with the item it was pressed on, and act once that item is
  // live; they are never dropped without a word.
  let busy = false;
  const queued = [];
  let followedOtherTab = false;
  const tabs = "BroadcastChannel" in window ? new BroadcastChannel("loupe-review") : null;

  const root = () => document.getElementById("review-item");
  const liveId = () => (busy ? null : root()?.dataset.externalId ?? null);
  const shownId = () => document.querySelector("#review-item #item-title")?.textContent ?? null;
  const candidates = () => Array.from(document.querySelectorAll("#review-item .candidate"));
  const keyName = (key) => (key === "Enter" ? "Enter" : key.replace("Arrow", "").toLowerCase());

  function csrf() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; }
    catch (e) { return ""; }
  }

  // A refusal or failure is an alert (announced, red); anything else a quiet status line.
  function notify(text, kind) {
    const old = document.getElementById("notice");
    if (!old) return;
    const notice = document.createElement("p");
    notice.id = "notice";
    notice.className = "flash " + (kind || "info");
    notice.setAttribute("role", kind === "error" ? "alert" : "status");
    notice.textContent = text;
    old.replaceWith(notice);
  }

  function inReview(elt) {
    const el = root();
    return !!(el && elt && el.contains(elt));
  }

  document.addEventListener("htmx:beforeRequest", (event) => {
    if (!inReview(event.detail.elt)) return;
    busy = true;
    // Answering or skipping: show the item leased ahead at once; the server's answer,
    // the same item with its evidence and live buttons, replaces this preview.
    // A typed answer may be refused (not one of the labels): keep the item until we know.
    const form = event.target.closest && event.target.closest("#decide-form, .actions form");
    const preview = document.getElementById("prefetched-item");
    const layout = document.querySelector("#review-item .review-layout");
    if (form && preview && layout) layout.replaceWith(preview.content.cloneNode(true));
  });

  document.addEventListener("htmx:afterSettle", (event) => {
    if (event.target.id !== "review-item") return;
    busy = false;
    // A new item: move focus to its title, so a screen reader reads it out.
    document.getElementById("item-title")?.focus({ preventScroll: true });
    if (followedOtherTab) {
      followedOtherTab = false;
      if (event.target.dataset.externalId && document.getElementById("notice")?.classList.contains("hidden")) {
        notify("Your other tab moved on: this is your current item.", "info");
      }
    }
    tabs?.postMessage({ queue: event.target.dataset.queue, claim: event.target.dataset.claim || null });
    drain();
  });

  function failed(why) {
    busy = false;
    const lost = queued.splice(0).map((q) => keyName(q.key));
    notify(why + (lost.length ? " Keys not applied: " + lost.join(", ") + "." : ""), "error");
  }
  document.addEventListener("htmx:sendError", (event) => {
    if (inReview(event.detail.elt)) failed("Loupe could not be reached, so your last action may not have been saved. Check the connection, then reload the page: your item is kept for you.");
  });
  document.addEventListener("htmx:responseError", (event) => {
    if (inReview(event.detail.elt)) failed("Loupe could not do that (error " + event.detail.xhr.status + "). Reload the page: your item is kept for you.");
  });

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

  // One key on the live item; false when the key means nothing here.
  function act(key) {
    if (key === "?") openDialog("help-dialog");
    else if (key === "/") document.getElementById("other-answer")?.focus();
    else if (key === "e") openDialog("escalate-dialog");
    else if (key === "f") openDialog("flag-dialog");
    else if (key === "ArrowDown") select(1);
    else if (key === "ArrowUp") select(-1);
    else if (key === "Enter") document.querySelector("#review-item .candidate.selected")?.click();
    else {
      const button = document.querySelector(`#review-item [data-key="${CSS.escape(key)}"]`);
      if (!button || button.disabled) return false;
      button.click();
    }
    return true;
  }

  function hold(key) {
    const item = shownId();
    queued.push({ key, item });
    const n = Number(key);
    if (n >= 1 && n <= 9) candidates()[n - 1]?.classList.add("queued");
    notify("Key " + keyName(key) + " noted for " + (item || "the next item") + ": it applies as soon as the item is ready.", "info");
  }

  // Keys pressed while the item was settling, applied in order once their item is live.
  function drain() {
    while (queued.length && !busy && !document.querySelector("dialog[open]")) {
      const next = queued.shift();
      if (next.item !== liveId()) {
        const lost = [next, ...queued.splice(0)].map((q) => keyName(q.key)).join(", ");
        notify("Not applied: key " + lost + " was pressed on " + (next.item || "an item") +
               ", which is not the item in front of you now. Press it again if you meant this one.", "error");
        return;
      }
      if (!act(next.key) && /^[1-9]$/.test(next.key)) noSuchAnswer(next.key);
    }
  }

  document.addEventListener("keydown", (event) => {
    lastActivity = Date.now();
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (document.querySelector("dialog[open]")) return; // the dialog's own form handles keys
    const target = event.target;
    if (typing(target)) {
      // Esc leaves a typed answer unsent and clears it, so no stray text waits in the field.
      if (event.key === "Escape" && target.id === "other-answer") { target.value = ""; markTyped(target); }
      if (event.key === "Escape") target.blur();
      return;
    }
    if (!root()) return;
    const key = event.key;
    if (key === "Enter" && target.tagName === "BUTTON") return; // the focused button answers
    // A key held down repeats: one press is one action, or it would answer the next items
    // unseen. Only the arrows may repeat.
    if (event.repeat && !key.startsWith("Arrow")) { if (KEYS.test(key)) event.preventDefault(); return; }
    if (busy) {
      if (KEYS.test(key)) { hold(key); event.preventDefault(); }
      return;
    }
    if (act(key)) event.preventDefault();
    else if (/^[1-9]$/.test(key)) noSuchAnswer(key);
  });

  function noSuchAnswer(key) {
    const n = candidates().length;
    notify("Key " + key + " did nothing: " + (liveId() || "this item") + " has " +
           (n > 1 ? "answers 1 to " + n + " only." : n === 1 ? "only answer 1." : "no listed answers: press / to type one."), "error");
  }

  // Text left in the answer field is marked as not sent (it is sent only by its own Save
  // button or Enter in the field, never by a candidate key).
  function markTyped(input) {
    const left = input !== document.activeElement && input.value.trim() !== "";
    input.classList.toggle("unsaved", left);
    document.getElementById("other-hint")?.classList.toggle("hidden", !left);
  }
  document.addEventListener("focusout", (event) => { if (event.target.id === "other-answer") markTyped(event.target); });
  document.addEventListener("focusin", (event) => { if (event.target.id === "other-answer") markTyped(event.target); });

  ["mousemove", "mousedown", "touchstart", "scroll"].forEach((name) =>
    document.addEventListener(name, () => { lastActivity = Date.now(); }, { passive: true }));

  function post(url) {
    return fetch(url, { method: "POST", headers: { "X-CSRFToken": csrf() }, credentials: "same-origin" })
      .catch(() => null);
  }

  // Keep the lease while the reviewer works; say so plainly when it is gone.
  async function heartbeat() {
    const el = root();
    if (!el || !el.dataset.heartbeatUrl) return;
    const response = await post(el.dataset.heartbeatUrl);
    if (!response || response.status !== 410 || root() !== el || busy) return;
    const ended = await response.json().catch(() => ({}));
    if (ended.state === "decided") {
      // Answered in another tab or window: show the current item, as the other tab does.
      followedOtherTab = true;
      htmx.ajax("GET", el.dataset.pageUrl, { target: "#review-item", swap: "outerHTML" });
      return;
    }
    notify("Your hold on " + el.dataset.externalId + " ran out while you were away, so it went back to the queue. Reload the page for your next item.", "error");
    el.querySelectorAll("#decide-form button, #other-form button").forEach((b) => { b.disabled = true; });
  }
  // Back to this tab: check at once that its item is still the current one.
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") heartbeat(); });
  setInterval(() => { if (Date.now() - lastActivity <= ACTIVE_MS) heartbeat(); }, HEARTBEAT_MS);

  // Every page of the app keeps the reviewer's items theirs while they are active on it.
  function presence() {
    const url = document.body.dataset.presenceUrl;
    if (url) post(url);
  }
  // Once just after loading too: the previous page's unload may reach the server after this
  // page took the items up, and shorten their lease again.
  setTimeout(() => { presence(); heartbeat(); }, SETTLE_MS);
  setInterval(() => { if (Date.now() - lastActivity <= ACTIVE_MS) presence(); }, PRESENCE_MS);

  // Tabs of one reviewer show one current item: when one tab moves on, the others follow;
  // when one closes, the others take the items up again (closing shortened their lease).
  if (tabs) {
    tabs.onmessage = (event) => {
      const msg = event.data || {};
      if (msg.bye) { setTimeout(() => { heartbeat(); presence(); }, 1000); return; }
      const el = root();
      if (!el || busy || msg.queue !== el.dataset.queue || msg.claim === (el.dataset.claim || null)) return;
      followedOtherTab = true;
      htmx.ajax("GET", el.dataset.pageUrl, { target: "#review-item", swap: "outerHTML" });
    };
  }

  // Back to a page from the back/forward cache: load it again, which takes its item up again.
  window.addEventListener("pageshow", (event) => { if (event.persisted && root()) location.reload(); });

  // Leaving a page (a reload, a link, closing the tab) keeps the reviewer's items for a short
  // grace only: the next page takes them up again; if none does, they go back to the queue.
  window.addEventListener("pagehide", () => {
    const url = document.body.dataset.leaveUrl;
    if (url) {
      const body = new FormData();
      body.append("csrf_token", csrf());
      navigator.sendBeacon(url, body);
    }
    tabs?.postMessage({ bye: true });
  });
})();
