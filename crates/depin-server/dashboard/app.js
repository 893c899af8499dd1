// depin dashboard: a client of this coordinator's JSON API, nothing more.
//
// Rules this file keeps:
// - every figure shown comes from a /v1/ answer; the page computes only sums
//   and unit conversions (base units to tokens, tokens to USD at the price the
//   API reports);
// - text from the API reaches the page only through textContent and
//   attributes set one by one (el() below), never by parsing a string as HTML, so no
//   string from the network can become markup;
// - no inline script or style (the server's Content-Security-Policy forbids
//   them), nothing fetched from another origin.
"use strict";

const BASE_UNITS_PER_TOKEN = 1000000n;
const SVG_NS = "http://www.w3.org/2000/svg";

// ------------------------------------------------------------------ DOM

/** An element with attributes and children; strings become text nodes. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function setAttrs(node, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = String(v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(node, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

// ------------------------------------------------------------ formatting

/** Base units (a JSON integer or decimal string) as BigInt. */
function units(v) {
  if (typeof v === "bigint") return v;
  if (typeof v === "string") return BigInt(v);
  if (typeof v === "number" && Number.isFinite(v)) return BigInt(Math.round(v));
  return 0n;
}

function group(digits) {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** Base units as a token amount with all six decimals, like `depin_core::format_tokens`
 *  (plus thousands separators): exact, so it can be checked against the API. */
function tokens(v) {
  const n = units(v);
  const neg = n < 0n;
  const a = neg ? -n : n;
  const whole = a / BASE_UNITS_PER_TOKEN;
  const frac = (a % BASE_UNITS_PER_TOKEN).toString().padStart(6, "0");
  return (neg ? "-" : "") + group(whole.toString()) + "." + frac;
}

/** USD: two decimals, more for small amounts so a young device does not show $0.00. */
function usd(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return "unknown";
  const a = Math.abs(x);
  const digits = a === 0 || a >= 1 ? 2 : a >= 0.01 ? 3 : 5;
  const s = a.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return (x < 0 && Number(s.replace(/,/g, "")) !== 0 ? "-$" : "$") + s;
}

/** USD for chart axes: short ($950, $12.5k, $3.1M). */
function usdShort(x) {
  const a = Math.abs(x);
  const [div, suffix] = a >= 1e9 ? [1e9, "B"] : a >= 1e6 ? [1e6, "M"] : a >= 1e4 ? [1e3, "k"] : [1, ""];
  const v = a / div;
  const s = v.toLocaleString("en-US", { maximumFractionDigits: div === 1 && v < 10 ? 2 : 1 });
  return (x < 0 ? "-$" : "$") + s + suffix;
}

function num(x, digits) {
  if (x === null || x === undefined || !Number.isFinite(x)) return "unknown";
  return x.toLocaleString("en-US", { maximumFractionDigits: digits === undefined ? 2 : digits });
}

function plural(n, one, many) {
  return `${num(n, 0)} ${n === 1 ? one : many || one + "s"}`;
}

function when(ms) {
  if (ms === null || ms === undefined) return "—";
  const d = new Date(ms);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "unknown";
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${s % 60} s`;
  return `${s} s`;
}

function short(hex) {
  const s = String(hex);
  return s.length > 16 ? `${s.slice(0, 8)}…${s.slice(-6)}` : s;
}

function signClass(x) {
  return x === null || x === undefined ? "" : x < 0 ? "neg" : "pos";
}

// ------------------------------------------------------------------ API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path) {
  const res = await fetch(path, { headers: { accept: "application/json" } });
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (_) {
    throw new ApiError(res.status, "not_json", `${path} answered something that is not JSON`);
  }
  if (!res.ok) {
    throw new ApiError(res.status, body && body.error, (body && body.message) || `${path}: HTTP ${res.status}`);
  }
  return body;
}

const HEX_KEY = /^[0-9a-fA-F]{64}$/;
/** Rows of the network page's epoch table (the chart shows as many). */
const EPOCH_ROWS = 48;

// ----------------------------------------------------------- components

function card(label, value, extra, attrs) {
  return el("li", { class: "card" },
    el("p", { class: "label" }, label),
    el("p", Object.assign({ class: "value" }, attrs || {}), value),
    extra ? el("p", { class: "extra" }, extra) : null);
}

function panel(title, id, ...children) {
  const h = el("h2", { id: `${id}-title` }, title);
  return el("section", { class: "panel", id, "aria-labelledby": `${id}-title` }, h, children);
}

function table(caption, headers, rows, attrs) {
  return el("div", { class: "table-wrap" },
    el("table", attrs || {},
      caption ? el("caption", {}, caption) : null,
      el("thead", {}, el("tr", {}, headers.map((h) => {
        const [text, cls] = Array.isArray(h) ? h : [h, null];
        return el("th", { scope: "col", class: cls }, text);
      }))),
      el("tbody", {}, rows)));
}

function notice(text, kind) {
  return el("p", { class: `notice ${kind || ""}`, role: kind === "error" ? "alert" : "status" }, text);
}

function legend(items) {
  return el("ul", { class: "legend", "aria-hidden": "true" },
    items.map(([cls, text]) => el("li", {}, el("span", { class: `swatch ${cls}` }), text)));
}

/** Round axis ticks covering [lo, hi]. */
function ticks(lo, hi, count) {
  if (hi <= lo) hi = lo + 1;
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  if (out[out.length - 1] < hi) out.push(out[out.length - 1] + step);
  return out;
}

/** A stacked bar chart; `series` names the stacks, `bars` is [{label, values[]}]. */
function barChart(title, bars, series, unitLabel, width) {
  const W = width || 720, H = 250, L = 64, R = 12, T = 22, B = 34;
  const totals = bars.map((b) => b.values.reduce((a, v) => a + v, 0));
  const yt = ticks(0, Math.max(...totals, 0), 4);
  const ymax = yt[yt.length - 1];
  const y = (v) => T + (H - T - B) * (1 - v / ymax);
  const slot = (W - L - R) / Math.max(bars.length, 1);
  const bw = Math.max(2, Math.min(36, slot * 0.7));
  const g = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  g.appendChild(svg("title", { text: title }));
  for (const v of yt) {
    g.appendChild(svg("line", { class: "gridline", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    g.appendChild(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", text: num(v, 4) }));
  }
  g.appendChild(svg("text", { x: 4, y: 11, text: unitLabel }));
  const every = Math.ceil(bars.length / 12);
  bars.forEach((b, i) => {
    const x = L + slot * i + (slot - bw) / 2;
    let acc = 0;
    b.values.forEach((v, s) => {
      if (v <= 0) return;
      const r = svg("rect", { class: `bar s${(s % 4) + 1}`, x, width: bw, y: y(acc + v), height: Math.max(0.5, y(acc) - y(acc + v)) });
      r.appendChild(svg("title", { text: `${b.label}, ${series[s]}: ${num(v, 6)} ${unitLabel}` }));
      g.appendChild(r);
      acc += v;
    });
    if (i % every === 0) g.appendChild(svg("text", { x: x + bw / 2, y: H - B + 16, "text-anchor": "middle", text: b.label }));
  });
  g.appendChild(svg("line", { class: "axis", x1: L, x2: W - R, y1: y(0), y2: y(0) }));
  return g;
}

// ------------------------------------------------------------- routing

function route() {
  const hash = location.hash.replace(/^#/, "");
  const path = hash.startsWith("/") ? hash : location.pathname;
  let m = path.match(/^\/operator\/([^/]*)\/?$/);
  if (m) return { page: "operator", key: decodeURIComponent(m[1]) };
  if (/^\/network\/?$/.test(path)) return { page: "network" };
  return { page: "home" };
}

function go(path) {
  history.pushState(null, "", path);
  render();
}

async function render() {
  const r = route();
  const main = document.getElementById("main");
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === (r.page === "network" ? "network" : "operator")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const input = document.getElementById("operator-key");
  if (r.page === "operator" && document.activeElement !== input) input.value = r.key;
  main.setAttribute("aria-busy", "true");
  main.replaceChildren(el("p", { class: "loading", role: "status" }, "Loading…"));
  try {
    if (r.page === "operator") await operatorPage(main, r.key);
    else if (r.page === "network") await networkPage(main);
    else await homePage(main);
  } catch (e) {
    main.replaceChildren(el("h1", {}, "Something went wrong"),
      notice(`The coordinator's API answered with an error: ${e.message}${e.code ? ` (${e.code})` : ""}. Reload to try again.`, "error"));
  }
  main.setAttribute("aria-busy", "false");
}

