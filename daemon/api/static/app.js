// The crossmargin dashboard: reads the JSON endpoints, then lives on /v1/stream.
// Read-only: only GET requests and one EventSource; every value reaches the page as text.

import { barChart, lineChart } from "./charts.js";

const HISTORY_WINDOW_S = 3600;
const HISTORY_POINTS = 120;
const TOP_ACCOUNTS = 15;
const REFRESH_DEBOUNCE_MS = 400; // events come in bursts: one refresh per burst
const REFRESH_EVERY_MS = 15000; // the history moves on even when nothing happens
const EVENT_LOG_SIZE = 60;
const EVENT_KINDS = ["liquidatable", "latency_risk", "recovered"];
const FLAG_COLOURS = {
  LIQUIDATABLE: "#d9776f",
  LATENCY_RISK: "#d6b25e",
  STALE_CHAIN: "#7fa3c7",
  STALE_PRICE: "#9b8fc9",
  ORACLE_TRIPPED: "#c98fb5",
  SEQUENCER_DOWN: "#6fb7b0",
  READ_FAILED: "#a0a7b3",
  DEBT_UNKNOWN: "#e0e3e8",
  ORACLE_DRIFT: "#b9a27a",
};
const HELD_FLAGS = ["STALE_CHAIN", "STALE_PRICE", "ORACLE_TRIPPED", "SEQUENCER_DOWN", "READ_FAILED", "DEBT_UNKNOWN"];

const state = { chains: new Map(), prices: new Map(), refreshing: false, again: false, timer: null };

// ---- DOM helpers -------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "style") Object.assign(node.style, value); // CSSOM: allowed by the CSP
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function setText(id, text) {
  document.getElementById(id).textContent = text;
}

function fillTable(id, rows, columns) {
  const body = document.querySelector(`#${id} tbody`);
  if (!rows.length) {
    body.replaceChildren(el("tr", {}, el("td", { class: "empty", colspan: String(columns) }, "none")));
    return;
  }
  body.replaceChildren(...rows);
}

// ---- formatting --------------------------------------------------------------------------

function grouped(text) {
  // A decimal string with thousands separators; exact (never through a float).
  const [whole, fraction] = String(text).split(".");
  const sign = whole.startsWith("-") ? "-" : "";
  const digits = whole.replace("-", "").replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return sign + digits + (fraction === undefined ? "" : `.${fraction}`);
}

function usd(text) {
  return text === null || text === undefined ? "–" : `$${grouped(text)}`;
}

function health(account) {
  if (account.health === null) return account.health_known ? "∞" : "unknown";
  return account.health.toFixed(3);
}

function seconds(value) {
  if (value === null || value === undefined) return "–";
  return value < 100 ? `${value.toFixed(1)} s` : `${Math.round(value)} s`;
}

function short(address) {
  return `${address.slice(0, 8)}…${address.slice(-6)}`;
}

function clock(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleTimeString();
}

function flagBadges(names) {
  return names.map((name) => el("span", { class: `flag ${name}` }, name.toLowerCase().replace("_", " ")));
}

// ---- data --------------------------------------------------------------------------------

async function getJson(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) throw new Error(body?.error?.message ?? `HTTP ${response.status}`);
  return body;
}

async function refresh() {
  // One refresh at a time; a request for another during it runs once it is done.
  if (state.refreshing) {
    state.again = true;
    return;
  }
  state.refreshing = true;
  try {
    const [summary, listed] = await Promise.all([
      getJson(`/v1/summary?window_s=${HISTORY_WINDOW_S}&points=${HISTORY_POINTS}`),
      getJson(`/v1/liquidatable?limit=${TOP_ACCOUNTS}`),
    ]);
    renderSummary(summary, listed);
    renderLiquidatable(listed.accounts);
    await renderDrift(summary);
    const asOf = listed.as_of;
    setText("as-of", asOf ? `cycle ${asOf.cycle_id} · ${clock(asOf.at)}` : "no cycle stored yet");
  } catch (error) {
    setText("as-of", `figures unavailable: ${error.message}`);
  } finally {
    state.refreshing = false;
    if (state.again) {
      state.again = false;
      scheduleRefresh();
    }
  }
}

