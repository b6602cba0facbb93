/* Waymark dashboard: one page, four views chosen by the token's role (RLS still decides
 * every row). Everything is read from /api/analytics with the token held in memory only;
 * pages are built with DOM calls (never innerHTML with data), charts with the vendored
 * Chart.js. Each chart keeps the data it was given on window.waymarkCharts for tests. */
"use strict";
(() => {
  const API = "/api/analytics";
  const LIVE_MS = 10000;
  const PAGE_SIZE = 10;
  const COLORS = { blue: "#2357c6", teal: "#0f7c7a", orange: "#c2410c", purple: "#6d28d9",
                   green: "#1b7f4b", yellow: "#b7791f", red: "#b42318", grey: "#6b7280" };
  const LEVEL_COLORS = { low: "#2fb36b", medium: "#f2c230", high: "#e8590c", critical: "#b42318" };
  const state = { token: null, claims: {}, days: 30, charts: [], liveTimer: null, generation: 0 };
  /** Who the admin's card and every teacher's class card list as at risk: one cut, so an
   * admin and a teacher looking at the same class see the same students. */
  const AT_RISK = 0.6;
  window.waymarkCharts = {};

  // ------------------------------------------------------------------ small helpers
  const $ = (id) => document.getElementById(id);
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const numberFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  const pctFmt = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
  const fmt = {
    n: (v) => (v === null || v === undefined ? "–" : numberFmt.format(v)),
    pct: (v) => (v === null || v === undefined ? "–" : pctFmt.format(v)),
    ms(v) {
      if (v === null || v === undefined) return "–";
      if (v < 1000) return `${Math.round(v)} ms`;
      if (v < 60000) return `${(v / 1000).toFixed(1)} s`;
      const minutes = Math.floor(v / 60000);
      return `${minutes} min ${Math.round((v % 60000) / 1000)} s`;
    },
    day: (iso) => new Date(`${iso}T00:00:00`).toLocaleDateString(undefined, { day: "numeric", month: "short" }),
    when: (iso) => (iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "–"),
    date: (iso) => (iso ? new Date(iso).toLocaleDateString(undefined, { dateStyle: "medium" }) : "–"),
    hours(h) {
      if (h === null || h === undefined) return "–";
      if (h < 1) return `${Math.round(h * 60)} min`;
      return `${numberFmt.format(Math.round(h * 10) / 10)} h`;
    },
    words: (s) => String(s).replace(/_/g, " "),
    student: (id) => `Student ${String(id).slice(0, 8)}`,
    // "1 event", "2 events": a count with its noun, as a person would write it
    count: (v, noun, nouns = `${noun}s`) => `${fmt.n(v)} ${v === 1 ? noun : nouns}`,
  };
  const ago = (iso) => {
    if (!iso) return "never";
    const days = (Date.now() - new Date(iso).getTime()) / 86400000;
    if (days < 1) return "today";
    if (days < 2) return "yesterday";
    return `${Math.floor(days)} days ago`;
  };

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  function inWords(error) {
    if (!(error instanceof ApiError)) return "Waymark could not be reached. Check the connection and try again.";
    if (error.status === 401) return "The token is missing, expired or not valid here. Paste a new one.";
    if (error.status === 403) return `You may not see this (${error.message}).`;
    if (error.status === 503) return "The database is unavailable right now; try again in a minute.";
    if (error.status === 400) return `The request was refused: ${error.message}.`;
    return `Something went wrong (HTTP ${error.status}): ${error.message}`;
  }
  async function request(path) {
    let response;
    try {
      response = await fetch(API + path, { headers: { Authorization: `Bearer ${state.token}` } });
    } catch (e) {
      throw new Error("network");
    }
    return response;
  }
  async function getJSON(path) {
    const response = await request(path);
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(response.status, body.error || response.statusText);
    return body;
  }
  async function downloadCSV(path, filename) {
    const response = await request(path + (path.includes("?") ? "&" : "?") + "format=csv");
    if (!response.ok) throw new ApiError(response.status, response.statusText);
    const url = URL.createObjectURL(await response.blob());
    const link = el("a", { href: url, download: `${filename}.csv` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  // ------------------------------------------------------------------ building blocks
  /** A card with a title, a loading state, and (optionally) a CSV download. */
  function card(title, { wide = false, csv = null, sub = null, id = null } = {}) {
    const body = el("div", { class: "body", "aria-busy": "true" }, el("p", { class: "state", text: "Loading…" }));
    const tools = csv ? el("button", {
      type: "button", class: "csv", "aria-label": `Download ${title} as CSV`,
      onclick: () => downloadCSV(csv[0], csv[1]).catch((e) => alertIn(body, e)),
    }, "Download CSV") : null;
    const section = el("section", { class: wide ? "card wide" : "card", id, "aria-label": title },
      el("header", {}, el("div", {}, el("h2", { text: title }), sub ? el("p", { class: "sub", text: sub }) : null), tools),
      body);
    $("main").append(section);
    return {
      section,
      fill(...nodes) { body.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined)); body.removeAttribute("aria-busy"); },
      fail(error) { body.removeAttribute("aria-busy"); alertIn(body, error); },
    };
  }
  function alertIn(body, error) {
    body.replaceChildren(el("p", { class: "state error", role: "alert", text: inWords(error) }));
  }
  const empty = (text) => el("p", { class: "state", text });

  /** A Chart.js chart in a sized box; its label and data go on window.waymarkCharts[name]. */
  function chart(name, type, data, options = {}, { size = "", summary = "" } = {}) {
    const canvas = el("canvas", { role: "img", "aria-label": summary || name });
    const box = el("div", { class: `chart ${size}` }, canvas);
    requestAnimationFrame(() => {
      if (!box.isConnected || typeof window.Chart === "undefined") return;
      const made = new window.Chart(canvas, {
        type, data,
        options: Object.assign({ responsive: true, maintainAspectRatio: false, animation: false,
          plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } } }, options),
      });
      state.charts.push(made);
      window.waymarkCharts[name] = { type, labels: data.labels.slice(),
        datasets: data.datasets.map((d) => ({ label: d.label, data: d.data.slice() })) };
      performance.mark(`waymark:chart:${name}`);  // bench/dashboard_paint.py reads these
      document.dispatchEvent(new CustomEvent("waymark:chart", { detail: name }));
    });
    return box;
  }

  /** A table: columns [{key,label,num,opt,format}], sortable headers, optional paging and row links. */
  function table(caption, columns, rows, { pageSize = 0, href = null, sortKey = null, sortDir = -1, unit = "rows" } = {}) {
    const wrap = el("div", { class: "table-wrap" });
    let page = 0;
    let sort = { key: sortKey, dir: sortDir };
    function sorted() {
      if (!sort.key) return rows;
      return rows.slice().sort((a, b) => {
        const x = a[sort.key], y = b[sort.key];
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * sort.dir;
      });
    }
    function draw() {
      const all = sorted();
      const shown = pageSize ? all.slice(page * pageSize, (page + 1) * pageSize) : all;
      const head = el("tr", {}, columns.map((c) => el("th", {
        scope: "col", class: [c.num ? "num" : "", c.opt ? "opt" : ""].join(" ").trim() || null,
        "aria-sort": sort.key === c.key ? (sort.dir > 0 ? "ascending" : "descending") : null,
      }, el("button", { type: "button", onclick: () => {
        sort = { key: c.key, dir: sort.key === c.key ? -sort.dir : (c.num ? -1 : 1) }; page = 0; draw();
      } }, c.label))));
      const body = shown.map((row) => {
        const cells = columns.map((c, i) => {
          const value = c.format ? c.format(row[c.key], row) : (c.num ? fmt.n(row[c.key]) : (row[c.key] ?? "–"));
          const content = i === 0 && href ? el("a", { href: href(row) }, value) : value;
          return el(i === 0 ? "th" : "td", {
            scope: i === 0 ? "row" : null,
            class: [c.num ? "num" : "", c.opt ? "opt" : "", c.cls || ""].join(" ").trim() || null,
          }, content);
        });
        return el("tr", href ? { class: "clickable", onclick: (e) => {
          if (e.target.tagName !== "A") location.hash = href(row);
        } } : {}, cells);
      });
      const parts = [el("table", {}, el("caption", { text: caption }), el("thead", {}, head), el("tbody", {}, body))];
      if (pageSize && all.length > pageSize) {
        const pages = Math.ceil(all.length / pageSize);
        parts.push(el("div", { class: "pager" },
          el("button", { type: "button", disabled: page === 0, onclick: () => { page -= 1; draw(); } }, "Previous"),
          el("span", { text: `Page ${page + 1} of ${pages} (${all.length} ${unit})` }),
          el("button", { type: "button", disabled: page >= pages - 1, onclick: () => { page += 1; draw(); } }, "Next")));
      }
      wrap.replaceChildren(...parts);
    }
    draw();
    return wrap;
  }

  function delta(now, before) {
    if (!before) return el("span", { class: "delta flat", text: "no earlier data" });
    const change = (now - before) / before;
    const cls = Math.abs(change) < 0.005 ? "flat" : change > 0 ? "up" : "down";
    const sign = change > 0 ? "+" : "";
    return el("span", { class: `delta ${cls}`, text: `${sign}${pctFmt.format(change)} vs previous ${state.days} days` });
  }
  function meter(score) {
    const inner = el("span");
    inner.style.width = `${Math.round((score || 0) * 100)}%`;  // CSSOM: allowed by the CSP
    return el("span", { class: "meter", "aria-hidden": "true" }, inner);
  }
  const TREND_WORDS = { new: "new", rising: "↑ rising", falling: "↓ falling", steady: "→ steady" };
  const trendText = (trend, previous) => el("span", { class: `trend trend-${trend}`,
    title: `${fmt.n(previous)} in the ${state.days > 90 ? 90 : state.days} days before`, text: TREND_WORDS[trend] || trend });
  const levelText = (level) => el("span", { class: `level level-${level}`, text: level ? fmt.words(level) : "not scored" });
  const studentLink = (id) => `#/student/${id}`;

  // ------------------------------------------------------------------ risk in words
  /** One factor as a sentence ("no activity for 9 days"): the API's explanation, written once
   * in the risk package from the factor's numbers; the factor's name only if an answer has none. */
  const factorWords = (f) => f.explanation || fmt.words(f.name);
  function mainFactor(factors) {
    return (factors || []).slice().sort((a, b) => b.contribution - a.contribution)[0] || null;
  }
  /** How a student who left (withdrew or completed: not scored since) is named. */
  function leftWords(left) {
    const how = left.event === "course_completed" ? "completed the course" : "withdrew";
    return `${how[0].toUpperCase()}${how.slice(1)} on ${fmt.date(left.at)}; not scored since (the risk score covers students still on their course).`;
  }
  /** green / yellow / red from the risk level, with the reason in words; grey once left. */
  function rhythm(risk, left) {
    if (left) {
      return { light: "grey", title: left.event === "course_completed" ? "Completed the course" : "Left the course", reason: leftWords(left) };
    }
    if (!risk || risk.score === null || risk.score === undefined) {
      return { light: "yellow", title: "Not assessed yet", reason: "Risk is scored nightly once there is activity." };
    }
    const top = mainFactor(risk.factors);
    const level = risk.risk_level;
    if (level === "low") return { light: "green", title: "Good learning rhythm", reason: top ? `Mostly steady; ${factorWords(top)}.` : "Steady." };
    if (level === "medium") return { light: "yellow", title: "Rhythm is slowing", reason: top ? `Mainly: ${factorWords(top)}.` : "" };
    return { light: "red", title: "Needs attention", reason: top ? `Mainly: ${factorWords(top)}.` : "" };
  }
  function rhythmBlock(risk, left) {
    const r = rhythm(risk, left);
    return el("div", { class: "rhythm" },
      el("span", { class: `light ${r.light}`, role: "img", "aria-label": `${r.light} light` }),
      el("div", {}, el("strong", { class: "rhythm-title", text: r.title }), el("span", { class: "reason", text: r.reason })));
  }

  // ------------------------------------------------------------------ one learner
  async function learnerCard(userId, title, { wide = false, withRhythm = true } = {}) {
    const c = card(title, { wide });
    c.section.classList.add("learner");
    c.section.dataset.userId = userId;
    try {
      const [engagement, journey, recent] = await Promise.all([
        getJSON(`/engagement/${userId}?days=${state.days}`), getJSON(`/journey/${userId}`),
        getJSON(`/recent/${userId}?limit=20`)]);
      const pillars = Object.entries(journey.xp_by_pillar || {}).sort((a, b) => b[1] - a[1]);
      const completions = recent.activity.filter((a) => a.event_type === "quest_completed").slice(0, 5);
      c.fill(
        withRhythm ? rhythmBlock(engagement.risk, engagement.left) : null,
        el("dl", { class: "facts" },
          fact("Streak", `${journey.current_streak ?? 0} day${journey.current_streak === 1 ? "" : "s"} (longest ${journey.longest_streak ?? 0})`),
          fact("Time on platform", fmt.hours(journey.time_on_platform_hours)),
          fact("Favourite pillar", journey.favorite_pillar ? fmt.words(journey.favorite_pillar) : "none yet"),
          fact("Quests completed", fmt.n(journey.total_quests_completed)),
          fact("Last active", ago(engagement.last_active))),
        el("h3", { text: "XP by pillar" }),
        pillars.length ? chart(`xp-${userId}`, "bar", {
          labels: pillars.map(([p]) => fmt.words(p)),
          datasets: [{ label: "XP", data: pillars.map(([, xp]) => xp), backgroundColor: COLORS.teal }],
        }, { indexAxis: "y", plugins: { legend: { display: false } } }, {
          size: "short", summary: `XP by pillar: ${pillars.map(([p, xp]) => `${fmt.words(p)} ${xp}`).join(", ")}` })
          : empty("No XP yet: XP comes with completed quests."),
        el("h3", { text: "Recent quest completions" }),
        completions.length ? el("ul", { class: "plain recent" }, completions.map((a) => el("li", {},
          `${a.quest_title || a.quest_id} `, el("span", { class: "sub", text: `${fmt.date(a.occurred_at)}${a.xp ? ` · ${a.xp} XP` : ""}` }))))
          : empty("No quest completed yet."),
        withRhythm ? el("p", {}, el("a", { href: studentLink(userId) }, "Details: risk over time and its factors")) : null);
    } catch (e) { c.fail(e); }
  }
  const fact = (label, value) => el("div", {}, el("dt", { text: label }), el("dd", { text: value }));

  // ------------------------------------------------------------------ views
  async function adminView() {
    const days = state.days;
    // Cards are placed in call order (each makes its card before its first await).
    const activity = activityCard(days);
    await Promise.all([activity, riskOverTime(days), pagesCard(days), quests(days),
                       sources(days, activity), campaigns(days), errorsCard(days), atRisk()]);
    startLive();
  }

  async function activityCard(days) {
    const c = card("Activity over time", { wide: true, csv: [`/activity?days=${days}`, "activity"],
      sub: `Daily visitors, sessions and page views, last ${days} days` });
    const d = card("Devices", { sub: "Sessions by device type" });
    try {
      const a = await getJSON(`/activity?days=${days}`);
      const tiles = el("div", { class: "tiles" }, [["Visitors", "visitors"], ["Sessions", "sessions"], ["Page views", "page_views"]]
        .map(([label, key]) => el("div", { class: "tile" }, el("div", { class: "label", text: label }),
          el("div", { class: "value", text: fmt.n(a.current[key]) }), delta(a.current[key], a.previous[key]))));
      const total = a.series.reduce((s, d) => s + d.sessions, 0);
      c.fill(tiles, total ? chart("activity", "line", {
        labels: a.series.map((d) => fmt.day(d.day)),
        datasets: [
          { label: "Visitors", data: a.series.map((d) => d.visitors), borderColor: COLORS.blue, backgroundColor: COLORS.blue, tension: 0.25 },
          { label: "Sessions", data: a.series.map((d) => d.sessions), borderColor: COLORS.teal, backgroundColor: COLORS.teal, tension: 0.25 },
          { label: "Page views", data: a.series.map((d) => d.page_views), borderColor: COLORS.orange, backgroundColor: COLORS.orange, tension: 0.25 },
        ],
      }, { interaction: { mode: "index", intersect: false }, scales: { y: { beginAtZero: true } } },
      { size: "tall", summary: `Activity per day: ${fmt.count(a.current.visitors, "visitor")}, ${fmt.count(a.current.sessions, "session")}, ${fmt.count(a.current.page_views, "page view")}` })
        : empty(`No activity in the last ${days} days. Events appear here once the tracking snippet or the middleware sends them.`));
      const devices = a.devices;
      d.fill(devices.length ? chart("devices", "doughnut", {
        labels: devices.map((x) => fmt.words(x.device_type)),
        datasets: [{ label: "Sessions", data: devices.map((x) => x.sessions), backgroundColor: [COLORS.blue, COLORS.orange, COLORS.teal, COLORS.grey] }],
      }, {}, { size: "short", summary: devices.map((x) => `${x.device_type}: ${fmt.count(x.sessions, "session")}`).join(", ") })
        : empty("No sessions in this period."));
    } catch (e) { c.fail(e); d.fail(e); }
  }

  async function pagesCard(days) {
    const c = card("Top pages", { wide: true, csv: [`/page-views?days=${days}`, "page-views"] });
    try {
      const p = await getJSON(`/page-views?days=${days}`);
      c.fill(p.pages.length ? table(`Pages by views, last ${days} days`, [
        { key: "page_path", label: "Page", cls: "path" },
        { key: "views", label: "Views", num: true },
        { key: "unique_visitors", label: "Visitors", num: true, opt: true },
        { key: "bounce_rate", label: "Bounce", num: true, format: fmt.pct },
        { key: "avg_load_time_ms", label: "Load time", num: true, opt: true, format: fmt.ms },
        { key: "avg_time_on_page_ms", label: "Time on page", num: true, opt: true, format: fmt.ms },
      ], p.pages, { pageSize: PAGE_SIZE, sortKey: "views", unit: "pages" }) : empty(`No page views in the last ${days} days.`));
    } catch (e) { c.fail(e); }
  }

  async function quests(days) {
    const c = card("Popular quests", { csv: [`/popular-quests?days=${days}&limit=10`, "popular-quests"],
      sub: "Viewed → started → completed" });
    try {
      const q = (await getJSON(`/popular-quests?days=${days}&limit=8`)).quests;
      c.fill(q.length ? chart("quests", "bar", {
        labels: q.map((x) => (x.quest_title || x.quest_id).replace(/^Quest \d+: /, "")),
        datasets: [
          { label: "Viewed", data: q.map((x) => x.views), backgroundColor: "#9db7ea" },
          { label: "Started", data: q.map((x) => x.starts), backgroundColor: COLORS.blue },
          { label: "Completed", data: q.map((x) => x.completions), backgroundColor: COLORS.green },
        ],
      }, { indexAxis: "y" }, { size: "tall", summary: `Quest funnel: ${q.map((x) => `${x.quest_title}: ${x.views} viewed, ${x.starts} started, ${x.completions} completed`).join("; ")}` })
        : empty(`No quest was viewed in the last ${days} days.`));
    } catch (e) { c.fail(e); }
  }

  async function sources(days, after) {
    const c = card("Sources", { csv: [`/sources?days=${days}`, "sources"],
      sub: "Sessions by the site that referred them" });
    try {
      // below the fold, and a scan of the period's events: asked once the activity chart,
      // the first thing anyone looks at, has its data (bench/dashboard_paint.py)
      await after;
      const r = await getJSON(`/sources?days=${days}`);
      const rows = r.sources.map((x) => ({ ...x, name: x.source || "Direct / none" }));
      const top = rows.slice(0, 8);
      c.fill(rows.length ? el("div", {},
        chart("sources", "bar", { labels: top.map((x) => x.name),
          datasets: [{ label: "Sessions", data: top.map((x) => x.sessions), backgroundColor: COLORS.blue }] },
        { indexAxis: "y", plugins: { legend: { display: false } } },
        { summary: `Sessions by source: ${top.map((x) => `${x.name}: ${x.sessions}`).join(", ")}` }),
        table(`Sources, last ${days} days`, [
          { key: "name", label: "Source" },
          { key: "sessions", label: "Sessions", num: true },
        ], rows, { sortKey: "sessions" })) : empty("No sessions in this period."));
    } catch (e) { c.fail(e); }
  }

  async function campaigns(days) {
    const c = card("Campaigns", { csv: [`/attribution?days=${days}`, "campaigns"],
      sub: "Landing visits and conversions (last touch)" });
    try {
      const a = await getJSON(`/attribution?days=${days}`);
      c.fill(a.campaigns.length ? table(`Campaigns, last ${days} days`, [
        { key: "source", label: "Source" },
        { key: "campaign", label: "Campaign", opt: true },
        { key: "visits", label: "Visits", num: true },
        { key: "conversions", label: "Conversions", num: true, opt: true },
        { key: "conversion_rate", label: "Rate", num: true, format: fmt.pct },
      ], a.campaigns, { sortKey: "visits" }) : empty("No landing visits in this period."));
    } catch (e) { c.fail(e); }
  }

  async function errorsCard(days) {
    const span = Math.min(days, 90);
    const c = card("Errors", { wide: true, csv: [`/errors?days=${span}`, "error-groups"], sub: `Grouped, last ${span} days` });
    try {
      const e = await getJSON(`/errors?days=${span}`);
      const types = Object.entries(e.error_counts_by_type || {});
      c.fill(e.total_errors ? el("div", {},
        chart("errors", "bar", { labels: types.map(([t]) => fmt.words(t)),
          datasets: [{ label: "Errors", data: types.map(([, n]) => n), backgroundColor: COLORS.red }] },
        { plugins: { legend: { display: false } } }, { size: "short", summary: types.map(([t, n]) => `${t}: ${n}`).join(", ") }),
        table("Error groups, most frequent first", [
          { key: "message", label: "Error" },
          { key: "errors", label: "Count", num: true },
          { key: "users_affected", label: "People", num: true, opt: true },
          { key: "trend", label: "Trend", format: (v, row) => trendText(v, row.previous_errors) },
          { key: "last_seen", label: "Last seen", opt: true, format: fmt.when },
        ], e.top_groups, { sortKey: "errors" })) : empty(`No errors in the last ${span} days.`));
    } catch (err) { c.fail(err); }
  }

  async function riskOverTime(days) {
    const c = card("Risk over time", { csv: [`/risk-distribution?days=${days}`, "risk-distribution"],
      sub: "Students per risk level, from the nightly scores" });
    try {
      const r = await getJSON(`/risk-distribution?days=${days}`);
      c.fill(r.series.length ? chart("risk", "bar", {
        labels: r.series.map((d) => fmt.day(d.day)),
        datasets: r.levels.map((level) => ({ label: fmt.words(level), data: r.series.map((d) => d[level]), backgroundColor: LEVEL_COLORS[level], maxBarThickness: 48 })),
      }, { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
      { summary: `Students per risk level on ${fmt.count(r.series.length, "day")}` })
        : empty("No stored risk scores in this period: the nightly score job stores them."));
    } catch (e) { c.fail(e); }
  }

  async function atRisk() {
    // No `days`: the nightly scores, over the window they were made with (the period
    // chooser does not rescore everyone; docs/dashboard.md).
    const c = card("Students at risk", { wide: true, csv: [`/at-risk-students?threshold=${AT_RISK}&limit=10000`, "at-risk-students"],
      sub: `Risk score ${AT_RISK} or more; click a student for the details` });
    try {
      const r = await getJSON(`/at-risk-students?threshold=${AT_RISK}&limit=10000`);
      const rows = r.students.map((s) => ({ ...s, reason: mainFactor(s.factors) ? factorWords(mainFactor(s.factors)) : "" }));
      const when = r.source === "stored" ? `scored by the nightly job over the ${r.days} days before it` : `scored just now over the last ${r.days} days`;
      c.fill(rows.length ? table(`${fmt.count(rows.length, "student")} at risk, ${when}`, [
        { key: "user_id", label: "Student", format: (v) => fmt.student(v) },
        { key: "score", label: "Risk", num: true, format: (v) => el("span", {}, meter(v), v.toFixed(2)) },
        { key: "risk_level", label: "Level", opt: true, format: levelText },
        { key: "reason", label: "Main reason" },
      ], rows, { pageSize: PAGE_SIZE, href: (row) => studentLink(row.user_id), sortKey: "score", unit: "students" })
        : empty("No student is at risk in this period."), trustNote(r.parameter_set));
    } catch (e) { c.fail(e); }
  }

  /** Which weights made the scores and how well they were checked, in words a school reads
   * (the answer's `parameter_set`): the AUC as "how often a student who went on to leave
   * scored higher than one who stayed". */
  function trustNote(set) {
    if (!set) return null;
    let text;
    if (set.source === "risk-calibrate" && set.validation_auc !== null) {
      const within = set.validation_auc_among_classmates;
      text = `Weights fitted to this school's own history on ${fmt.day(set.fitted_at.slice(0, 10))} (set ${set.id}). `
        + `Checked on a later period kept back from the fit: a student who went on to leave scored higher than one who stayed `
        + `${Math.round(100 * set.validation_auc)} % of the time`
        + (within === null || within === undefined ? "" : `, and than a classmate who stayed ${Math.round(100 * within)} % of the time`)
        + " (50 % would be chance).";
    } else if (set.source === "waymark demo") {
      text = "Weights chosen by hand for the demo school: not fitted to outcomes, not checked against them.";
    } else {
      text = "Default weights, not yet fitted to this school's own history (an admin fits them with waymark risk-calibrate once withdrawals are recorded).";
    }
    return el("p", { class: "sub trust", text });
  }

  async function teacherView() {
    try {
      const classes = (await getJSON("/classes")).classes;
      if (!classes.length) {
        $("main").append(el("p", { class: "notice", text: "You teach no class yet: an admin adds you to a class (waymark classes)." }));
        return;
      }
      await Promise.all(classes.map(classCard));
    } catch (e) { card("Your classes").fail(e); }
  }

  const isHidden = (v) => v && typeof v === "object" && v.suppressed;
  const hiddenMark = (reason) => el("span", { class: "suppressed", title: reason, text: `hidden: ${reason}` });

  async function classCard(k) {
    const c = card(k.name, { wide: true, sub: fmt.count(k.student_count, "student") });
    c.section.classList.add("class");
    try {
      const s = await getJSON(`/classes/${k.class_id}/summary?days=${state.days}&threshold=${AT_RISK}`);
      const hiddenDays = s.daily.filter((d) => d.suppressed).length;
      const dist = s.risk_distribution;
      const parts = [];
      if (s.suppressed || hiddenDays) {
        parts.push(el("p", { class: "notice suppression" }, hiddenMark(`fewer than ${s.min_group_size} students`),
          ` ${hiddenDays} of ${fmt.count(s.daily.length, "day")} ${hiddenDays === 1 ? "is" : "are"} hidden to protect privacy: a figure about fewer than ${s.min_group_size} students is not shown.`));
      }
      const allHidden = s.daily.length > 0 && hiddenDays === s.daily.length;
      parts.push(el("h3", { text: "Active students per day" }), allHidden ? hiddenMark(`fewer than ${s.min_group_size} students`) : chart(`class-${k.class_id}`, "line", {
        labels: s.daily.map((d) => fmt.day(d.day)),
        datasets: [{ label: "Active students", data: s.daily.map((d) => (d.suppressed || isHidden(d.active_students) ? null : d.active_students)),
          borderColor: COLORS.blue, backgroundColor: COLORS.blue, spanGaps: false, tension: 0.25 }],
      }, { scales: { y: { beginAtZero: true } }, plugins: { legend: { display: false } } },
      { size: "short", summary: `Active students per day in ${k.name}${hiddenDays ? `, ${fmt.count(hiddenDays, "day")} hidden` : ""}` }));
      parts.push(el("h3", { text: "Risk distribution" }), isHidden(dist) ? hiddenMark(dist.reason)
        : chart(`class-risk-${k.class_id}`, "bar", {
          labels: ["low", "medium", "high", "critical"],
          datasets: [{ label: "Students", data: ["low", "medium", "high", "critical"].map((l) => (isHidden(dist[l]) ? null : dist[l])),
            backgroundColor: ["low", "medium", "high", "critical"].map((l) => LEVEL_COLORS[l]), maxBarThickness: 64 }],
        }, { plugins: { legend: { display: false } } }, { size: "short", summary: `Risk levels: ${Object.entries(dist).map(([l, n]) => `${l} ${isHidden(n) ? "hidden" : n}`).join(", ")}` }));
      const qc = s.quest_completion;
      parts.push(el("h3", { text: "Quest completion" }), isHidden(qc) || isHidden(qc.completion_rate)
        ? hiddenMark((qc.reason || qc.completion_rate.reason))
        : el("p", { text: `${fmt.pct(qc.completion_rate)} of students who started a quest completed one (${qc.students_completed} of ${qc.students_started}).` }));
      parts.push(el("h3", { text: `Students at risk (risk score ${AT_RISK} or more)` }), s.at_risk.length ? table(`Students at risk in ${k.name}`, [
        { key: "user_id", label: "Student", format: (v) => fmt.student(v) },
        { key: "risk_score", label: "Risk", num: true, format: (v) => el("span", {}, meter(v), v.toFixed(2)) },
        { key: "reason", label: "Main reason" },
      ], s.at_risk.map((x) => ({ ...x, reason: mainFactor(x.factors) ? factorWords(mainFactor(x.factors)) : "" })),
      { href: (row) => studentLink(row.user_id), sortKey: "risk_score" }) : empty("No student of this class is at risk."),
      trustNote(s.parameter_set));
      c.fill(...parts);
    } catch (e) { c.fail(e); }
  }

  async function parentView() {
    try {
      const children = (await getJSON("/students?limit=50")).students;
      if (!children.length) {
        $("main").append(el("p", { class: "notice", text: "No child is linked to your account yet. The school links parents to their children." }));
        return;
      }
      await Promise.all(children.map((s) => learnerCard(s.user_id, fmt.student(s.user_id))));
    } catch (e) { card("Your children").fail(e); }
  }

  async function studentView() {
    await Promise.all([learnerCard(state.claims.sub, "My learning rhythm"), ownCategories()]);
  }
  async function ownCategories() {
    const c = card("What I did", { sub: `Events by kind, last ${state.days} days` });
    try {
      const counts = Object.entries((await getJSON(`/event-counts?days=${state.days}`)).counts).filter(([, n]) => n > 0);
      c.fill(counts.length ? chart("my-activity", "bar", { labels: counts.map(([k]) => fmt.words(k)),
        datasets: [{ label: "Events", data: counts.map(([, n]) => n), backgroundColor: COLORS.purple }] },
      { plugins: { legend: { display: false } } }, { summary: counts.map(([k, n]) => `${k}: ${n}`).join(", ") })
        : empty("Nothing recorded in this period yet."));
    } catch (e) { c.fail(e); }
  }

  async function detailView(userId) {
    $("main").append(el("p", { class: "back" }, el("a", { href: "#" }, "← Back to the overview")));
    const head = card(fmt.student(userId), { wide: true, sub: "Risk over time and what it is made of" });
    head.section.id = "detail";
    let engagement;
    try {
      engagement = await getJSON(`/engagement/${userId}?days=${state.days}`);
    } catch (e) {
      if (e instanceof ApiError && e.status === 403) {
        head.section.classList.add("denied");
        head.fill(el("p", { class: "notice denied", role: "alert" },
          el("strong", { text: "Access denied. " }), "You may not see this student's data (the server answered 403)."));
        return;
      }
      head.fail(e);
      return;
    }
    const history = engagement.risk_history || [];
    const risk = engagement.risk;
    const factors = (risk && risk.factors ? risk.factors : []).slice().sort((a, b) => b.contribution - a.contribution);
    head.fill(rhythmBlock(risk, engagement.left),
      el("h3", { text: `Risk over time, last ${state.days} days` }),
      history.length ? chart("risk-history", "line", {
        labels: history.map((h) => fmt.date(h.at)),
        datasets: [{ label: "Risk score", data: history.map((h) => h.score), borderColor: COLORS.red, backgroundColor: COLORS.red, tension: 0 }],
      }, { scales: { y: { min: 0, max: 1 } }, plugins: { legend: { display: false } } },
      { size: "short", summary: `Risk score on ${fmt.count(history.length, "assessment")}, latest ${history[history.length - 1].score.toFixed(2)}` })
        : empty("No stored assessment yet: the nightly score job stores one a day."),
      history.length === 1 ? el("p", { class: "sub", text: "One stored assessment so far: the line grows by one point each night the score job runs." }) : null,
      el("h3", { text: "What the score is made of" }),
      factors.length ? el("ul", { class: "plain factors" }, factors.map((f) => {
        const bar = el("span", { class: "bar", "aria-hidden": "true" });
        bar.style.width = `${Math.round(f.contribution * 100 / Math.max(risk.score, 0.01))}%`;
        return el("li", { class: "factor" }, el("strong", { text: `${fmt.words(f.name)}: ` }), factorWords(f),
          el("span", { class: "sub", text: ` — adds ${f.contribution.toFixed(2)} (weight ${f.weight}, value ${f.value.toFixed(2)})` }), bar);
      })) : empty(engagement.left ? leftWords(engagement.left) : "No factors: this student has not been scored."),
      factors.length ? trustNote(engagement.risk_parameter_set) : null);
    await learnerCard(userId, "Journey and recent activity", { wide: true, withRhythm: false });
  }

  // ------------------------------------------------------------------ live counter
  function startLive() {
    const live = $("live");
    live.hidden = false;
    const tick = async () => {
      try {
        const l = await getJSON("/live");
        live.replaceChildren(el("strong", { id: "live-count", text: fmt.n(l.events) }), ` ${l.events === 1 ? "event" : "events"} in the last ${l.minutes} minutes`);
        live.dataset.updated = String(Date.now());
      } catch (e) { live.textContent = "live counter unavailable"; }
    };
    tick();
    state.liveTimer = setInterval(tick, LIVE_MS);
  }

  // ------------------------------------------------------------------ start
  function claimsOf(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
    } catch (e) { return null; }
  }
  async function show() {
    state.generation += 1;
    clearInterval(state.liveTimer);
    $("live").hidden = true;
    state.charts.forEach((c) => c.destroy());
    state.charts = [];
    window.waymarkCharts = {};
    $("main").replaceChildren();
    document.body.dataset.ready = "false";
    const typed = $("token").value.trim();
    if (typed) state.token = typed;
    state.days = Number($("days").value);
    if (!state.token) {
      $("main").append(el("p", { class: "intro", text: "Paste an access token and press Show." }));
      document.body.dataset.ready = "true";
      return;
    }
    state.claims = claimsOf(state.token) || {};
    const role = (state.claims.app_metadata && state.claims.app_metadata.role) || "student";
    document.body.dataset.role = role;
    $("who").textContent = `Signed in as ${role}`;
    const match = /^#\/student\/([0-9a-f-]{36})$/i.exec(location.hash);
    try {
      if (match) await detailView(match[1].toLowerCase());
      else if (role === "admin") await adminView();
      else if (role === "teacher") await teacherView();
      else if (role === "parent") await parentView();
      else await studentView();
    } finally {
      await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
      document.body.dataset.ready = "true";
      performance.mark("waymark:ready");
      document.dispatchEvent(new CustomEvent("waymark:ready"));
    }
  }

  function start() {
    // A host app may pass the token in the fragment (#token=…): it is read into memory and
    // removed from the address bar and history at once; nothing is stored.
    const fragment = new URLSearchParams(location.hash.slice(1));
    if (fragment.get("token")) {
      state.token = fragment.get("token");
      const rest = fragment.get("view") ? `#${fragment.get("view")}` : "";
      history.replaceState(null, "", location.pathname + location.search + rest);
    }
    $("signin").addEventListener("submit", (e) => { e.preventDefault(); show(); });
    $("days").addEventListener("change", show);
    window.addEventListener("hashchange", show);
    show();
  }
  start();
})();