// ------------------------------------------------------------------ home

async function homePage(main) {
  document.title = "depin dashboard";
  const net = await api("/v1/network");
  main.replaceChildren(
    el("h1", {}, "depin dashboard"),
    el("p", { class: "sub" }, "What this coordinator pays its operators, read from its public API. Nothing here needs a key file or a passphrase."),
    el("div", { class: "grid2" },
      panel("Operators", "home-operator",
        el("p", {}, "Enter your operator public key in the box at the top (", el("code", {}, "depin keygen"),
          " printed it; ", el("code", {}, "depin operator status --operator-key operator.key"), " shows it too) to see your balance, earnings per epoch and device, costs, payback and alerts."),
        el("p", {}, "Or open ", el("code", {}, "/operator/<key>"), " directly; bookmark it.")),
      panel("Network", "home-network",
        el("p", {}, `${plural(net.devices.active, "active device")}, ${net.last_closed_epoch === null ? "no epoch closed yet" : `last closed epoch ${net.last_closed_epoch}`}, epochs of ${duration(net.epoch_seconds)}.`),
        el("p", {}, el("a", { href: "/network", "data-link": "" }, "Epochs, sectors, refused reports and claims →")))));
}

// -------------------------------------------------------------- operator

async function operatorPage(main, key) {
  if (!HEX_KEY.test(key)) {
    document.title = "Not an operator key · depin";
    main.replaceChildren(el("h1", {}, "Not an operator key"),
      notice(`"${key}" is not a public key: an operator key is 64 hexadecimal characters (0-9, a-f). Enter it in the box at the top.`, "error"));
    return;
  }
  key = key.toLowerCase();
  document.title = `Operator ${short(key)} · depin`;
  const [balance, economics, alerts, devices, rewards, reasons] = await Promise.all([
    api(`/v1/balances/${key}`),
    api(`/v1/operators/${key}/economics`),
    api(`/v1/operators/${key}/alerts`),
    api(`/v1/operators/${key}/devices`),
    api(`/v1/operators/${key}/rewards?epochs=48`),
    api("/v1/reasons"),
  ]);
  // Stored settings exist only when the operator stored some; the economics
  // say which, so the page never asks for a 404.
  const settings = economics.settings_source === "operator" ? await api(`/v1/operators/${key}/settings`) : null;
  const meaning = Object.fromEntries(reasons.map((r) => [r.code, r.meaning]));
  const price = economics.token_price_usd;
  const total = economics.total;
  const earnedUnits = economics.devices.reduce((a, d) => a + units(d.earned.base_units), 0n);

  const children = [
    el("h1", {}, "Operator ", el("span", { class: "mono" }, short(key))),
    el("p", { class: "sub" }, el("span", { class: "mono" }, key), ` · figures as of ${when(economics.as_of_ms)} · token valued at ${usd(price)} (${economics.settings_source === "operator" ? "your settings" : "default settings"})`),
  ];
  if (economics.devices.length === 0) {
    children.push(notice("This coordinator knows no device of this operator. Register one with `depin node init --operator-key …`, or check the key.", ""));
  }
  const balanceTokens = units(balance.balance);
  const paybackPct = total.payback_progress_pct;
  // Totals add only the devices whose costs are known; with none known they say nothing.
  const costsKnown = total.devices > total.devices_with_unknown_costs;
  children.push(el("ul", { class: "cards", "aria-label": "Summary" },
    card("Balance", tokens(balanceTokens), `${usd(Number(balanceTokens) / 1e6 * price)} at ${usd(price)} a token`, { id: "balance", "data-base-units": balanceTokens.toString() }),
    card("Earned, all time", tokens(earnedUnits), `${usd(total.earned_usd)} over ${plural(total.devices, "device")}`, { id: "earned-total", "data-base-units": earnedUnits.toString() }),
    card("Costs so far", costsKnown ? usd(total.costs_usd.running + total.costs_usd.hardware_depreciation) : "unknown",
      costsKnown ? `running ${usd(total.costs_usd.running)} + hardware ${usd(total.costs_usd.hardware_depreciation)}` : "no device has a known hardware profile", { id: "costs-total" }),
    card("Net so far", costsKnown ? usd(total.net_usd) : "unknown",
      !costsKnown ? "name a catalogue profile per device in the settings" : total.devices_with_unknown_costs > 0 ? `${plural(total.devices_with_unknown_costs, "device")} with unknown costs left out` : "earnings minus all costs",
      { id: "net-total", class: `value ${costsKnown ? signClass(total.net_usd) : ""}` }),
    el("li", { class: "card" },
      el("p", { class: "label", id: "payback-label" }, "Payback of hardware"),
      el("p", { class: "value", id: "payback-total" }, paybackPct === null || paybackPct === undefined ? "unknown" : `${num(paybackPct, 2)} %`),
      paybackPct === null || paybackPct === undefined ? el("p", { class: "extra" }, "no device with a known price") : [
        el("progress", { max: 100, value: Math.max(0, Math.min(100, paybackPct)), "aria-labelledby": "payback-label" }),
        el("p", { class: "extra" }, `of ${usd(total.hardware_price_usd)} hardware, from earnings minus running costs`)])));

  // Earnings per epoch, stacked by device.
  const devs = economics.devices.map((d) => d.device);
  const bars = rewards.epochs.map((e) => ({
    label: String(e.epoch),
    values: devs.map((dv) => e.devices.filter((l) => l.device === dv).reduce((a, l) => a + Number(l.reward + l.fees) / 1e6, 0)),
  }));
  const earningsPanel = panel("Earnings per epoch", "earnings");
  if (rewards.epochs.length === 0) {
    earningsPanel.appendChild(notice("No epoch has closed yet. Earnings appear here after the first close.", ""));
  } else {
    const window = rewards.epochs.reduce((a, e) => a + units(e.earned), 0n);
    earningsPanel.append(
      el("p", { class: "sub" }, `Epochs ${rewards.first_epoch}–${rewards.last_epoch}: ${tokens(window)} tokens (${usd(Number(window) / 1e6 * price)}).`),
      devs.length > 1 ? legend(devs.map((d, i) => [`s${(i % 4) + 1}`, short(d)])) : null,
      el("figure", {},
        barChart(`Tokens earned per epoch, epochs ${rewards.first_epoch} to ${rewards.last_epoch}`, bars, devs.map(short), "tokens"),
        el("figcaption", {}, "Reward plus fees per closed epoch. The table below has the same numbers.")),
      el("details", {},
        el("summary", {}, "Per epoch and device, as a table"),
        table(null, ["Epoch", "Closed", "Device", ["Score", "num"], ["Tokens", "num"], "Reasons"],
          rewards.epochs.slice().reverse().flatMap((e) => e.devices.length === 0
            ? [el("tr", {}, el("td", {}, String(e.epoch)), el("td", {}, when(e.closed_ms)), el("td", { colspan: 4, class: "muted" }, "no reward line"))]
            : e.devices.map((l) => el("tr", {},
              el("td", {}, String(e.epoch)), el("td", {}, when(e.closed_ms)),
              el("td", { class: "mono" }, short(l.device)),
              el("td", { class: "num" }, `${num(l.score_ppm / 10000, 2)} %`),
              el("td", { class: "num" }, tokens(units(l.reward) + units(l.fees))),
              el("td", {}, l.reasons.length ? l.reasons.map((r) => el("span", { class: "badge warning", title: meaning[r] || "" }, r)) : el("span", { class: "muted" }, "full reward"))))),
          { id: "earnings-table" })));
  }

  const alertsPanel = panel(`Alerts (${alerts.length})`, "alerts");
  if (alerts.length === 0) alertsPanel.appendChild(el("p", { class: "muted" }, "No alerts: every device is online, cool, up to date and earning like its peers."));
  else alertsPanel.appendChild(el("ul", { class: "alerts" }, alerts.map((a) => el("li", { class: a.severity },
    el("span", { class: `badge ${a.severity}` }, a.severity), el("strong", {}, a.code), " · ", el("span", { class: "mono" }, short(a.device)),
    el("p", {}, a.message),
    a.action ? el("p", { class: "action" }, el("strong", {}, "What to do: "), a.action) : null))));

  children.push(el("div", { class: "grid2" }, earningsPanel, alertsPanel));

  // Devices, each with its own payback chart.
  const byDevice = Object.fromEntries(devices.map((d) => [d.device, d]));
  const devPanel = panel(`Devices (${economics.devices.length})`, "devices");
  devPanel.appendChild(el("div", { class: "devices" }, economics.devices.map((d) => deviceCard(d, byDevice[d.device], meaning, price))));
  children.push(devPanel);
  children.push(settingsPanel(key, economics, settings));
  main.replaceChildren(...children);
}

