// limitlab review: the page's behaviour. Plain JS, no libraries, no build step. Everything the server
// sends is put into the page as text (textContent), never as HTML.
"use strict";

const TOKEN = document.querySelector('meta[name="review-token"]').content;
const $ = (id) => document.getElementById(id);
const S = {
  classes: [], n: 0, kind: "image", page: 100, cur: 0, card: null,
  cards: new Map(), queue: Promise.resolve(), view: "card",
  timings: [], pressed: null,  // ms from a decision's key press to the next card on screen (tests read them)
  grid: { offset: 0, rows: [], total: 0, selected: new Set(), anchor: null, loads: 0 },
  search: { items: [], pos: 0 },
};

// ------------------------------------------------------------------ server
async function api(path, body) {
  const opts = { credentials: "same-origin" };
  if (body !== undefined) {
    Object.assign(opts, { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "X-Review-Token": TOKEN } });
  }
  const r = await fetch(path, opts);
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

function post(path, body) {  // decisions go to the server one after another, in the order they were made
  const p = S.queue.then(() => api(path, body));
  S.queue = p.then((r) => { showSummary(r.summary); return r; }).catch((e) => toast(`not saved: ${e.message}`));
  return S.queue;
}

const imgUrl = (split, index, size) => `/img/${encodeURIComponent(split)}/${index}.png?size=${size}`;

function getCard(i) {
  if (!S.cards.has(i)) S.cards.set(i, api(`/api/card/${i}`).catch((e) => { S.cards.delete(i); throw e; }));
  return S.cards.get(i);
}

function prefetch(i) {
  for (let j = i + 1; j <= i + 5 && j < S.n; j++) {
    getCard(j).then((c) => {
      if (S.kind !== "image") return;
      new Image().src = imgUrl(c.split, c.index, "card");
      for (const nb of [...c.neighbours.given, ...c.neighbours.suggested]) new Image().src = imgUrl(nb.split, nb.index, "thumb");
    }).catch(() => {});
  }
}

// ------------------------------------------------------------------ helpers
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}
const fmt = (v) => (typeof v === "number" && !Number.isInteger(v) ? String(Number(v.toPrecision(4))) : String(v));
const pct = (p) => (p === null || p === undefined ? "" : `${Math.round(p * 100)}%`);

function toast(text) {
  const t = $("toast");
  t.textContent = text; t.hidden = false;
  clearTimeout(toast.timer); toast.timer = setTimeout(() => { t.hidden = true; }, 2500);
}

function decisionText(d) {
  if (!d) return "";
  const name = d.label !== undefined && d.label !== null ? ` → ${S.classes[d.label]}` : "";
  return `${d.decision}${name}`;
}

function showSummary(s) {
  if (!s) return;
  const counts = Object.entries(s.counts).filter(([, n]) => n).map(([d, n]) => `${d} ${n}`);
  const line = $("summary");
  line.textContent = "";
  line.append(el("span", { class: "big", text: `${s.decided} decided` }), el("span", { text: ` · ${s.to_go} to go of ${s.flagged} flagged` }));
  if (counts.length) line.append(el("span", { class: "counts", text: ` · ${counts.join(" · ")}` }));
  if (s.judged !== undefined) {
    line.append(el("span", { class: "right", text: ` · ${s.right} of ${s.judged} decisions right (true labels known)` }));
  }
  $("bar-fill").style.width = s.flagged ? `${(100 * (s.flagged - s.to_go)) / s.flagged}%` : "0";
}

// ------------------------------------------------------------------ card view
async function show(i) {
  i = Math.max(0, i);
  S.cur = i;
  if (i >= S.n) {
    $("card").hidden = true; $("all-done").hidden = false; S.card = null; return;
  }
  const c = await getCard(i);
  if (S.cur !== i) return;
  S.card = c;
  render(c);
  prefetch(i);
}