function scheduleRefresh() {
  clearTimeout(state.timer);
  state.timer = setTimeout(refresh, REFRESH_DEBOUNCE_MS);
}

// ---- rendering ---------------------------------------------------------------------------

function renderSummary(summary, listed) {
  const flags = summary.flags;
  setText("accounts-count", grouped(summary.accounts));
  setText("liquidatable-count", String(listed.total));
  setText("liquidatable-note", `${summary.actionable} actionable · ${summary.health_unknown} health unknown`);
  setText("latency-count", String(flags.LATENCY_RISK ?? 0));
  const held = HELD_FLAGS.filter((name) => flags[name]);
  setText("held-count", String(held.reduce((sum, name) => sum + flags[name], 0)));
  setText("held-note", held.map((name) => `${flags[name]} ${name.toLowerCase().replace("_", " ")}`).join(" · "));

  const shown = Object.keys(flags).filter((name) => summary.history.some((p) => p.flags[name]));
  const series = shown.map((name) => ({
    name,
    colour: FLAG_COLOURS[name] ?? "#a0a7b3",
    points: summary.history.map((p) => [p.at, p.flags[name]]),
  }));
  lineChart(document.getElementById("flag-history"), series);
  setText("history-window", `last ${Math.round(HISTORY_WINDOW_S / 60)} min`);
  document.getElementById("flag-legend").replaceChildren(
    ...(series.length
      ? series.map((s) => el("span", {}, el("i", { style: { background: s.colour } }), s.name.toLowerCase().replace("_", " ")))
      : [el("span", {}, "no account carried a flag in this window")]),
  );

  const bins = summary.health_histogram.map((bin) => ({
    label: bin.to === null ? `≥${bin.from}` : `<${bin.to}`,
    value: bin.accounts,
    colour: bin.to !== null && bin.to <= 1 ? "#d9776f" : bin.to !== null && bin.to <= 1.2 ? "#d6b25e" : "#7fb58f",
  }));
  barChart(document.getElementById("health-histogram"), bins);
  setText("histogram-note", `${summary.no_debt} with no debt · ${summary.health_unknown} health unknown`);

  const byChain = Object.entries(summary.latency_risk_by_chain);
  const most = Math.max(1, ...byChain.map(([, n]) => n));
  document.getElementById("latency-by-chain").replaceChildren(
    byChain.length
      ? el("ul", { class: "bars" }, ...byChain.map(([chain, n]) =>
          el("li", {}, el("span", {}, chain), el("span", { class: "bar", style: { width: `${(100 * n) / most}%` } }), el("span", { class: "n" }, n))))
      : el("p", { class: "empty" }, "no latency-risky account"),
  );
}

function venuePlans(account) {
  const venues = Array.isArray(account.venues) ? account.venues : [];
  const planned = venues.filter((v) => v.plan);
  if (!planned.length) return "–";
  return el("span", {}, ...planned.map((v) =>
    el("span", { class: "sub" }, `${v.venue}: profit ${usd(v.plan.profit_usd)}`)));
}

function renderLiquidatable(accounts) {
  const rows = accounts.map((a) => el("tr", {},
    el("td", { class: "addr", title: a.account }, short(a.account)),
    el("td", { class: "num" }, health(a)),
    el("td", { class: "num" }, usd(a.shortfall)),
    el("td", { class: a.actionable ? "state-bad" : "muted" }, a.actionable ? "yes" : "held"),
    el("td", {}, ...flagBadges([...a.flags.filter((f) => f !== "LIQUIDATABLE"), ...a.held_reasons.filter((f) => !a.flags.includes(f))])),
    el("td", {}, venuePlans(a)),
  ));
  fillTable("liquidatable-table", rows, 6);
}

async function renderDrift(summary) {
  const panel = document.getElementById("drift-panel");
  if (!summary.flags.ORACLE_DRIFT) {
    panel.hidden = true;
    return;
  }
  const drifting = await getJson("/v1/accounts?flag=ORACLE_DRIFT&limit=20");
  const rows = drifting.accounts.flatMap((a) => (a.venues ?? []).map((v) => el("tr", {},
    el("td", { class: "addr", title: a.account }, short(a.account)),
    el("td", {}, v.venue),
    el("td", { class: "num" }, v.health ?? "–"),
    el("td", { class: "num" }, v.health_at_consensus ?? "–"),
  )));
  fillTable("drift-table", rows, 4);
  panel.hidden = false;
}