function deviceCard(d, view, meaning, price) {
  const t = view && view.telemetry;
  const revoked = d.revoked_ms !== null;
  const reasons = view ? Object.entries(view.reasons) : [];
  return el("article", { class: "device", "data-device": d.device, "aria-labelledby": `dev-${d.device}` },
    el("h3", { id: `dev-${d.device}` }, el("span", { class: "mono" }, short(d.device)), " ",
      el("span", { class: `badge ${revoked ? "critical" : "ok"}` }, revoked ? "revoked" : "active"),
      el("span", { class: "badge info" }, d.sector || "unknown sector")),
    el("dl", { class: "facts" },
      el("dt", {}, "Earned"), el("dd", { class: "earned", "data-base-units": String(d.earned.base_units) },
        `${tokens(d.earned.base_units)} tokens · ${usd(d.earned.usd)} · ${plural(d.earned.epochs, "epoch")}`),
      el("dt", {}, "Costs so far"), el("dd", {}, d.costs_usd.running === null ? "unknown (no hardware profile)" :
        `${usd(d.costs_usd.running)} running (electricity ${usd(d.costs_usd.electricity)}, internet ${usd(d.costs_usd.internet)}, maintenance ${usd(d.costs_usd.maintenance)}) + ${usd(d.costs_usd.hardware_depreciation)} hardware`),
      el("dt", {}, "Net"), el("dd", { class: signClass(d.net_usd) }, usd(d.net_usd)),
      el("dt", {}, "Hardware"), el("dd", {}, `${d.hardware_class}${d.profile ? ` (profile ${d.profile}, ${usd(d.hardware_price_usd)})` : ""}`),
      el("dt", {}, "Uptime"), el("dd", {}, t ? `${duration(t.uptime_s)} since the device's last start` : "no heartbeat yet"),
      el("dt", {}, "Temperature"), el("dd", { class: "temperature" }, !t ? "no heartbeat yet" : t.temperature_c === null ? "no sensor" : `${num(t.temperature_c, 1)} °C`),
      el("dt", {}, "Firmware"), el("dd", {}, t ? t.firmware_version : view ? view.firmware_version : "unknown"),
      el("dt", {}, "Power"), el("dd", {}, t ? `${num(t.power_w, 1)} W` : "unknown"),
      el("dt", {}, "Last heartbeat"), el("dd", {}, t ? when(t.timestamp_ms) : "none"),
      el("dt", {}, "Registered"), el("dd", {}, when(d.registered_ms))),
    d.note ? el("p", { class: "notice" }, d.note) : null,
    el("h4", { class: "visually-hidden" }, "Reduced rewards"),
    reasons.length === 0 ? el("p", { class: "muted" }, "No reduced or refused rewards.") :
      el("ul", { class: "reasons", "aria-label": "Why rewards were reduced or reports refused" }, reasons.map(([code, n]) => el("li", {},
        el("span", { class: "badge warning" }, code), `${plural(n, "time")}: ${meaning[code] || "no description"}`))),
    paybackFigure(d, price));
}