function render(c) {
  $("all-done").hidden = true; $("card").hidden = false;
  $("rank").textContent = `#${c.rank} of ${S.n}`;
  $("score").textContent = `score ${c.score}${c.split !== "train" ? ` · ${c.split}` : ""} · index ${c.index}`;
  const badge = $("decision-badge");
  badge.textContent = decisionText(c.decision); badge.className = c.decision ? `badge ${c.decision.decision}` : "badge";
  $("given").textContent = c.given.name;
  $("suggested").textContent = `${c.suggested.name}`;
  const img = $("example-image"), row = $("example-row");
  if (c.kind === "image") {
    img.src = c.image_data || imgUrl(c.split, c.index, "card"); img.hidden = false; row.hidden = true;
  } else {
    img.hidden = true; row.hidden = false; row.textContent = "";
    for (const col of c.row.columns) {
      const v = col.value === null ? "" : fmt(col.value);
      row.append(el("tr", col.marked ? { class: "marked" } : {}, el("th", { text: col.name }), el("td", { text: v })));
    }
    if (c.row.marked.length) {
      const notes = c.row.marked.map((m) => (m.feature.includes("=")
        ? `${m.feature.replace("=", " = ")} in ${pct(m.given_mean)} of ${c.given.name}, ${pct(m.suggested_mean)} of ${c.suggested.name}`
        : `${m.feature}: ${c.given.name} average ${fmt(m.given_mean)}, ${c.suggested.name} average ${fmt(m.suggested_mean)}`));
      row.append(el("tr", { class: "note" }, el("td", { colspan: "2",
        text: `marked: these values look more like ${c.suggested.name} than ${c.given.name} — ${notes.join("; ")}` })));
    }
  }
  const list = $("choices");
  list.textContent = "";
  c.choices.forEach((ch, k) => {
    const cls = ["choice"];
    if (ch.id === c.given.id) cls.push("is-given");
    if (ch.id === c.suggested.id) cls.push("is-suggested");
    if (c.decision && c.decision.label === ch.id) cls.push("is-chosen");
    const bar = el("span", { class: "pbar" }); bar.style.width = `${Math.round((ch.p || 0) * 100)}%`;
    const item = el("li", { class: cls.join(" "), title: "click or press the number" },
      el("kbd", { text: String(k + 1) }), el("span", { class: "name", text: ch.name }),
      el("span", { class: "p", text: pct(ch.p) }), el("span", { class: "ptrack" }, bar));
    item.addEventListener("click", () => pick(ch.id));
    list.append(item);
  });
  for (const side of ["given", "suggested"]) {
    $(`nb-${side}-name`).textContent = c[side].name;
    const strip = $(`nb-${side}`);
    strip.textContent = "";
    for (const nb of c.neighbours[side]) {
      if (c.kind === "image") {
        strip.append(el("figure", {}, el("img", { src: imgUrl(nb.split, nb.index, "thumb"), alt: "", title: `index ${nb.index}` }),
          el("figcaption", { text: `${Math.round(nb.similarity * 100)}%` })));
      } else {
        strip.append(el("span", { class: "nb-row", text: `#${nb.index} (${Math.round(nb.similarity * 100)}%)` }));
      }
    }
  }
  document.body.dataset.card = String(c.id);
  if (S.pressed !== null) {
    const t0 = S.pressed;
    S.pressed = null;
    requestAnimationFrame(() => S.timings.push(performance.now() - t0));
  }
}

function decide(decision, label) {
  const c = S.card;
  if (!c) return;
  if (decision === "accept") label = c.suggested.id;
  const body = { ids: [c.id], decision };
  if (label !== undefined && label !== null) body.label = label;
  c.decision = { decision, label: body.label };
  S.pressed = performance.now();
  post("/api/decide", body);
  show(c.id + 1);
}

function pick(cls) {
  if (!S.card) return;
  if (cls === S.card.given.id) decide("keep");
  else if (cls === S.card.suggested.id) decide("accept");
  else decide("relabel", cls);
}

async function undo() {
  await S.queue;
  const r = await api("/api/undo", {});
  showSummary(r.summary);
  if (!r.undone.length) { toast("nothing to undo"); return; }
  for (const i of r.undone) S.cards.delete(i);
  toast(`undone: ${r.undone.length} decision${r.undone.length > 1 ? "s" : ""}`);
  if (S.view === "grid") loadGrid(); else show(Math.min(...r.undone));
}

// ------------------------------------------------------------------ class search
function openSearch(initial) {
  const input = $("class-search");
  input.value = initial; input.focus();
  updateSearch();
}

function updateSearch() {
  const q = $("class-search").value.trim().toLowerCase();
  const list = $("search-results");
  list.textContent = "";
  if (!q) { list.hidden = true; S.search.items = []; return; }
  const starts = [], contains = [];
  S.classes.forEach((name, id) => {
    const n = name.toLowerCase();
    if (n.startsWith(q)) starts.push(id); else if (n.includes(q)) contains.push(id);
  });
  S.search.items = [...starts, ...contains].slice(0, 8);
  S.search.pos = 0;
  S.search.items.forEach((id, k) => {
    const li = el("li", { class: k === 0 ? "active" : "", text: S.classes[id] });
    li.addEventListener("mousedown", (e) => { e.preventDefault(); closeSearch(); pick(id); });
    list.append(li);
  });
  list.hidden = S.search.items.length === 0;
}

function closeSearch() {
  const input = $("class-search");
  input.value = ""; input.blur(); $("search-results").hidden = true; S.search.items = [];
}

function searchKey(e) {
  const items = S.search.items;
  if (e.key === "Escape") { closeSearch(); e.preventDefault(); return; }
  if (e.key === "Enter") {
    e.preventDefault();
    const id = items[S.search.pos];
    closeSearch();
    if (id !== undefined) pick(id);
    return;
  }
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    S.search.pos = (S.search.pos + (e.key === "ArrowDown" ? 1 : items.length - 1)) % Math.max(items.length, 1);
    [...$("search-results").children].forEach((li, k) => li.classList.toggle("active", k === S.search.pos));
  }
}

