// raresift labeling app: keyboard answers, saved one request at a time, next batch in the
// background. No library: the server renders the pages, this file only wires keys and requests.
"use strict";

const TOKEN = document.querySelector('meta[name="csrf-token"]').content;
const POLL_MS = 1500;
const JOB_POLL_MS = 400;

function notice(text, kind = "info") {
  const box = document.getElementById("notices");
  const p = document.createElement("p");
  p.className = "notice " + kind;
  p.textContent = text; // never innerHTML: ids and answers come from user data
  box.prepend(p);
  while (box.children.length > 4) box.lastChild.remove();
  setTimeout(() => p.remove(), 8000);
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": TOKEN },
    body: JSON.stringify(body || {}),
  });
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// ---------------------------------------------------------------- background job (next batch)

const job = {
  box: document.getElementById("job"),
  bar: document.getElementById("job-bar"),
  message: document.getElementById("job-message"),
  timer: null,
  show(state) {
    this.box.hidden = state.state !== "running";
    if (state.fraction === null || state.fraction === undefined) this.bar.removeAttribute("value");
    else this.bar.value = state.fraction;
    this.message.textContent = state.message || "selecting the next batch…";
  },
  async poll() {
    let state;
    try {
      state = await getJSON("/api/job");
    } catch (error) {
      notice("lost contact with the server: " + error.message, "error");
      this.timer = setTimeout(() => this.poll(), 2000);
      return;
    }
    this.show(state);
    if (state.state === "running") {
      this.timer = setTimeout(() => this.poll(), JOB_POLL_MS);
      return;
    }
    this.timer = null;
    if (state.state === "failed") notice("selecting the next batch failed: " + state.error, "error");
    if (state.state === "done" && typeof grid !== "undefined" && grid) grid.reloadWhenSaved();
    else if (state.state === "done" && document.body.classList.contains("view-label")) {
      location.reload();
    }
  },
  async start() {
    try {
      this.show(await post("/api/next", {}));
    } catch (error) {
      notice("cannot start the next batch: " + error.message, "error");
      return;
    }
    if (!this.timer) this.poll();
  },
};

// ---------------------------------------------------------------- the labeling grid

class Grid {
  constructor(root) {
    this.root = root;
    this.cards = Array.from(root.querySelectorAll(".card"));
    this.byId = new Map(this.cards.map((card) => [card.dataset.id, card]));
    this.batch = root.dataset.batch;
    this.current = 0;
    this.inflight = 0;
    this.waiting = null; // resolve functions waiting for every save to finish
    this.queue = Promise.resolve(); // the answers still to send, in typing order
    this.writes = 0; // counts this tab's writes, so a poll that raced one is not trusted
    this.keys = new Map();
    this.cards.forEach((card) => (card.dataset.saved = card.dataset.answer));
    (this.cards.length ? this.cards[0] : root).querySelectorAll(".answer").forEach((button) => {
      const kbd = button.querySelector("kbd");
      if (kbd) this.keys.set(kbd.textContent.trim(), button.dataset.answer);
    });
    root.addEventListener("click", (event) => {
      const card = event.target.closest(".card");
      if (!card) return;
      this.focus(this.cards.indexOf(card), false);
      const button = event.target.closest("button.answer");
      if (button) this.answer(card, button.dataset.answer);
    });
    // A new batch (after Enter, or a reload) opens on its first unanswered card, in view: the
    // browser's restored scroll position belongs to the previous batch.
    if ("scrollRestoration" in history) history.scrollRestoration = "manual";
    const first = this.cards.findIndex((card) => !card.dataset.answer);
    if (first <= 0) window.scrollTo(0, 0);
    this.focus(first < 0 ? 0 : first, first > 0);
    setTimeout(() => this.poll(), POLL_MS);
  }

  // The current card is the one the answer keys answer: it gets the keyboard focus and, when
  // `scroll`, is brought into view (below the sticky top bar, see .card's scroll-margin).
  focus(index, scroll = true) {
    if (!this.cards.length) return;
    index = Math.max(0, Math.min(this.cards.length - 1, index));
    this.cards[this.current].classList.remove("current");
    this.current = index;
    const card = this.cards[index];
    card.classList.add("current");
    card.focus({ preventScroll: true });
    if (scroll) card.scrollIntoView({ block: "nearest" });
  }