function chainState(chain) {
  if (chain.stale) return el("span", { class: "state-bad" }, "stale");
  if (chain.sequencer === "down") return el("span", { class: "state-bad" }, "sequencer down");
  if (chain.sequencer === "grace") return el("span", { class: "state-warn" }, "sequencer grace");
  return el("span", { class: "state-ok" }, "ok");
}

function renderChains() {
  const rows = [...state.chains.values()].map((c) => el("tr", {},
    el("td", {}, c.name, el("span", { class: "sub" }, `chain id ${c.chain_id ?? "–"}`)),
    el("td", { class: "num" }, c.head ?? "–"),
    el("td", { class: "num" }, c.last_read_block ?? "–"),
    el("td", { class: "num" }, seconds(c.lag_s)),
    el("td", {}, chainState(c)),
    el("td", { class: "num" }, c.reorgs),
    el("td", {}, ...c.endpoints.map((e) => el("span", { class: "sub", title: e.last_error ?? "" },
      `${e.url} · ${e.state}` + (e.error_rate === null ? "" : ` · ${(100 * e.error_rate).toFixed(0)}% errors`) +
      (e.latency_ms === null ? "" : ` · ${e.latency_ms.toFixed(0)} ms`)))),
  ));
  fillTable("chains-table", rows, 7);
}

function renderPrices() {
  const rows = [...state.prices.values()].map((p) => el("tr", {},
    el("td", {}, p.asset),
    el("td", { class: "num" }, p.price === null ? "–" : grouped(p.price)),
    el("td", { class: p.status === "OK" ? "state-ok" : p.status === "DEGRADED" ? "state-warn" : "state-bad" }, p.status + (p.held ? ` (held: ${p.hold_reason})` : "")),
    el("td", {}, p.used.join(", ") || "–"),
    el("td", {}, Object.entries(p.dropped).map(([source, reason]) => `${source} (${reason})`).join(", ") || "–"),
    el("td", { class: "num" }, p.spread === null || p.spread === undefined ? "–" : `${(100 * p.spread).toFixed(2)}%`),
  ));
  fillTable("prices-table", rows, 6);
}

function logEvent(kind, event) {
  const log = document.getElementById("event-log");
  log.prepend(el("li", {},
    el("span", { class: "muted" }, clock(event.at)),
    el("span", { class: `kind-${kind}` }, kind.replace("_", " ")),
    el("span", { class: "addr", title: event.account }, short(event.account)),
    el("span", { class: "muted" }, event.health === null ? "" : `health ${event.health.toFixed(3)}`),
  ));
  while (log.children.length > EVENT_LOG_SIZE) log.lastElementChild.remove();
}

// ---- live --------------------------------------------------------------------------------

function connect() {
  const status = document.getElementById("stream-state");
  const show = (name) => {
    status.dataset.state = name;
    status.textContent = name;
  };
  const source = new EventSource("/v1/stream");
  source.addEventListener("open", () => {
    show("live");
    scheduleRefresh(); // whatever happened while disconnected
  });
  source.addEventListener("error", () => show("reconnecting")); // EventSource retries itself
  source.addEventListener("chain", (message) => {
    const chain = JSON.parse(message.data);
    state.chains.set(chain.name, chain);
    renderChains();
  });
  source.addEventListener("oracle", (message) => {
    const price = JSON.parse(message.data);
    state.prices.set(price.asset, price);
    renderPrices();
  });
  for (const kind of EVENT_KINDS) {
    source.addEventListener(kind, (message) => {
      logEvent(kind, JSON.parse(message.data));
      scheduleRefresh();
    });
  }
}

async function start() {
  try {
    const [chains, prices] = await Promise.all([getJson("/v1/chains"), getJson("/v1/prices")]);
    for (const chain of chains.chains) state.chains.set(chain.name, chain);
    for (const price of prices.prices) state.prices.set(price.asset, price);
  } catch (error) {
    setText("as-of", `status unavailable: ${error.message}`);
  }
  renderChains();
  renderPrices();
  await refresh();
  connect();
  setInterval(refresh, REFRESH_EVERY_MS);
}

start();