// ------------------------------------------------------------------ keys
const SHORTCUTS = new Set(["w", "q", "e", "n", "s", "g", "c"]);

function onKey(e) {
  if (!$("help").hidden) { $("help").hidden = true; e.preventDefault(); return; }
  if (e.target === $("class-search")) { searchKey(e); return; }
  if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
  if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") { e.preventDefault(); undo(); return; }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  if (k === "?") { $("help").hidden = false; e.preventDefault(); return; }
  if (k === "g") { setView("grid"); return; }
  if (k === "c") { setView("card"); return; }
  if (S.view !== "card") return;
  const actions = {
    w: () => decide("accept"), Enter: () => decide("accept"), q: () => decide("keep"), e: () => decide("exclude"),
    n: () => decide("unsure"), s: () => show(S.cur + 1), ArrowRight: () => show(S.cur + 1),
    ArrowLeft: () => show(S.cur - 1), "/": () => openSearch(""),
  };
  if (actions[k]) { e.preventDefault(); actions[k](); return; }
  if (/^[1-9]$/.test(k) && S.card) {
    const ch = S.card.choices[Number(k) - 1];
    if (ch) { e.preventDefault(); pick(ch.id); }
    return;
  }
  if (/^[a-z]$/.test(k) && !SHORTCUTS.has(k)) { e.preventDefault(); openSearch(e.key); }
}

function setView(v) {
  S.view = v;
  $("card-view").hidden = v !== "card"; $("grid-view").hidden = v !== "grid";
  $("tab-card").classList.toggle("active", v === "card"); $("tab-grid").classList.toggle("active", v === "grid");
  if (v === "grid") loadGrid(); else { S.cards.clear(); show(S.cur); }
}

// ------------------------------------------------------------------ start
async function start() {
  const boot = JSON.parse($("boot").textContent);  // the state and the first card came with the page
  const st = boot.state;
  S.cards.set(boot.card.id, Promise.resolve(boot.card));
  Object.assign(S, { classes: st.classes, n: st.n, kind: st.kind, page: st.page });
  showSummary(st.summary);
  for (const id of ["f-given", "f-suggested", "batch-relabel"]) {
    const s = $(id);
    s.append(el("option", { value: "", text: id === "batch-relabel" ? "choose…" : "any" }));
    st.classes.forEach((name, c) => s.append(el("option", { value: String(c), text: name })));
  }
  if (st.done_button) {
    $("done-button").hidden = false;
    $("done-button").addEventListener("click", async () => {
      await S.queue; await api("/api/done", {});
      document.body.textContent = ""; document.body.append(el("p", { class: "finished", text: "Done: the labels went back to Python. You can close this tab." }));
    });
  }
  document.addEventListener("keydown", onKey);
  $("class-search").addEventListener("input", updateSearch);
  $("class-search").addEventListener("blur", () => setTimeout(() => { $("search-results").hidden = true; }, 100));
  document.querySelectorAll("[data-action]").forEach((b) => b.addEventListener("click", () => {
    const a = b.dataset.action;
    if (a === "skip") show(S.cur + 1); else if (a === "back") show(S.cur - 1); else if (a === "undo") undo(); else decide(a);
    b.blur();
  }));
  document.querySelectorAll("[data-batch]").forEach((b) => b.addEventListener("click", () => batch(b.dataset.batch)));
  $("batch-relabel").addEventListener("change", (e) => {
    if (e.target.value !== "") batch("relabel", Number(e.target.value));
    e.target.value = "";
  });
  for (const id of ["f-given", "f-suggested", "f-decision", "f-score", "f-flagged"]) {
    $(id).addEventListener("change", () => { S.grid.offset = 0; bulkCancel(); loadGrid(); });
  }
  $("bulk-accept").addEventListener("click", bulkAsk);
  $("bulk-confirm").addEventListener("click", bulkDo);
  $("bulk-cancel").addEventListener("click", bulkCancel);
  $("prev-page").addEventListener("click", () => { S.grid.offset = Math.max(0, S.grid.offset - S.page); loadGrid(); });
  $("next-page").addEventListener("click", () => { if (S.grid.offset + S.page < S.grid.total) { S.grid.offset += S.page; loadGrid(); } });
  $("tab-card").addEventListener("click", () => setView("card"));
  $("tab-grid").addEventListener("click", () => setView("grid"));
  $("help-button").addEventListener("click", () => { $("help").hidden = false; });
  $("help").addEventListener("click", () => { $("help").hidden = true; });
  await show(st.start);
}

start().catch((e) => { $("summary").textContent = `could not load: ${e.message}`; });