/** Recovered running margin against the hardware price, observed so far and projected. */
function paybackFigure(d, _price) {
  const p = d.projection;
  if (!p || p.unavailable) {
    return el("p", { class: "muted" }, `Payback projection: ${p && p.unavailable ? p.unavailable : d.projection_note || "not available"}.`);
  }
  const life = p.basis.lifetime_months || d.lifetime_months || 36;
  const m0 = d.months_active || 0;
  const n0 = d.net_operating_usd || 0;
  const price = d.hardware_price_usd || 0;
  const slope = p.net_operating_usd_per_month;
  const at = (s, m) => n0 + s * (m - m0);
  const ys = [0, n0, price, at(slope.p10, life), at(slope.p90, life), at(slope.p50, life)];
  const W = 420, H = 200, L = 56, R = 10, T = 10, B = 30;
  const yt = ticks(Math.min(...ys), Math.max(...ys), 4);
  const ylo = yt[0], yhi = yt[yt.length - 1];
  const x = (m) => L + (W - L - R) * (m / life);
  const y = (v) => T + (H - T - B) * (1 - (v - ylo) / (yhi - ylo));
  const title = `Payback of ${d.device.slice(0, 8)}: ${usd(n0)} of ${usd(price)} recovered after ${num(m0, 2)} months; median payback ${p.payback_month.p50 === null ? "not within 50 years" : `month ${num(p.payback_month.p50, 0)}`}`;
  const g = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  g.appendChild(svg("title", { text: title }));
  for (const v of yt) {
    g.appendChild(svg("line", { class: "gridline", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
    g.appendChild(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", text: usdShort(v) }));
  }
  for (const m of ticks(0, life, 6).filter((m) => m <= life)) {
    g.appendChild(svg("text", { x: x(m), y: H - B + 16, "text-anchor": "middle", text: String(m) }));
  }
  g.appendChild(svg("text", { x: W - R, y: H - 2, "text-anchor": "end", text: "months since registration" }));
  g.appendChild(svg("polygon", { class: "band", points: `${x(m0)},${y(n0)} ${x(life)},${y(at(slope.p90, life))} ${x(life)},${y(at(slope.p10, life))}` }));
  g.appendChild(svg("line", { class: "target", x1: L, x2: W - R, y1: y(price), y2: y(price) }));
  g.appendChild(svg("line", { class: "axis", x1: L, x2: W - R, y1: y(0), y2: y(0) }));
  g.appendChild(svg("line", { class: "p50", x1: x(m0), y1: y(n0), x2: x(life), y2: y(at(slope.p50, life)) }));
  g.appendChild(svg("line", { class: "observed", x1: x(0), y1: y(0), x2: x(m0), y2: y(n0) }));
  g.appendChild(svg("circle", { class: "dot", cx: x(m0), cy: y(n0), r: 4 }));
  return el("figure", {},
    legend([["", "recovered so far"], ["s2", "median projection"], ["band", "p10–p90"], ["target", "hardware price"]]),
    g,
    el("figcaption", {}, `Earnings minus running costs, cumulative. Median ${usd(slope.p50)} a month (p10 ${usd(slope.p10)}, p90 ${usd(slope.p90)}); payback month p10/p50/p90: ${[p.payback_month.p10, p.payback_month.p50, p.payback_month.p90].map((v) => v === null ? "never" : num(v, 0)).join(" / ")}; chance of payback within the ${num(life, 0)}-month lifetime ${num(p.payback_within_lifetime_probability * 100, 0)} %.`));
}

/** The cost settings, read-only. The fields are a form already so that signed
 *  editing (once the settings envelope can be signed in the browser) only adds
 *  a submit handler; until then the command below changes them. */
function settingsPanel(key, economics, stored) {
  const s = stored ? stored.settings : null;
  const field = (id, label, value, unit) => el("div", { class: "field" },
    el("label", { for: `setting-${id}` }, label),
    el("input", { id: `setting-${id}`, name: id, readonly: true, value: value === null || value === undefined ? "profile default" : String(value), "aria-describedby": "settings-how" }),
    unit ? el("span", { class: "muted" }, unit) : null);
  const origin = location.origin;
  const cmd = `depin operator settings set --operator-key operator.key --coordinator ${origin} \\\n  --kwh-price ${s ? s.kwh_price_usd : economics.kwh_price_usd} --token-price ${s ? s.token_price_usd : economics.token_price_usd}` +
    (s ? ` --internet ${s.internet_usd_per_month}` : " --internet 0") +
    (s && s.maintenance_usd_per_month !== null && s.maintenance_usd_per_month !== undefined ? ` --maintenance ${s.maintenance_usd_per_month}` : "");
  const hw = s ? Object.entries(s.hardware || {}) : [];
  return panel("Cost settings", "settings",
    el("p", { class: "sub" }, stored ? `Stored ${when(stored.updated_ms)}, signed by the operator key.` : "No settings stored: the defaults below are in use."),
    el("form", { id: "settings-form", "aria-label": "Cost settings (read-only)" },
      el("div", { class: "settings-grid" },
        field("kwh_price_usd", "Electricity, USD per kWh", s ? s.kwh_price_usd : economics.kwh_price_usd),
        field("token_price_usd", "Token price, USD", s ? s.token_price_usd : economics.token_price_usd),
        field("internet_usd_per_month", "Internet, USD per month", s ? s.internet_usd_per_month : null),
        field("internet_share", "Share of internet charged", s ? s.internet_share : null),
        field("maintenance_usd_per_month", "Maintenance, USD per month per device", s ? s.maintenance_usd_per_month : null))),
    hw.length ? table("Per-device hardware", ["Device", "Profile", ["Price", "num"]],
      hw.map(([dv, h]) => el("tr", {}, el("td", { class: "mono" }, short(dv)), el("td", {}, h.profile || "—"), el("td", { class: "num" }, h.price_usd === null || h.price_usd === undefined ? "catalogue" : usd(h.price_usd))))) : null,
    el("p", { id: "settings-how" }, "Read-only here. Change them with your operator key (signed; add ", el("code", {}, "--file settings.toml"),
      " for per-device hardware profiles):"),
    el("pre", { class: "command", id: "settings-command", tabindex: "0", "aria-label": "Command to change the settings" }, cmd));
}

// --------------------------------------------------------------- network

async function networkPage(main) {
  document.title = "Network · depin";
  const [net, epochs, reasons] = await Promise.all([api("/v1/network"), api("/v1/epochs"), api("/v1/reasons")]);
  const meaning = Object.fromEntries(reasons.map((r) => [r.code, r.meaning]));
  const sum = (f) => epochs.reduce((a, e) => a + units(e[f]), 0n);
  const latest = epochs.length ? epochs[epochs.length - 1] : null;
  const children = [
    el("h1", {}, "Network"),
    el("p", { class: "sub" }, `Policy ${net.policy_id} · epochs of ${duration(net.epoch_seconds)}`),
    el("ul", { class: "cards", "aria-label": "Summary" },
      card("Last closed epoch", net.last_closed_epoch === null ? "none yet" : String(net.last_closed_epoch), latest ? `closed ${when(latest.closed_ms)}` : null, { id: "last-epoch" }),
      card("Devices", num(net.devices.active, 0), `active; ${num(net.devices.revoked, 0)} revoked`, { id: "devices-active" }),
      card("Minted", tokens(sum("minted")), `over ${plural(epochs.length, "epoch")}`, { id: "minted-total" }),
      card("Fees", tokens(sum("fees")), "paid by consumers"),
      card("Burned", tokens(sum("burned")), "removed from supply")),
  ];

  const shown = epochs.slice(-EPOCH_ROWS);
  const chartPanel = panel("Minted, fees and burned per epoch", "supply");
  if (shown.length === 0) chartPanel.appendChild(notice("No epoch has closed yet.", ""));
  else chartPanel.append(
    legend([["", "minted"], ["s2", "fees"], ["s3", "burned"]]),
    el("figure", {}, barChart(`Minted, fees and burned per epoch, last ${shown.length}`,
      shown.map((e) => ({ label: String(e.epoch), values: [Number(e.minted) / 1e6, Number(e.fees) / 1e6, Number(e.burned) / 1e6] })),
      ["minted", "fees", "burned"], "tokens", 1160),
    el("figcaption", {}, "Stacked per closed epoch; the table below has the exact amounts.")));

  const sectors = latest ? Object.entries(latest.per_sector) : [];
  const sectorNames = new Set([...sectors.map(([s]) => s), ...Object.keys(net.devices.by_sector)]);
  const sectorPanel = panel("Sectors", "sectors",
    sectorNames.size === 0 ? el("p", { class: "muted" }, "No device registered yet.") :
      table(latest ? `Devices now; emission and rewards in epoch ${latest.epoch}` : "Devices now",
        ["Sector", ["Active", "num"], ["Revoked", "num"], ["Emission", "num"], ["Distributed", "num"], ["Rewarded devices", "num"]],
        [...sectorNames].sort().map((s) => {
          const t = (latest && latest.per_sector[s]) || null;
          const c = net.devices.by_sector[s] || { active: 0, revoked: 0 };
          return el("tr", {}, el("td", {}, s), el("td", { class: "num" }, num(c.active, 0)), el("td", { class: "num" }, num(c.revoked, 0)),
            el("td", { class: "num" }, t ? tokens(t.emission) : "—"), el("td", { class: "num" }, t ? tokens(t.distributed) : "—"),
            el("td", { class: "num" }, t ? `${num(t.rewarded, 0)} of ${num(t.devices, 0)}` : "—"));
        })));

  const rej = Object.entries(net.rejections).sort((a, b) => b[1] - a[1]);
  const rejPanel = panel("Refused reports by reason", "rejections",
    rej.length === 0 ? el("p", { class: "muted" }, "No report has been refused.") :
      table(null, ["Reason", ["Reports", "num"], "Meaning"], rej.map(([code, n]) => el("tr", {},
        el("td", {}, el("span", { class: "badge warning" }, code)), el("td", { class: "num" }, num(n, 0)), el("td", {}, meaning[code] || "")))));

  const epochPanel = panel("Epochs", "epochs",
    epochs.length === 0 ? el("p", { class: "muted" }, "No epoch has closed yet.") :
      table(epochs.length > EPOCH_ROWS ? `The newest ${EPOCH_ROWS} of ${epochs.length}, newest first (all: /v1/epochs); amounts in tokens` : "Newest first; amounts in tokens", ["Epoch", "Closed", ["Devices", "num"], ["Emission", "num"], ["Minted", "num"], ["Fees", "num"], ["Burned", "num"], "Claim root"],
        epochs.slice(-EPOCH_ROWS).reverse().map((e) => el("tr", {},
          el("td", {}, String(e.epoch)), el("td", {}, when(e.closed_ms)), el("td", { class: "num" }, num(e.devices, 0)),
          el("td", { class: "num" }, tokens(e.emission)), el("td", { class: "num" }, tokens(e.minted)),
          el("td", { class: "num" }, tokens(e.fees)), el("td", { class: "num" }, tokens(e.burned)),
          el("td", {}, el("code", { class: "hash", title: e.claim_root }, e.claim_root)))), { id: "epochs-table" }));

  children.push(chartPanel, sectorPanel, rejPanel, claimPanel(latest), epochPanel);
  main.replaceChildren(...children);
}

function claimPanel(latest) {
  const out = el("div", { id: "claim-result", "aria-live": "polite" });
  const epoch = el("input", { id: "claim-epoch", name: "epoch", inputmode: "numeric", pattern: "[0-9]+", required: true, value: latest ? String(latest.epoch) : "" });
  const account = el("input", { id: "claim-account", name: "account", required: true, pattern: "[0-9a-fA-F]{64}", spellcheck: "false", autocomplete: "off", placeholder: "operator public key, 64 hex" });
  const form = el("form", { id: "claim-form", "aria-label": "Look up a claim" },
    el("div", { class: "form-row" },
      el("div", { class: "field" }, el("label", { for: "claim-epoch" }, "Epoch"), epoch),
      el("div", { class: "field wide" }, el("label", { for: "claim-account" }, "Account"), account),
      el("button", { type: "submit" }, "Show claim")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const n = epoch.value.trim(), a = account.value.trim();
    if (!/^[0-9]+$/.test(n) || !HEX_KEY.test(a)) {
      out.replaceChildren(notice("Enter a closed epoch number and a 64-character hex public key.", "error"));
      return;
    }
    out.replaceChildren(el("p", { class: "loading" }, "Loading…"));
    try {
      const c = await api(`/v1/claims/${n}/${a.toLowerCase()}`);
      out.replaceChildren(
        el("dl", { class: "facts" },
          el("dt", {}, "Cumulative amount"), el("dd", { id: "claim-amount" }, `${tokens(c.amount)} tokens (${c.amount} base units)`),
          el("dt", {}, "Leaf"), el("dd", { class: "mono" }, c.leaf),
          el("dt", {}, "Root"), el("dd", { class: "mono" }, c.root)),
        el("h3", {}, `Proof (${plural(c.proof.length, "hash", "hashes")})`),
        c.proof.length === 0 ? el("p", { class: "muted" }, "Empty: this is the only leaf, the leaf is the root.") :
          el("ol", { class: "proof mono" }, c.proof.map((h) => el("li", {}, h))),
        el("p", { class: "muted" }, "An OpenZeppelin StandardMerkleTree proof of (account, amount); `depin operator claim --epoch N --json` prints the same for a distributor contract."));
    } catch (e) {
      out.replaceChildren(notice(`${e.message}${e.code ? ` (${e.code})` : ""}`, "error"));
    }
  });
  return panel("Claim with its proof", "claim",
    el("p", { class: "sub" }, "What an account may claim in total as of a closed epoch, and the Merkle proof a distributor contract checks."),
    form, out);
}

// ------------------------------------------------------------------ start

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = document.getElementById("operator-key");
    const key = input.value.trim();
    go(`/operator/${encodeURIComponent(key)}`);
    document.getElementById("main").focus();
  });
  // Same-origin links marked data-link, and the nav, render without a reload.
  document.addEventListener("click", (ev) => {
    const a = ev.target.closest && ev.target.closest("a[data-nav], a[data-link]");
    if (!a || ev.ctrlKey || ev.metaKey || ev.shiftKey || ev.button !== 0) return;
    ev.preventDefault();
    go(a.getAttribute("href"));
    document.getElementById("main").focus();
  });
  window.addEventListener("popstate", render);
  window.addEventListener("hashchange", render);
  render();
});
