// Bosun console: keeps a page live from the Server-Sent Events stream named by <body data-stream>.
// The server renders every part; this only puts what it sends in place (no framework, no inline code,
// nothing from another origin). EventSource reconnects by itself when the stream breaks.
"use strict";

// What was shown when, for whoever wants to measure it: [{phase, at (ms since the epoch)}].
window.bosunShown = [];

function fragment(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return template.content.firstElementChild;
}

function problem(text) {
  const box = document.getElementById("problem");
  box.replaceChildren(Object.assign(document.createElement("pre"), { textContent: text }));
  box.hidden = false;
}

function refreshEmpty() {
  for (const id of ["mine", "all"]) {
    const body = document.getElementById(id);
    const empty = document.getElementById(id + "-empty");
    if (body && empty) empty.hidden = body.children.length > 0;
  }
}

function onRow(data) {
  const row = fragment(data.html);
  const old = document.getElementById(row.id);
  const target = document.getElementById(data.mine ? "mine" : "all");
  if (old && old.parentElement === target) {
    old.replaceWith(row);
  } else {
    if (old) old.remove();
    if (target) target.prepend(row);
  }
  refreshEmpty();
}

function onGone(data) {
  const old = document.getElementById("row-" + data.key);
  if (old) old.remove();
  refreshEmpty();
}

function onParts(data) {
  for (const [name, html] of Object.entries(data.parts)) {
    const old = document.getElementById("part-" + name);
    if (!old) continue;
    // A half-filled decision form is kept while the proposal it decides stays the same.
    const form = old.querySelector("form#decide");
    const next = fragment(html);
    const nextHash = next.querySelector("input[name=hash]");
    if (form && nextHash && form.elements.hash.value === nextHash.value && form.contains(document.activeElement)) continue;
    old.replaceWith(next);
  }
  window.bosunShown.push({ phase: data.phase, at: Date.now() });
}

function onEvent(data) {
  const list = document.getElementById("events");
  if (!list || document.getElementById("event-" + data.key)) return;
  list.append(fragment(data.html));
}

function onNote(data) {
  const note = document.getElementById("events-note");
  if (note) {
    note.textContent = data.html;
    note.hidden = false;
  }
}

function connect(url) {
  const live = document.getElementById("live");
  const source = new EventSource(url);
  const handlers = { row: onRow, gone: onGone, parts: onParts, event: onEvent, note: onNote };
  for (const [name, handle] of Object.entries(handlers)) {
    source.addEventListener(name, (message) => handle(JSON.parse(message.data)));
  }
  source.addEventListener("problem", (message) => {
    problem(JSON.parse(message.data).html);
    source.close();
    live.hidden = true;
  });
  source.addEventListener("open", () => {
    live.hidden = false;
    live.textContent = "live";
    document.body.dataset.live = "true";
  });
  source.addEventListener("error", () => {
    if (source.readyState !== EventSource.CLOSED) live.textContent = "reconnecting…";
  });
}

document.addEventListener("DOMContentLoaded", () => {
  refreshEmpty();
  const url = document.body.dataset.stream;
  if (url) connect(url);
});