  columns() {
    const top = this.cards[0].offsetTop;
    const n = this.cards.findIndex((card) => card.offsetTop !== top);
    return n < 0 ? this.cards.length : n;
  }

  setState(card, text, kind) {
    const state = card.querySelector(".state");
    state.textContent = text;
    state.dataset.kind = kind;
  }

  show(card, answer, version) {
    card.dataset.answer = answer === null || answer === undefined ? "" : String(answer);
    if (version !== undefined) {
      // version given: this is the server's state of the card
      card.dataset.version = version === null ? "" : String(version);
      card.dataset.saved = card.dataset.answer;
    }
    card.classList.toggle("answered", card.dataset.answer !== "");
    card.querySelectorAll(".answer").forEach((button) => {
      button.setAttribute("aria-pressed", String(button.dataset.answer === card.dataset.answer));
    });
    const count = document.getElementById("answered-count");
    if (count) count.textContent = this.cards.filter((c) => c.dataset.answer !== "").length;
  }

  version(element) {
    return element.dataset.version === "" ? null : Number(element.dataset.version);
  }

  // Answers are sent one after the other, in the order they were typed, each with the version
  // its card shows: the store's order is the typing order (so undo takes back the last key),
  // and a quick y-then-n on one card is two ordered writes, not a conflict with itself.
  answer(card, answer) {
    this.show(card, answer);
    this.setState(card, "saving…", "saving");
    this.inflight += 1;
    this.writes += 1;
    card.dataset.pending = String(Number(card.dataset.pending || 0) + 1);
    const next = this.cards.findIndex((c, i) => i > this.current && !c.dataset.answer);
    if (next >= 0) this.focus(next);
    this.queue = this.queue.then(() => this.save(card, answer));
    return this.queue;
  }

  async save(card, answer) {
    try {
      const saved = await post("/api/answer", {
        id: card.dataset.id, answer: answer, version: this.version(card),
      });
      if (Number(card.dataset.pending) === 1) {
        this.show(card, saved.answer, saved.version);
        this.setState(card, "saved", "saved");
      } else {  // a later answer to this card is on its way: keep showing that one
        card.dataset.version = String(saved.version);
        card.dataset.saved = String(saved.answer);
      }
      if (saved.replaced) {
        notice(`${card.dataset.id}: your answer replaced "${saved.replaced.answer}" given by ` +
               `${saved.replaced.who} in another tab or process`, "warn");
      }
    } catch (error) {
      this.show(card, card.dataset.saved === undefined ? card.dataset.answer : card.dataset.saved);
      this.setState(card, "not saved: " + error.message, "error");
      notice(`answer for ${card.dataset.id} not saved: ${error.message}`, "error");
    } finally {
      card.dataset.pending = String(Number(card.dataset.pending) - 1);
      this.inflight -= 1;
      this.writes += 1;
      if (this.inflight === 0 && this.waiting) {
        this.waiting.forEach((resolve) => resolve());
        this.waiting = null;
      }
    }
  }

