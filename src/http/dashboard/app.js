// The wtf-monitor dashboard: reads the API and follows /events.
//
// - Text from devices or the model (messages, summaries, ids) is only ever set as textContent.
// - Charts are made only for the sensors picked and only while on screen (IntersectionObserver);
//   new readings go into plain arrays and the visible charts redraw at most once a second.
// - The stream reconnects by itself; after any reconnect or a `reset` event the page reloads
//   what it shows from the API, so a daemon restart leaves nothing stale.
"use strict";

(() => {
  const WINDOW_SECONDS = 30 * 60; // what a trend shows
  const MAX_POINTS = 900; // asked of /readings per chart
  const MAX_ANOMALIES = 200; // rows kept in the table
  const MAX_MARKS = 50; // anomaly marks kept per chart
  const AUTO_SHOW = 12; // with more sensors than this, only the first few are shown at first
  const FIRST_SHOWN = 4;
  const STATUS_EVERY_MS = 5000;
  const CHART_HEIGHT = 180;
  const TOKEN_KEY = "wtf-monitor.operator-token";

  const $ = (id) => document.getElementById(id);
  const el = (tag, text, className) => {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  };

  // ---- formatting: local time, units beside values ----

  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  const localTime = (iso) => {
    if (!iso) return "—";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return "—";
    const today = new Date().toDateString() === date.toDateString();
    return (today ? timeFormat : dateTimeFormat).format(date);
  };
  const number = (value) => {
    if (value === null || value === undefined || !Number.isFinite(value)) return "—";
    const abs = Math.abs(value);
    return value.toLocaleString(undefined, { maximumFractionDigits: abs >= 100 ? 1 : abs >= 1 ? 2 : 3 });
  };
  const withUnit = (value, unit) => {
    const text = number(value);
    return text === "—" || !unit ? text : `${text} ${unit}`;
  };
  const unitOf = (sensor, parameter) => state.limits.get(sensor)?.[parameter]?.unit ?? "";
  const labelOf = (sensor, parameter) => state.limits.get(sensor)?.[parameter]?.label ?? parameter;
  // An anomaly's value and threshold are in the parameter's unit, but a rate's are per second and
  // a dropout's threshold is a time.
  const anomalyUnit = (anomaly) => {
    const unit = unitOf(anomaly.sensor_id, anomaly.parameter);
    return anomaly.type === "rate" ? `${unit || "units"}/s` : unit;
  };

  // ---- state ----

  const state = {
    limits: new Map(), // sensor -> {parameter -> limits}
    sensors: [], // ids, in order
    parameters: [], // names, in order
    shown: new Set(),
    series: new Map(), // "sensor|parameter" -> {t: [], v: [], marks: [{t, type, value}]}
    charts: new Map(), // key -> {card, plot, visible, dirty}
    alarms: new Map(),
    anomalies: [],
    sensorActive: new Map(),
    lastEventId: null,
  };
  const key = (sensor, parameter) => `${sensor}|${parameter}`;

  // ---- API ----

  async function getJson(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!response.ok) throw new Error(`${path}: ${response.status}`);
    return response.json();
  }

  // ---- operator token: session storage only ----

  const token = {
    get: () => sessionStorage.getItem(TOKEN_KEY),
    set: (value) => { sessionStorage.setItem(TOKEN_KEY, value); showOperator(); },
    forget: () => { sessionStorage.removeItem(TOKEN_KEY); showOperator(); },
  };
  function showOperator() {
    const has = !!token.get();
    $("operator-state").textContent = has ? "Operator token set for this tab" : "No operator token";
    $("token-forget").hidden = !has;
  }

  function askToken(reason) {
    return new Promise((resolve) => {
      const dialog = $("token-dialog");
      $("token-reason").textContent = reason || "Acknowledging and shelving need an operator token.";
      $("token-input").value = "";
      dialog.addEventListener("close", function closed() {
        dialog.removeEventListener("close", closed);
        const value = $("token-input").value.trim();
        $("token-input").value = "";
        if (dialog.returnValue === "ok" && value) { token.set(value); resolve(value); } else resolve(null);
      });
      dialog.showModal();
      $("token-input").focus();
    });
  }

  // Sends an operator's write, asking for a token when there is none or it was refused.
  async function operate(path, body) {
    let reason;
    for (let attempt = 0; attempt < 3; attempt++) {
      const bearer = token.get() || (await askToken(reason));
      if (!bearer) return null;
      const response = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${bearer}` },
        body: JSON.stringify(body ?? {}),
      });
      const answer = await response.json().catch(() => ({}));
      if (response.ok) return answer;
      if (response.status === 401 || response.status === 403) {
        token.forget();
        reason = answer.error || `refused (${response.status})`;
        continue;
      }
      window.alert(`Not done: ${answer.error || response.status}`);
      return null;
    }
    return null;
  }

  // ---- status lights ----

  function light(name, level, text) {
    const item = document.querySelector(`[data-light="${name}"]`);
    if (!item) return;
    item.dataset.level = level;
    item.querySelector("b").textContent = text;
  }

  const levelOf = (stateName) => {
    switch (stateName) {
      case "connected": case "active": case "ok": case "up": return "ok";
      case "disabled": case "off": case undefined: case null: return "off";
      case "reconnecting": case "degraded": case "connecting": case "backoff": return "warn";
      default: return "bad";
    }
  };

  async function loadStatus() {
    let status;
    try { status = await getJson("/status"); } catch { light("sensors", "bad", "no answer"); return; }
    const sensors = Object.entries(status.sensors || {});
    for (const [id, sensor] of sensors) state.sensorActive.set(id, !!sensor.active);
    // The per-sensor map is bounded (the first sensors only); the counts cover them all.
    light("sensors", status.sensor_active ? "ok" : "bad", `${status.sensors_active}/${status.sensors_total} reporting`);
    light("detectors", status.detector_active ? "ok" : "bad", status.detector_active ? "running" : "down");
    const redis = status.redis?.state;
    light("redis", levelOf(redis), redis || "disabled");
    const llm = status.llm?.state;
    light("llm", llm === "disabled" ? "off" : status.llm_active ? "ok" : levelOf(llm), llm || "disabled");
    const mqtt = status.mqtt?.state;
    light("mqtt", levelOf(mqtt), mqtt || "disabled");
    for (const item of document.querySelectorAll("#sensor-list li")) {
      const known = state.sensorActive.get(item.dataset.sensor);
      item.dataset.level = known === undefined ? "off" : known ? "ok" : "bad";
    }
  }

  // ---- trends ----

  async function loadLimits() {
    const body = await getJson("/limits");
    state.limits.clear();
    const parameters = new Set();
    for (const sensor of body.sensors) {
      state.limits.set(sensor.sensor_id, sensor.parameters);
      Object.keys(sensor.parameters).forEach((name) => parameters.add(name));
    }
    const sensors = body.sensors.map((sensor) => sensor.sensor_id);
    const changed = sensors.join() !== state.sensors.join() || [...parameters].join() !== state.parameters.join();
    state.sensors = sensors;
    state.parameters = [...parameters];
    if (changed) {
      const first = sensors.length > AUTO_SHOW ? sensors.slice(0, FIRST_SHOWN) : sensors;
      state.shown = new Set([...state.shown].filter((id) => sensors.includes(id)));
      if (state.shown.size === 0) first.forEach((id) => state.shown.add(id));
      buildPicker();
      buildCharts();
      fillFilters();
    }
  }

  function buildPicker() {
    const list = $("sensor-list");
    list.replaceChildren();
    for (const id of state.sensors) {
      const item = el("li");
      item.dataset.sensor = id;
      const label = el("label");
      const box = el("input");
      box.type = "checkbox";
      box.checked = state.shown.has(id);
      box.addEventListener("change", () => {
        if (box.checked) state.shown.add(id); else state.shown.delete(id);
        buildCharts();
      });
      label.append(box, el("span", "", "dot"), el("span", id));
      item.append(label);
      list.append(item);
    }
    filterPicker();
  }

  function filterPicker() {
    const wanted = $("sensor-filter").value.trim().toLowerCase();
    for (const item of document.querySelectorAll("#sensor-list li")) {
      item.hidden = !!wanted && !item.dataset.sensor.toLowerCase().includes(wanted);
    }
    $("shown-count").textContent = `${state.shown.size} of ${state.sensors.length} shown`;
  }

  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const chart = state.charts.get(entry.target.dataset.key);
      if (!chart) continue;
      chart.visible = entry.isIntersecting;
      if (chart.visible) showChart(chart); else hideChart(chart);
    }
  }, { rootMargin: "300px 0px" });

  function buildCharts() {
    for (const chart of state.charts.values()) { observer.unobserve(chart.card); hideChart(chart); }
    state.charts.clear();
    const container = $("charts");
    container.replaceChildren();
    for (const sensor of state.sensors) {
      if (!state.shown.has(sensor)) continue;
      const group = el("div", null, "sensor-group");
      group.append(el("h3", sensor));
      const row = el("div", null, "chart-row");
      for (const parameter of state.parameters) {
        if (!state.limits.get(sensor)?.[parameter]) continue;
        const card = el("figure", null, "chart");
        card.dataset.key = key(sensor, parameter);
        card.dataset.sensor = sensor;
        card.dataset.parameter = parameter;
        const unit = unitOf(sensor, parameter);
        const caption = el("figcaption");
        caption.append(el("span", labelOf(sensor, parameter), "name"), el("span", unit ? ` (${unit})` : "", "unit"),
          el("span", "", "latest"));
        card.append(caption, el("div", null, "plot"));
        row.append(card);
        const chart = { sensor, parameter, card, plot: null, visible: false, dirty: false, loaded: false };
        state.charts.set(card.dataset.key, chart);
        observer.observe(card);
      }
      group.append(row);
      container.append(group);
    }
    filterPicker();
  }

  function seriesOf(sensor, parameter) {
    const k = key(sensor, parameter);
    let series = state.series.get(k);
    if (!series) { series = { t: [], v: [], marks: [] }; state.series.set(k, series); }
    return series;
  }

  async function loadHistory(chart) {
    const since = new Date(Date.now() - WINDOW_SECONDS * 1000).toISOString();
    const query = new URLSearchParams({ sensor_id: chart.sensor, parameter: chart.parameter, since,
      max_points: String(MAX_POINTS) });
    try {
      const body = await getJson(`/readings?${query}`);
      const series = seriesOf(chart.sensor, chart.parameter);
      const live = series.t.length ? series.t[series.t.length - 1] : -Infinity;
      const t = [], v = [];
      for (const point of body.points) {
        const at = Date.parse(point.t) / 1000;
        if (!Number.isFinite(at)) continue;
        // A downsampled point stands for many readings: show its extreme so a spike stays seen.
        t.push(at);
        v.push(point.max !== undefined && point.min !== undefined && point.max !== point.min
          ? (Math.abs(point.max - point.v) > Math.abs(point.min - point.v) ? point.max : point.min) : point.v);
      }
      // Keep live readings newer than the history's last point.
      const last = t.length ? t[t.length - 1] : -Infinity;
      for (let i = 0; i < series.t.length; i++) {
        if (series.t[i] > last && series.t[i] <= live) { t.push(series.t[i]); v.push(series.v[i]); }
      }
      series.t = t; series.v = v;
      chart.loaded = true;
      chart.dirty = true;
    } catch { /* shown as empty; the next reconnect reloads */ }
  }

  function limitLines(sensor, parameter) {
    const limits = state.limits.get(sensor)?.[parameter];
    if (!limits) return [];
    return [
      ["spike", limits.spike, "#c62828", [], false],
      ["drift", limits.drift, "#ef6c00", [6, 4], true],
      ["low drift", limits.low_drift, "#ef6c00", [6, 4], false],
      ["low spike", limits.low_spike, "#c62828", [], true],
    ].filter(([, value]) => Number.isFinite(value));
  }

  function showChart(chart) {
    if (chart.plot) return;
    const box = chart.card.querySelector(".plot");
    const unit = unitOf(chart.sensor, chart.parameter);
    const lines = limitLines(chart.sensor, chart.parameter);
    const series = seriesOf(chart.sensor, chart.parameter);
    const options = {
      width: Math.max(200, box.clientWidth || 320),
      height: CHART_HEIGHT,
      legend: { show: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true },
        y: {
          range: (u, min, max) => {
            let low = Number.isFinite(min) ? min : 0, high = Number.isFinite(max) ? max : 1;
            for (const [, value] of lines) { low = Math.min(low, value); high = Math.max(high, value); }
            const pad = (high - low) * 0.08 || 1;
            return [low - pad, high + pad];
          },
        },
      },
      axes: [
        { stroke: "#555", grid: { stroke: "#eee" }, ticks: { stroke: "#ddd" } },
        { stroke: "#555", grid: { stroke: "#eee" }, ticks: { stroke: "#ddd" }, size: 52,
          values: (u, values) => values.map((value) => number(value)) },
      ],
      series: [
        {},
        { label: labelOf(chart.sensor, chart.parameter), stroke: "#1f5f99", width: 1.5,
          value: (u, value) => withUnit(value, unit) },
      ],
      hooks: {
        draw: [(u) => drawOverlay(u, chart, lines)],
      },
    };
    chart.plot = new uPlot(options, [series.t, series.v], box);
    chart.card.classList.add("drawn");
    if (!chart.loaded) loadHistory(chart).then(() => redraw(chart));
    else redraw(chart);
  }

  function hideChart(chart) {
    if (!chart.plot) return;
    chart.plot.destroy();
    chart.plot = null;
    chart.card.classList.remove("drawn");
  }

  // Limit lines across the chart, anomalies as marks on the time axis.
  function drawOverlay(u, chart, lines) {
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    const ratio = window.devicePixelRatio || 1;
    ctx.font = `${11 * ratio}px sans-serif`;
    for (const [name, value, color, dash, below] of lines) {
      const y = Math.round(u.valToPos(value, "y", true));
      ctx.strokeStyle = color;
      ctx.lineWidth = ratio;
      ctx.setLineDash(dash.map((d) => d * ratio));
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + width, y); ctx.stroke();
      ctx.fillStyle = color;
      ctx.textAlign = "right";
      // A drift limit sits just inside its spike limit: its name goes on the inner side.
      // No room above the plot's top edge: the name goes under the line.
      const under = below || y - 14 * ratio < top;
      ctx.textBaseline = under ? "top" : "bottom";
      ctx.fillText(name, left + width - 4 * ratio, under ? y + 2 * ratio : y - 2 * ratio);
    }
    ctx.setLineDash([]);
    const series = seriesOf(chart.sensor, chart.parameter);
    const [from, to] = [u.scales.x.min, u.scales.x.max];
    for (const mark of series.marks) {
      if (mark.t < from || mark.t > to) continue;
      const x = Math.round(u.valToPos(mark.t, "x", true));
      ctx.strokeStyle = "rgba(198, 40, 40, 0.35)";
      ctx.lineWidth = 2 * ratio;
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
      ctx.fillStyle = "#c62828";
      ctx.beginPath();
      ctx.moveTo(x - 5 * ratio, top); ctx.lineTo(x + 5 * ratio, top); ctx.lineTo(x, top + 8 * ratio);
      ctx.closePath(); ctx.fill();
    }
    ctx.restore();
  }

  function redraw(chart) {
    chart.dirty = false;
    const series = seriesOf(chart.sensor, chart.parameter);
    const latest = chart.card.querySelector(".latest");
    const last = series.v.length ? series.v[series.v.length - 1] : null;
    latest.textContent = last === null ? "" : ` ${withUnit(last, unitOf(chart.sensor, chart.parameter))}`;
    chart.card.dataset.marks = String(series.marks.length);
    if (!chart.plot) return;
    const now = Date.now() / 1000;
    // A young daemon has less than the window: show what there is, at least two minutes.
    const first = series.t.length ? series.t[0] : now;
    const from = Math.max(now - WINDOW_SECONDS, Math.min(first, now - 120));
    chart.plot.batch(() => {
      chart.plot.setData([series.t, series.v], false);
      chart.plot.setScale("x", { min: from, max: now });
    });
  }

  function addReading(reading) {
    const at = Date.parse(reading.timestamp) / 1000;
    if (!Number.isFinite(at)) return;
    for (const [parameter, value] of Object.entries(reading)) {
      if (parameter === "sensor_id" || parameter === "timestamp" || typeof value !== "number") continue;
      const series = seriesOf(reading.sensor_id, parameter);
      if (series.t.length && at <= series.t[series.t.length - 1]) continue;
      series.t.push(at); series.v.push(value);
      const cut = at - WINDOW_SECONDS;
      let drop = 0;
      while (drop < series.t.length && series.t[drop] < cut) drop++;
      if (drop > 0) { series.t.splice(0, drop); series.v.splice(0, drop); }
      const chart = state.charts.get(key(reading.sensor_id, parameter));
      if (chart) chart.dirty = true;
    }
  }

  function markAnomaly(anomaly) {
    const at = Date.parse(anomaly.timestamp) / 1000;
    if (!Number.isFinite(at)) return;
    const series = seriesOf(anomaly.sensor_id, anomaly.parameter);
    if (series.marks.some((mark) => mark.id === anomaly.id)) return;
    series.marks.push({ id: anomaly.id, t: at, type: anomaly.type });
    if (series.marks.length > MAX_MARKS) series.marks.shift();
    const chart = state.charts.get(key(anomaly.sensor_id, anomaly.parameter));
    if (chart) chart.dirty = true;
  }

  // One redraw a second at most, of the charts on screen only.
  setInterval(() => {
    for (const chart of state.charts.values()) if (chart.plot) redraw(chart);
  }, 1000);

  window.addEventListener("resize", () => {
    for (const chart of state.charts.values()) {
      if (!chart.plot) continue;
      const box = chart.card.querySelector(".plot");
      chart.plot.setSize({ width: Math.max(200, box.clientWidth), height: CHART_HEIGHT });
    }
  });

  // ---- alarms ----

  const PRIORITY_ORDER = { critical: 0, high: 1, medium: 2, low: 3 };
  const STATE_TEXT = { active_unack: "Active · unack", active_ack: "Active · acked",
    cleared_unack: "Cleared · unack", normal: "Normal" };

  async function loadAlarms() {
    const alarms = await getJson("/alarms");
    state.alarms = new Map(alarms.map((alarm) => [alarm.id, alarm]));
    renderAlarms();
  }

  function updateAlarm(alarm) {
    if (alarm.state === "normal") state.alarms.delete(alarm.id); else state.alarms.set(alarm.id, alarm);
    renderAlarms();
  }

  function renderAlarms() {
    const rows = $("alarm-rows");
    const alarms = [...state.alarms.values()].sort((a, b) =>
      (PRIORITY_ORDER[a.priority] ?? 9) - (PRIORITY_ORDER[b.priority] ?? 9) || (a.raised_at < b.raised_at ? 1 : -1));
    rows.replaceChildren(...alarms.map(alarmRow));
    $("alarms-empty").hidden = alarms.length > 0;
    const unacked = alarms.filter((alarm) => alarm.state.endsWith("_unack")).length;
    $("alarm-count").textContent = alarms.length ? `${alarms.length}, ${unacked} unacknowledged` : "";
  }

  function alarmRow(alarm) {
    const row = el("tr", null, `alarm ${alarm.state}`);
    row.dataset.id = alarm.id;
    row.dataset.state = alarm.state;
    row.append(el("td", alarm.priority, `priority ${alarm.priority}`));
    const stateCell = el("td", STATE_TEXT[alarm.state] || alarm.state, "state");
    if (alarm.shelved_until) stateCell.append(el("div", `shelved until ${localTime(alarm.shelved_until)}`, "meta"));
    if (alarm.suppressed) stateCell.append(el("div", "suppressed (silent)", "meta"));
    if (alarm.acked_by) stateCell.append(el("div", `ack ${alarm.acked_by}`, "meta"));
    row.append(stateCell);
    const where = el("td");
    where.append(el("div", `${alarm.sensor_id} · ${labelOf(alarm.sensor_id, alarm.parameter)}`),
      el("div", alarm.type.replace("_", " "), "meta"));
    where.title = alarm.message;
    row.append(where);
    const unit = alarm.type === "rate" ? `${alarm.unit || "units"}/s` : alarm.unit;
    const value = el("td", withUnit(alarm.peak ?? alarm.value, unit), "num");
    value.append(el("div", `limit ${withUnit(alarm.limit, alarm.type === "dropout" ? "s" : unit)}`, "meta"));
    row.append(value);
    row.append(el("td", localTime(alarm.raised_at), "time"));
    const actions = el("td", null, "actions");
    if (alarm.state === "active_unack" || alarm.state === "cleared_unack") {
      const ack = el("button", "Acknowledge", "ack");
      ack.type = "button";
      ack.addEventListener("click", async () => {
        ack.disabled = true;
        const answer = await operate(`/alarms/${encodeURIComponent(alarm.id)}/ack`, {});
        ack.disabled = false;
        if (answer) updateAlarm(answer);
      });
      actions.append(ack);
    }
    if (alarm.shelved_until) {
      const unshelve = el("button", "Unshelve", "unshelve");
      unshelve.type = "button";
      unshelve.addEventListener("click", async () => {
        const answer = await operate(`/alarms/${encodeURIComponent(alarm.id)}/unshelve`, {});
        if (answer) updateAlarm(answer);
      });
      actions.append(unshelve);
    } else if (alarm.state !== "normal") {
      const shelve = el("button", "Shelve", "shelve");
      shelve.type = "button";
      shelve.addEventListener("click", () => shelveAlarm(alarm));
      actions.append(shelve);
    }
    row.append(actions);
    return row;
  }

  function shelveAlarm(alarm) {
    const dialog = $("shelve-dialog");
    $("shelve-what").textContent = `${alarm.sensor_id} · ${alarm.parameter} · ${alarm.type}`;
    $("shelve-reason").value = "";
    dialog.addEventListener("close", async function closed() {
      dialog.removeEventListener("close", closed);
      if (dialog.returnValue !== "ok") return;
      const body = { duration: $("shelve-duration").value };
      const reason = $("shelve-reason").value.trim();
      if (reason) body.reason = reason;
      const answer = await operate(`/alarms/${encodeURIComponent(alarm.id)}/shelve`, body);
      if (answer) updateAlarm(answer);
    });
    dialog.showModal();
  }

  // ---- anomalies ----

  async function loadAnomalies() {
    const fetched = await getJson(`/anomalies?limit=${MAX_ANOMALIES}`);
    // Anomalies the stream brought while the list was on its way stay.
    const ids = new Set(fetched.map((anomaly) => anomaly.id));
    const merged = fetched.concat(state.anomalies.filter((anomaly) => !ids.has(anomaly.id)));
    merged.sort((a, b) => (a.timestamp < b.timestamp ? 1 : a.timestamp > b.timestamp ? -1 : 0));
    state.anomalies = merged.slice(0, MAX_ANOMALIES);
    for (const anomaly of state.anomalies) markAnomaly(anomaly);
    renderAnomalies();
  }

  function addAnomaly(anomaly) {
    if (state.anomalies.some((known) => known.id === anomaly.id)) return;
    state.anomalies.unshift(anomaly);
    if (state.anomalies.length > MAX_ANOMALIES) state.anomalies.pop();
    markAnomaly(anomaly);
    renderAnomalies();
  }

  function fillFilters() {
    const fill = (select, values) => {
      const chosen = select.value;
      const first = select.options[0];
      select.replaceChildren(first, ...values.map((value) => { const option = el("option", value); option.value = value; return option; }));
      select.value = values.includes(chosen) ? chosen : "";
    };
    fill($("filter-sensor"), state.sensors);
    fill($("filter-parameter"), state.parameters);
    fill($("filter-type"), ["spike", "drift", "dropout", "low_spike", "low_drift", "rate", "stuck"]);
  }

  function renderAnomalies() {
    const [sensor, parameter, type] = ["filter-sensor", "filter-parameter", "filter-type"].map((id) => $(id).value);
    const shown = state.anomalies.filter((anomaly) =>
      (!sensor || anomaly.sensor_id === sensor) && (!parameter || anomaly.parameter === parameter) &&
      (!type || anomaly.type === type));
    const rows = shown.slice(0, 100).map((anomaly) => {
      const row = el("tr", null, `anomaly ${anomaly.type}`);
      row.dataset.id = anomaly.id;
      row.append(el("td", localTime(anomaly.timestamp), "time"), el("td", anomaly.type, "type"),
        el("td", `${anomaly.sensor_id} · ${labelOf(anomaly.sensor_id, anomaly.parameter)}`));
      const value = el("td", withUnit(anomaly.value, anomalyUnit(anomaly)), "num");
      value.append(el("div", `limit ${withUnit(anomaly.threshold, anomaly.type === "dropout" ? "s" : anomalyUnit(anomaly))}`, "meta"));
      row.append(value, el("td", anomaly.message, "message"));
      return row;
    });
    $("anomaly-rows").replaceChildren(...rows);
    $("anomalies-empty").hidden = rows.length > 0;
    $("anomaly-count").textContent = shown.length === state.anomalies.length
      ? `${state.anomalies.length} newest` : `${shown.length} of ${state.anomalies.length}`;
  }

  // ---- summary ----

  async function loadSummary() { showSummary(await getJson("/summary")); }

  function showSummary(summary) {
    $("summary-text").textContent = summary.summary;
    const origin = summary.generated_by === "llm"
      ? `Written by the model${summary.model ? ` ${summary.model}` : ""}`
      : `Template${summary.model ? ` (model ${summary.model} did not answer)` : ""}`;
    $("summary-origin").textContent =
      `${origin} · ${localTime(summary.window_start)} – ${localTime(summary.window_end)} · ${summary.anomaly_count} anomalies`;
    $("summary").dataset.origin = summary.generated_by;
  }

  // ---- the stream ----

  let stream = null;
  let reloadTimer = null;

  async function reloadAll() {
    await loadLimits().catch(() => {});
    await Promise.all([loadAlarms(), loadAnomalies(), loadSummary(), loadStatus()].map((p) => p.catch(() => {})));
    for (const chart of state.charts.values()) {
      chart.loaded = false;
      if (chart.plot) loadHistory(chart).then(() => redraw(chart));
    }
    document.body.dataset.loaded = String(Date.now());
  }

  function connect() {
    const query = new URLSearchParams({ readings: "1" });
    if (state.lastEventId) query.set("since", state.lastEventId);
    const source = new EventSource(`/events?${query}`);
    stream = source;
    let broken = false;
    source.onopen = () => {
      light("stream", "ok", "live");
      document.body.dataset.stream = "open";
      if (broken) { broken = false; reloadAll(); }
    };
    source.onerror = () => {
      broken = true;
      light("stream", "warn", "reconnecting");
      document.body.dataset.stream = "reconnecting";
      // A refused reconnect (the daemon answering an error) closes the source for good.
      if (source.readyState === EventSource.CLOSED) {
        clearTimeout(reloadTimer);
        reloadTimer = setTimeout(() => { if (stream === source) connect(); }, 2000);
      }
    };
    const on = (name, handle) => source.addEventListener(name, (event) => {
      if (event.lastEventId) state.lastEventId = event.lastEventId;
      let data;
      try { data = JSON.parse(event.data); } catch { return; }
      handle(data);
    });
    on("reading", addReading);
    on("anomaly", addAnomaly);
    on("alarm", updateAlarm);
    on("summary", showSummary);
    on("status", () => loadStatus());
    on("reset", () => reloadAll());
    on("cleared", () => {});
  }

  // ---- start ----

  document.addEventListener("DOMContentLoaded", async () => {
    $("zone").textContent = Intl.DateTimeFormat().resolvedOptions().timeZone || "local";
    $("trend-window").textContent = `last ${WINDOW_SECONDS / 60} min`;
    $("token-forget").addEventListener("click", () => token.forget());
    $("sensor-filter").addEventListener("input", filterPicker);
    $("show-all").addEventListener("click", () => { state.sensors.forEach((id) => state.shown.add(id)); buildPicker(); buildCharts(); });
    $("show-none").addEventListener("click", () => { state.shown.clear(); buildPicker(); buildCharts(); });
    for (const id of ["filter-sensor", "filter-parameter", "filter-type"]) $(id).addEventListener("change", renderAnomalies);
    showOperator();
    light("stream", "warn", "connecting");
    connect();
    await reloadAll();
    setInterval(loadStatus, STATUS_EVERY_MS);
  });
})();
