// limitlab review: the grid view (filters, selection, batch decisions, the confusion matrix).
// Loaded before app.js, whose globals (S, api, post, el, toast, imgUrl, setView, show) these use.
"use strict";

function filters() {
  return { given: $("f-given").value, suggested: $("f-suggested").value, decision: $("f-decision").value,
    min_score: $("f-score").value, flagged: $("f-flagged").checked ? "1" : "" };
}

async function loadGrid() {
  const q = new URLSearchParams({ ...filters(), offset: S.grid.offset, limit: S.page });
  const r = await api(`/api/suspects?${q}`);
  S.grid.rows = r.rows; S.grid.total = r.total;
  $("grid-count").textContent = `${r.total} match`;
  const last = Math.min(r.offset + r.rows.length, r.total);
  $("page-info").textContent = r.total ? `${r.offset + 1}–${last} of ${r.total}` : "none";
  renderTiles();
  await loadConfusion();
  S.grid.loads += 1;
  document.body.dataset.gridLoads = String(S.grid.loads);  // tests wait on it
}

function renderTiles() {
  const box = $("tiles");
  box.textContent = "";
  S.grid.rows.forEach((row, k) => {
    const cls = ["tile"];
    if (S.grid.selected.has(row.id)) cls.push("selected");
    if (row.decision) cls.push(`d-${row.decision}`);
    const tile = el("div", { class: cls.join(" "), "data-id": String(row.id) });
    if (S.kind === "image") tile.append(el("img", { src: imgUrl(row.split, row.index, "thumb"), alt: "", loading: "lazy" }));
    tile.append(el("div", { class: "cap", text: `${row.given} → ${row.suggested}` }),
      el("div", { class: "sub", text: `#${row.rank} · ${row.score}${row.decision ? ` · ${row.decision}${row.label ? " " + row.label : ""}` : ""}` }));
    tile.addEventListener("click", (e) => select(k, e));
    tile.addEventListener("dblclick", () => { setView("card"); show(row.id); });
    box.append(tile);
  });
  $("selected-count").textContent = `${S.grid.selected.size} selected`;
}

function select(k, e) {
  const id = S.grid.rows[k].id;
  if (e.shiftKey && S.grid.anchor !== null) {
    const a = S.grid.rows.findIndex((r) => r.id === S.grid.anchor);
    const [lo, hi] = a < 0 ? [k, k] : [Math.min(a, k), Math.max(a, k)];
    for (let j = lo; j <= hi; j++) S.grid.selected.add(S.grid.rows[j].id);
  } else if (e.ctrlKey || e.metaKey) {
    if (S.grid.selected.has(id)) S.grid.selected.delete(id); else S.grid.selected.add(id);
    S.grid.anchor = id;
  } else {
    S.grid.selected = new Set([id]); S.grid.anchor = id;
  }
  renderTiles();
}

async function batch(decision, label) {
  const ids = [...S.grid.selected];
  if (!ids.length) { toast("select suspects first (click, shift-click)"); return; }
  const body = { ids, decision };
  if (label !== undefined) body.label = label;
  await post("/api/decide", body);
  toast(`${decision}: ${ids.length} suspect${ids.length > 1 ? "s" : ""}`);
  S.grid.selected.clear(); S.cards.clear();
  loadGrid();
}

async function bulkAsk() {
  const q = new URLSearchParams({ ...filters(), decision: "undecided", offset: 0, limit: 0 });
  const r = await api(`/api/suspects?${q}`);
  const f = filters();
  const what = `${f.given ? S.classes[f.given] : "any"} → ${f.suggested ? S.classes[f.suggested] : "suggested"}`;
  const button = $("bulk-confirm");
  button.textContent = `Accept ${r.total} suggestion${r.total === 1 ? "" : "s"} (${what}${f.min_score ? `, score ≥ ${f.min_score}` : ""})`;
  button.hidden = false; $("bulk-cancel").hidden = false; button.disabled = r.total === 0;
}

async function bulkDo() {
  const filter = { ...filters(), decision: "undecided" };
  const r = await post("/api/decide", { filter, decision: "accept" });
  bulkCancel();
  toast(`accepted ${r ? r.decided.length : 0} suggestions`);
  S.cards.clear();
  loadGrid();
}

function bulkCancel() { $("bulk-confirm").hidden = true; $("bulk-cancel").hidden = true; }

async function loadConfusion() {
  const r = await api("/api/confusion");
  const t = $("confusion");
  t.textContent = "";
  const k = S.classes.length;
  if (k > 20) { t.append(el("tr", {}, el("td", { text: "(more than 20 classes: use the filters)" }))); return; }
  const head = el("tr", {}, el("th", { text: "given \\ sugg." }));
  S.classes.forEach((name) => head.append(el("th", { text: name })));
  t.append(head);
  r.counts.forEach((row, a) => {
    const tr = el("tr", {}, el("th", { text: S.classes[a] }));
    row.forEach((n, b) => {
      const open = r.undecided[a][b];
      const td = el("td", { text: n ? String(n) : "", title: n ? `${open} undecided` : "" });
      if (n) {
        td.className = open ? "cell open" : "cell done";
        td.style.setProperty("--w", String(Math.min(1, n / 20)));
        td.addEventListener("click", () => {
          $("f-given").value = String(a); $("f-suggested").value = String(b); S.grid.offset = 0; bulkCancel(); loadGrid();
        });
      }
      tr.append(td);
    });
    t.append(tr);
  });
}

