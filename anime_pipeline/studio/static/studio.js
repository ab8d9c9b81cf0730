// The studio's only script: reviewer name, keyboard and click review, chapter seeking.
"use strict";
(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const reviewer = document.getElementById("reviewer");
  const status = document.getElementById("status");
  const NAME_KEY = "anime-pipeline-studio-reviewer";
  const VERB = { approved: "approved", rejected: "rejected", pending: "returned to pending" };

  reviewer.value = localStorage.getItem(NAME_KEY) || "";
  reviewer.addEventListener("change", () => localStorage.setItem(NAME_KEY, reviewer.value.trim()));

  function say(text, isError) {
    status.textContent = text;
    status.className = isError ? "error" : "ok";
  }

  const player = document.getElementById("player");
  for (const button of document.querySelectorAll("[data-seek]")) {
    button.addEventListener("click", () => {
      player.currentTime = Number(button.dataset.seek);
      player.play();
    });
  }

  const queue = document.getElementById("queue");
  if (!queue) return;
  const reason = document.getElementById("reason");
  const selection = document.getElementById("selection");
  const cards = () => [...queue.querySelectorAll(".card")];
  const checked = () => cards().filter((card) => card.querySelector(".select").checked);
  let focused = cards()[0] || null;

  function focusCard(card) {
    if (!card) return;
    if (focused) focused.tabIndex = -1;
    focused = card;
    card.tabIndex = 0;
    card.focus();
  }

  function showSelection() {
    const n = checked().length;
    selection.textContent = n ? `${n} selected` : "";
  }

  async function decide(targets, decision) {
    const user = reviewer.value.trim();
    if (!user) {
      say('Enter your name in "reviewer" first: every decision records who made it.', true);
      reviewer.focus();
      return false;
    }
    if (!targets.length) {
      say("Select images first (space, or the boxes).", true);
      return false;
    }
    localStorage.setItem(NAME_KEY, user);
    const ids = targets.map((card) => card.dataset.id);
    let response, body;
    try {
      response = await fetch(`/api/decisions/${queue.dataset.character}`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({ ids, status: decision, user, reason: reason.value }),
      });
      body = await response.json();
    } catch (error) {
      say(`Not recorded: the studio did not answer (${error.message}). Nothing changed; try again.`, true);
      return false;
    }
    if (!response.ok) {
      say(`Not recorded: ${body.error || response.status}`, true);
      return false;
    }
    const byId = new Map(body.recorded.map((entry) => [entry.candidate, entry]));
    for (const card of targets) {
      const entry = byId.get(card.dataset.id);
      card.dataset.status = decision;
      card.querySelector('[data-role="status"]').textContent = decision;
      card.querySelector('[data-role="last"]').textContent =
        `${entry.decision} by ${entry.decider}${entry.reason ? `: “${entry.reason}”` : ""} · ${entry.at}`;
      card.querySelector(".select").checked = false;
    }
    reason.value = "";
    showSelection();
    say(`${ids.join(", ")} ${VERB[decision]} by ${user}.`, false);
    return true;
  }

  async function act(decision) {
    const selected = checked();
    const targets = selected.length ? selected : focused ? [focused] : [];
    if (await decide(targets, decision) && !selected.length) {
      const list = cards();
      focusCard(list[list.indexOf(focused) + 1] || focused);
    }
  }

  function columns(list) {
    const top = list[0].offsetTop;
    const n = list.findIndex((card) => card.offsetTop !== top);
    return n === -1 ? list.length : n;
  }

  function move(key) {
    const list = cards();
    if (!list.length) return;
    const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(list), ArrowUp: -columns(list) }[key];
    const index = Math.min(Math.max(list.indexOf(focused) + step, 0), list.length - 1);
    focusCard(list[index]);
  }

  const KEYS = {
    a: () => act("approved"),
    r: () => act("rejected"),
    u: () => act("pending"),
    " ": () => {
      if (!focused) return;
      const box = focused.querySelector(".select");
      box.checked = !box.checked;
      showSelection();
    },
    Escape: () => {
      for (const card of checked()) card.querySelector(".select").checked = false;
      showSelection();
    },
    "/": () => reason.focus(),
  };

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.target.matches("input, textarea, select, button")) {
      return;
    }
    if (event.key.startsWith("Arrow")) {
      event.preventDefault();
      move(event.key);
    } else if (KEYS[event.key]) {
      event.preventDefault();
      KEYS[event.key]();
    }
  });

  reason.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      focusCard(focused);
    }
  });

  queue.addEventListener("click", (event) => {
    const card = event.target.closest(".card");
    if (!card) return;
    const button = event.target.closest("[data-decide]");
    if (button) {
      focusCard(card);
      decide([card], button.dataset.decide);
    } else if (event.target.matches(".select")) {
      focusCard(card);
      showSelection();
    } else if (!event.target.closest("a, summary")) {
      focusCard(card);
    }
  });

  for (const button of queue.querySelectorAll("[data-bulk]")) {
    button.addEventListener("click", async () => {
      await decide(checked(), button.dataset.bulk);
      focusCard(focused);
    });
  }
  document.getElementById("select-all").addEventListener("click", () => {
    for (const card of cards()) card.querySelector(".select").checked = true;
    showSelection();
  });
})();