  settled() {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => (this.waiting = (this.waiting || []).concat([resolve])));
  }

  // Once the next batch is loading, answer keys are refused with a notice rather than typed
  // into a page about to go away.
  async reloadWhenSaved() {
    this.leaving = true;
    await this.settled();
    location.reload();
  }

  async undo() {
    await this.settled();
    let undone;
    this.writes += 1;
    try {
      undone = await post("/api/undo", { last: 1 });
    } catch (error) {
      notice("undo failed: " + error.message, "error");
      return;
    } finally {
      this.writes += 1;
    }
    for (const item of undone.items) {
      const card = this.byId.get(String(item.id));
      if (card) {
        this.show(card, item.answer, item.version);
        this.setState(card, item.answer === null ? "undone" : "undone (back to earlier answer)", "saved");
        this.focus(this.cards.indexOf(card));
      } else {
        notice(`undid the answer for ${item.id} (not in this batch)`, "info");
      }
    }
    if (!undone.items.length) notice("nothing to undo", "info");
  }

  // Another tab or process may answer the same items: the later answer wins, this tab is told.
  async poll() {
    try {
      const writes = this.writes;
      const state = await getJSON("/api/batch");
      if (writes !== this.writes || this.inflight > 0) {
        setTimeout(() => this.poll(), POLL_MS); // this tab wrote meanwhile: the reply may be stale
        return;
      }
      document.getElementById("status-line").textContent = state.status_line;
      if (state.batch !== this.batch) {
        if (!job.timer) {
          notice("a new batch was selected elsewhere; loading it", "warn");
          await this.reloadWhenSaved();
        }
        return;
      }
      for (const item of state.items) {
        const card = this.byId.get(String(item.id));
        if (!card || Number(card.dataset.pending || 0) > 0) continue;
        if (item.version === this.version(card)) continue;
        const answer = item.answer === null ? "" : String(item.answer);
        const changed = answer !== card.dataset.answer;
        this.show(card, item.answer, item.version);
        if (changed) {
          this.setState(card, "changed in another tab or process", "warn");
          notice(`${item.id} is now "${answer || "unanswered"}": changed in another tab or process`,
                 "warn");
        }
      }
    } catch (error) {
      /* the server may be restarting; try again */
    }
    setTimeout(() => this.poll(), POLL_MS);
  }

  onKey(event) {
    const card = this.cards[this.current];
    const key = event.key;
    if (this.leaving && (this.keys.has(key) || key === "u")) {
      notice("loading the next batch: answer it in a moment", "info");
    } else if (this.keys.has(key)) {
      this.answer(card, this.keys.get(key));
    } else if (key === "ArrowRight") this.focus(this.current + 1);
    else if (key === "ArrowLeft") this.focus(this.current - 1);
    else if (key === "ArrowDown") this.focus(this.current + this.columns());
    else if (key === "ArrowUp") this.focus(this.current - this.columns());
    else if (key === "u") this.undo();
    else if (key === "t") {
      const details = card.querySelector("details");
      if (details) details.open = !details.open;
    } else if (key === "i") location.href = card.querySelector("a.item-id").href;
    else return false;
    return true;
  }
}

const gridRoot = document.getElementById("grid");
const itemAnswers = document.querySelector(".item-answers");
const grid = gridRoot ? new Grid(gridRoot) : null;

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest("input, textarea, select")) return;
  let handled = false;
  if (event.key === "Enter" && document.body.classList.contains("view-label")) {
    job.start();
    handled = true;
  } else if (grid) {
    handled = grid.onKey(event);
  } else if (itemAnswers) {  // the item view: the same answer keys
    const button = Array.from(itemAnswers.querySelectorAll("button.answer")).find((b) => {
      const kbd = b.querySelector("kbd");
      return kbd && kbd.textContent.trim() === event.key;
    });
    if (button) button.click();
    handled = Boolean(button);
  } else if (event.key === "u" && document.body.classList.contains("view-label")) {
    post("/api/undo", { last: 1 }).then(() => location.reload(), (e) => notice(e.message, "error"));
    handled = true;
  }
  if (handled) event.preventDefault();
});

const nextButton = document.getElementById("next-batch");
if (nextButton) nextButton.addEventListener("click", () => job.start());
const undoButton = document.getElementById("undo");
if (undoButton) undoButton.addEventListener("click", () => (grid ? grid.undo() : null));

// Item view: answer the item shown.
document.querySelectorAll(".item-answers button.answer").forEach((button) => {
  button.addEventListener("click", async () => {
    const root = button.closest(".item-answers");
    try {
      const saved = await post("/api/answer", {
        id: root.dataset.id, answer: button.dataset.answer,
        version: root.dataset.version === "" ? null : Number(root.dataset.version),
      });
      root.dataset.version = String(saved.version);
      root.querySelectorAll("button.answer").forEach((b) =>
        b.setAttribute("aria-pressed", String(b.dataset.answer === String(saved.answer))));
      root.querySelector(".state").textContent = "saved";
    } catch (error) {
      root.querySelector(".state").textContent = "not saved: " + error.message;
    }
  });
});

// A job started in another tab (or before a reload) shows its progress here too.
getJSON("/api/job").then((state) => {
  job.show(state);
  if (state.state === "running") job.poll();
}, () => {});

// ---------------------------------------------------------------- progress: ask for an audit batch

const auditForm = document.getElementById("audit-form");
if (auditForm) {
  auditForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const n = Number(auditForm.elements.n.value);
    try {
      await post("/api/audit", { n });
      window.location.href = "/label";
    } catch (error) {
      notice(error.message, "error");
    }
  });
}
