// nasforge dashboard: fetches JSON from this server and puts it into the page as text
// (textContent, never innerHTML), draws plots with plotly.js, and polls for new results.
"use strict";

(function () {
  const body = document.body;
  const REFRESH = Math.max(250, parseInt(body.dataset.refreshMs || "2000", 10));
  let busy = 0;

  function $(id) { return document.getElementById(id); }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function query(params) {
    const parts = [];
    for (const [k, v] of Object.entries(params)) {
      if (v === undefined || v === null || v === "") continue;
      parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(String(v)));
    }
    return parts.length ? "?" + parts.join("&") : "";
  }

  async function api(path, params) {
    busy += 1;
    try {
      const resp = await fetch(path + query(params || {}), { headers: { Accept: "application/json" } });
      let data = null;
      try { data = await resp.json(); } catch (e) { data = null; }
      if (!resp.ok) {
        const msg = data && data.detail ? data.detail : resp.status + " " + resp.statusText;
        const err = new Error(msg);
        err.status = resp.status;
        throw err;
      }
      return data;
    } finally {
      busy -= 1;
    }
  }

  function showError(message) {
    let box = $("page-error");
    if (!box) {
      box = el("div", null, "banner");
      box.id = "page-error";
      box.setAttribute("role", "alert");
      document.querySelector("main").prepend(box);
    }
    box.textContent = message;
    box.hidden = !message;
  }

  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "number") {
      if (Number.isInteger(v)) return String(v);
      const a = Math.abs(v);
      if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
      return String(parseFloat(v.toPrecision(6)));
    }
    return String(v);
  }

  function fmtTime(t) {
    if (!t) return "–";
    const d = new Date(t * 1000);
    return d.toLocaleString();
  }

  function setLive(on) {
    const live = $("live");
    if (live) live.hidden = !on;
  }

  const plotConfig = { responsive: true, displaylogo: false };
  let plotlyReady = null;

  // plotly.js (several MB) loads in parallel with the first data requests, not before them
  function loadPlotly() {
    if (!plotlyReady) {
      plotlyReady = new Promise((resolve, reject) => {
        if (window.Plotly) { resolve(window.Plotly); return; }
        const s = document.createElement("script");
        s.src = "/static/plotly.min.js";
        s.async = true;
        s.onload = () => resolve(window.Plotly);
        s.onerror = () => reject(new Error("cannot load plotly.js from this server"));
        document.head.appendChild(s);
      });
    }
    return plotlyReady;
  }

  async function plot(div, fig) {
    const Plotly = await loadPlotly();
    await Plotly.react(div, fig.data || [], fig.layout || {}, plotConfig);
  }

  // --- the list of studies -------------------------------------------------------------------
  function studiesPage() {
    const tbody = document.querySelector("#studies tbody");
    let last = "";

    function row(s) {
      const tr = el("tr");
      const name = el("td");
      const a = el("a", s.name);
      a.href = "/study" + query({ name: s.name });
      name.appendChild(a);
      tr.appendChild(name);
      if (s.error) {
        const td = el("td", s.error, "bad");
        td.colSpan = 11;
        tr.appendChild(td);
        return tr;
      }
      const states = s.states || {};
      const objective = (s.metrics || []).map((m, i) => m + " (" + s.directions[i] + ")").join(", ");
      const cells = [s.space, s.estimator, s.strategy, objective, s.state, s.n_trials, states.complete || 0,
        states.failed || 0, s.n_running || 0, s.best ? s.best.value : null, fmtTime(s.last_activity)];
      const numeric = [false, false, false, false, false, true, true, true, true, true, false];
      cells.forEach((c, i) => {
        const td = el("td", fmt(c), numeric[i] ? "num" : null);
        if (i === 4) td.classList.add("state-" + String(c));
        tr.appendChild(td);
      });
      return tr;
    }

    async function load() {
      try {
        const data = await api("/api/studies");
        const key = JSON.stringify(data.studies.map((s) => [s.name, s.token, s.state]));
        if (key !== last) {
          last = key;
          tbody.replaceChildren(...data.studies.map(row));
        }
        $("studies-status").textContent = data.studies.length
          ? data.studies.length + " stud" + (data.studies.length === 1 ? "y" : "ies") + " · updated " +
            new Date().toLocaleTimeString()
          : "No studies in this database yet.";
        showError("");
        setLive(data.studies.some((s) => s.state === "running"));
        body.dataset.ready = "1";
      } catch (e) {
        showError("Cannot read the studies: " + e.message);
      }
      setTimeout(load, REFRESH * 2);
    }
    load();
  }

  // --- one study -----------------------------------------------------------------------------
  function studyPage() {
    loadPlotly().catch((e) => showError(e.message));
    const name = body.dataset.study;
    const state = { sort: "number", desc: false, state: "", q: "", offset: 0, limit: 50, token: null,
      curveX: "trials", selected: null, pinned: false, columns: [], objectives: [] };

    function settingsText(s) {
      const parts = Object.entries(s.settings || {}).map(([k, v]) =>
        k + "=" + (typeof v === "object" ? JSON.stringify(v) : String(v)));
      if (s.constraints && s.constraints.length) parts.push("constraints: " + s.constraints.join("; "));
      return parts.length ? "settings: " + parts.join(", ") : "";
    }

    function renderSummary(s) {
      $("f-space").textContent = s.space || "–";
      $("f-estimator").textContent = s.estimator || "–";
      $("f-strategy").textContent = s.strategy || "–";
      $("f-objective").textContent = (s.metrics || []).map((m, i) => m + " (" + s.directions[i] + ")").join(", ");
      const st = $("f-state");
      st.textContent = s.state + (s.n_running ? " (" + s.n_running + " running" +
        (s.n_waiting ? ", " + s.n_waiting + " queued" : "") + ")" : "");
      st.className = "state-" + s.state;
      $("f-trials").textContent = String(s.n_trials);
      $("f-finished").textContent = String(s.n_finished);
      $("f-best").textContent = s.best ? fmt(s.best.value) + " (trial #" + s.best.number + ")" : "–";
      $("settings").textContent = settingsText(s);
      setLive(s.state === "running");
      const sel = $("curve-x");
      if (sel.options.length !== (s.curve_axes || []).length) {
        sel.replaceChildren(...s.curve_axes.map((x) => {
          const o = el("option", x);
          o.value = x;
          return o;
        }));
        sel.value = state.curveX;
      }
      const sf = $("f-state-filter");
      if (sf.options.length === 1) {
        for (const k of ["complete", "failed", "pruned", "running", "waiting", "interrupted", "stale"]) {
          const o = el("option", k);
          o.value = k;
          sf.appendChild(o);
        }
      }
    }

    function onClick(div) {
      if (div.dataset.clicks) return;
      div.dataset.clicks = "1";
      div.on("plotly_click", (ev) => {
        const p = ev && ev.points && ev.points[0];
        if (p && p.customdata !== undefined && p.customdata !== null) {
          state.pinned = true;
          showTrial(p.customdata);
        }
      });
    }

    async function loadCurve() {
      const fig = await api("/api/study/curve", { name: name, x: state.curveX });
      const div = $("curve");
      await plot(div, fig);
      div.dataset.points = String(fig.meta ? fig.meta.complete : 0);
      onClick(div);
    }

    async function loadFigures() {
      const figs = await api("/api/study/figures", { name: name });
      const ops = figs.ops || {};
      if (ops.data && ops.data.length) {
        await plot($("ops"), ops);
        $("ops-note").textContent = "mean occurrences of each operation per architecture: the best " +
          ops.meta.top + " trials against " + ops.meta.all + " of all complete trials (largest fidelity)" +
          (ops.meta.unreadable ? "; " + ops.meta.unreadable + " architecture(s) could not be read" : "");
      } else {
        $("ops-note").textContent = (ops.meta && ops.meta.empty) || "no data";
      }
      if (figs.pareto) {
        $("pareto-panel").hidden = false;
        await plot($("pareto"), figs.pareto);
        $("pareto-note").textContent = figs.pareto.meta.note || "";
        onClick($("pareto"));
      }
      if (figs.rank) {
        $("rank-panel").hidden = false;
        await plot($("rank"), figs.rank);
        onClick($("rank"));
      }
    }

    function header() {
      const tr = document.querySelector("#trials thead tr");
      const cols = state.columns;
      tr.replaceChildren(...cols.map((c) => {
        const th = el("th", c + (state.sort === c ? (state.desc ? " ▼" : " ▲") : ""));
        th.dataset.col = c;
        th.title = "sort by " + c;
        th.className = "sortable" + (state.objectives.includes(c) ? " objective" : "");
        th.addEventListener("click", () => {
          if (state.sort === c) state.desc = !state.desc;
          else { state.sort = c; state.desc = c === "value" || state.objectives.includes(c); }
          state.offset = 0;
          loadTrials().catch((e) => showError(e.message));
        });
        return th;
      }));
    }

    function cellValue(row, c) {
      if (c === "started") return fmtTime(row.started);
      if (c in row && c !== "metrics") return row[c];
      return row.metrics ? row.metrics[c] : null;
    }

    async function loadTrials() {
      const page = await api("/api/study/trials", { name: name, sort: state.sort, desc: state.desc ? 1 : "",
        state: state.state, q: state.q, offset: state.offset, limit: state.limit });
      state.columns = page.columns;
      state.objectives = page.objectives;
      header();
      const tbody = document.querySelector("#trials tbody");
      tbody.replaceChildren(...page.rows.map((r) => {
        const tr = el("tr");
        tr.dataset.trial = String(r.number);
        if (state.selected === r.number) tr.classList.add("selected");
        tr.classList.add("state-" + r.state);
        for (const c of page.columns) {
          const v = cellValue(r, c);
          const td = el("td", c === "arch" ? v : fmt(v), typeof v === "number" ? "num" : null);
          if (c === "arch") { td.className = "arch"; td.title = String(v); }
          if (c === "state" && r.error) td.title = r.error;
          tr.appendChild(td);
        }
        tr.addEventListener("click", () => { state.pinned = true; showTrial(r.number); });
        return tr;
      }));
      const end = Math.min(page.offset + page.rows.length, page.matching);
      $("table-status").textContent = page.matching
        ? "trials " + (page.offset + 1) + "–" + end + " of " + page.matching +
          (page.matching !== page.total ? " matching (" + page.total + " in all)" : "")
        : "no trial matches";
      $("page-info").textContent = page.matching ? "page " + (Math.floor(page.offset / page.limit) + 1) + " of " +
        Math.max(1, Math.ceil(page.matching / page.limit)) : "";
      $("prev").disabled = page.offset <= 0;
      $("next").disabled = end >= page.matching;
      $("csv").href = "/api/study/trials.csv" + query({ name: name, sort: state.sort, desc: state.desc ? 1 : "",
        state: state.state, q: state.q });
    }

    async function showTrial(number) {
      state.selected = number;
      for (const tr of document.querySelectorAll("#trials tbody tr")) {
        tr.classList.toggle("selected", tr.dataset.trial === String(number));
      }
      const rec = await api("/api/study/trial", { name: name, trial: number });
      $("cell-title").textContent = "· trial #" + rec.number + " (" + rec.state + ")";
      $("cell-arch").textContent = rec.arch;
      const box = $("cell");
      const old = box.querySelector("img");
      if (old && old.src.startsWith("blob:")) URL.revokeObjectURL(old.src);
      box.replaceChildren();
      if (rec.svg) {
        // an <img> of the SVG: whatever it held, an image never runs script
        const img = el("img");
        img.alt = "diagram of " + rec.arch;
        img.id = "cell-img";
        img.src = URL.createObjectURL(new Blob([rec.svg], { type: "image/svg+xml" }));
        box.appendChild(img);
        $("cell-note").textContent = "";
      } else {
        $("cell-note").textContent = rec.diagram_error || "no diagram";
      }
      const dl = $("cell-metrics");
      const items = [["value", rec.value], ["fidelity", rec.fidelity], ["cost", rec.cost],
        ["duration (s)", rec.duration], ...Object.entries(rec.metrics || {})];
      if (rec.error) items.push(["error", rec.error]);
      dl.replaceChildren(...items.map(([k, v]) => {
        const d = el("div");
        d.appendChild(el("dt", k));
        d.appendChild(el("dd", fmt(v)));
        return d;
      }));
      box.dataset.trial = String(rec.number);
    }

    async function loadAll(first) {
      const t0 = performance.now();
      const summary = await api("/api/study", { name: name });
      state.token = summary.token;
      renderSummary(summary);
      const jobs = [loadCurve(), loadTrials(), loadFigures().catch((e) => {
        $("ops-note").textContent = "figures unavailable: " + e.message;
      })];
      if (!state.pinned && summary.best && summary.best.number !== state.selected) {
        jobs.push(showTrial(summary.best.number));
      }
      await Promise.all(jobs);
      body.dataset.token = summary.token;
      body.dataset.trials = String(summary.n_trials);
      if (first) body.dataset.ready = "1";
      return performance.now() - t0;
    }

    let wait = REFRESH;
    async function poll() {
      try {
        if (!document.hidden) {
          const p = await api("/api/study/progress", { name: name });
          if (p.token !== state.token) {
            const ms = await loadAll(false);
            wait = Math.max(REFRESH, 3 * ms);
          }
          showError("");
        }
      } catch (e) {
        showError("Cannot refresh: " + e.message);
      }
      setTimeout(poll, wait);
    }

    $("curve-x").addEventListener("change", (ev) => {
      state.curveX = ev.target.value;
      loadCurve().catch((e) => showError(e.message));
    });
    $("filters").addEventListener("submit", (ev) => ev.preventDefault());
    $("f-state-filter").addEventListener("change", (ev) => {
      state.state = ev.target.value;
      state.offset = 0;
      loadTrials().catch((e) => showError(e.message));
    });
    let typing = null;
    $("f-query").addEventListener("input", (ev) => {
      clearTimeout(typing);
      typing = setTimeout(() => {
        state.q = ev.target.value;
        state.offset = 0;
        loadTrials().catch((e) => showError(e.message));
      }, 250);
    });
    $("prev").addEventListener("click", () => {
      state.offset = Math.max(0, state.offset - state.limit);
      loadTrials().catch((e) => showError(e.message));
    });
    $("next").addEventListener("click", () => {
      state.offset += state.limit;
      loadTrials().catch((e) => showError(e.message));
    });

    loadAll(true)
      .then(() => setTimeout(poll, REFRESH))
      .catch((e) => {
        showError("Cannot load the study: " + e.message);
        setTimeout(poll, REFRESH);
      });
  }

  if (body.dataset.page === "index") studiesPage();
  if (body.dataset.page === "study") studyPage();
  window.nasforgeBusy = () => busy;
})();
