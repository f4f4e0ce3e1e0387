// The workflow page's one script: every second it reads each pipeline's state counts from
// /api/pipelines/NAME/states (a state machine's from /api/machines/NAME/states) and writes
// them into the drawing (the <g class="state"> of each
// state, by its data-state name) and the dead-letter table. It only reads; nothing here can
// change a pipeline.
"use strict";
(function () {
  const sections = Array.from(document.querySelectorAll("section.pipeline"));
  const fmt = (n) => (n >= 1e6 ? (n / 1e6).toFixed(1) + "M" : n >= 1e4 ? (n / 1e3).toFixed(0) + "k" : String(n));
  const svgNs = "http://www.w3.org/2000/svg";

  function statesOf(section) {
    const byName = new Map();
    for (const g of section.querySelectorAll("g.state")) byName.set(g.getAttribute("data-state"), g);
    return byName;
  }

  function tooltip(g, text) {
    let t = null;
    for (const c of g.children) if (c.tagName.toLowerCase() === "title") t = c;
    if (!t) {
      t = document.createElementNS(svgNs, "title");
      g.insertBefore(t, g.firstChild);
    }
    t.textContent = text;
  }

  function show(section, data) {
    const byName = statesOf(section);
    for (const s of data.states) {
      const g = byName.get(s.name);
      if (!g) continue;
      g.setAttribute("data-entered", s.entered);
      g.setAttribute("data-failed", s.failed);
      g.classList.toggle("active", s.entered > 0);
      g.classList.toggle("failing", s.failed > 0);
      const counts = g.querySelector("text.counts");
      if (counts) {
        let line = fmt(s.entered) + " in";
        if (s.failed > 0) line += " \u00b7 " + fmt(s.failed) + " failed";
        else if (s.caught > 0) line += " \u00b7 " + fmt(s.caught) + " caught";
        counts.textContent = line;
      }
      const rate = s.entered > 0 ? ((100 * s.failed) / s.entered).toFixed(1) + "%" : "-";
      const errors = s.errors.map((e) => "  " + e.error + ": " + e.count).join("\n");
      tooltip(
        g,
        s.name + "\nentered " + s.entered + ", succeeded " + s.succeeded + ", failed " + s.failed +
          " (" + rate + "), retried " + s.retried + ", caught " + s.caught +
          (s.p50_ms != null ? "\ntime in state p50 < " + s.p50_ms + " ms, p99 < " + s.p99_ms + " ms" : "") +
          (errors ? "\nfailures:\n" + errors : "")
      );
    }
    section.setAttribute("data-updated", String(Date.now()));
    // A state machine of the API has counts only (its executions answer their callers).
    if (!data.dead_letters) return;
    const last = data.dead_letters.length ? data.dead_letters[data.dead_letters.length - 1].state : null;
    for (const [name, g] of byName) g.classList.toggle("last-failed", name === last);
    const ex = data.executions;
    section.querySelector(".totals").textContent =
      ex.SUCCEEDED + " succeeded \u00b7 " + ex.FAILED + " failed \u00b7 " + ex.TIMED_OUT +
      " timed out \u00b7 " + ex.REJECTED + " rejected";
    const body = section.querySelector("table.dead tbody");
    body.textContent = "";
    for (const d of data.dead_letters.slice().reverse()) {
      const tr = document.createElement("tr");
      const src = d.source.topic + "/" + d.source.partition + "/" + d.source.offset;
      for (const cell of [new Date(d.at_ms).toISOString().slice(11, 23), d.state || "-", d.error, d.cause, src]) {
        const td = document.createElement("td");
        td.textContent = cell;
        tr.appendChild(td);
      }
      tr.addEventListener("mouseenter", () => byName.get(d.state)?.classList.add("pointed"));
      tr.addEventListener("mouseleave", () => byName.get(d.state)?.classList.remove("pointed"));
      body.appendChild(tr);
    }
    section.querySelector(".dead-empty").hidden = data.dead_letters.length > 0;
  }

  async function refresh() {
    for (const section of sections) {
      const machine = section.getAttribute("data-machine");
      const name = machine ?? section.getAttribute("data-pipeline");
      const url = (machine != null ? "api/machines/" : "api/pipelines/") + encodeURIComponent(name) + "/states";
      try {
        const r = await fetch(url, { cache: "no-store" });
        if (r.ok) {
          show(section, await r.json());
          section.classList.remove("stale");
        } else section.classList.add("stale");
      } catch (e) {
        section.classList.add("stale");
      }
    }
    setTimeout(refresh, 1000);
  }
  refresh();
})();
