// The dashboard in the system's headless Chromium, as an operator uses it. Started by
// `cargo test --test dashboard` (tests/dashboard.rs), which runs the daemon and passes:
//
//   WTF_BASE            http://127.0.0.1:<port>
//   WTF_INGEST_TOKEN    a token of role ingest (to raise anomalies with POST /readings)
//   WTF_OPERATOR_TOKEN  a token of role operator (typed into the page's prompt)
//   CHROMIUM            the browser (default /usr/bin/chromium); never downloaded
//
// To have the daemon restarted on the same port it prints `restart-daemon` and waits for a line
// `daemon-ready` on its standard input. Exits 0 when every check passed; otherwise prints what
// failed and exits 1.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const base = process.env.WTF_BASE;
const ingestToken = process.env.WTF_INGEST_TOKEN;
const operatorToken = process.env.WTF_OPERATOR_TOKEN;
const origin = new URL(base).origin;
const lines = createInterface({ input: process.stdin });
const stdinLines = lines[Symbol.asyncIterator]();

const step = (text) => console.log(`step: ${text}`);
function check(condition, text) {
  if (!condition) throw new Error(text);
}

async function api(path, options = {}) {
  const response = await fetch(`${base}${path}`, options);
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: response.status, body };
}

// Raises a spike on `sensor`'s pressure: one reading far above its limit.
async function raiseSpike(sensor, value) {
  const reading = { sensor_id: sensor, timestamp: new Date().toISOString(), pressure: value };
  const answer = await api("/readings", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${ingestToken}` },
    body: JSON.stringify([reading]),
  });
  check(answer.status === 200, `POST /readings answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  for (let i = 0; i < 50; i++) {
    const found = await api(`/anomalies?sensor_id=${sensor}&parameter=pressure&type=spike&limit=10`);
    const hit = found.body.find?.((anomaly) => Math.abs(anomaly.value - value) < 1e-9);
    if (hit) return hit;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the spike of ${value} bar on ${sensor} was not raised`);
}

async function restartDaemon() {
  console.log("restart-daemon");
  const { value, done } = await stdinLines.next();
  check(!done && value.trim() === "daemon-ready", `the test harness answered ${JSON.stringify(value)}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
let failed = null;
try {
  const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
  const page = await context.newPage();
  const foreign = [];
  const problems = [];
  // Every request the page makes must go to the daemon; anything else is refused and recorded.
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (new URL(url).origin === origin) return route.continue();
    foreign.push(url);
    return route.abort();
  });
  page.on("console", (message) => {
    // A refused stream shows as a network error while the daemon is down; the policy's
    // violations and script errors are what counts.
    if (message.type() === "error" && !/ERR_CONNECTION_REFUSED|net::ERR_|Failed to load resource/.test(message.text())) {
      problems.push(`console: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("response", (response) => {
    if (response.status() >= 400) problems.push(`${response.status()} for ${response.url()}`);
  });

  step("the page loads");
  const started = Date.now();
  const answer = await page.goto(base + "/");
  check(answer.status() === 200, `GET / answered ${answer.status()}`);
  const csp = answer.headers()["content-security-policy"] || "";
  check(/script-src 'self'/.test(csp) && !/unsafe-inline/.test(csp), `the page's policy is ${JSON.stringify(csp)}`);
  await page.waitForSelector("body[data-loaded][data-stream=open]", { timeout: 10000 });
  await page.evaluate(() => { window.notReloaded = true; });

  step("a chart per sensor × parameter");
  const limits = (await api("/limits")).body;
  const expected = limits.sensors.flatMap((sensor) =>
    Object.keys(sensor.parameters).map((parameter) => `${sensor.sensor_id}|${parameter}`));
  check(expected.length === 9, `/limits lists ${expected.length} series, expected 3 sensors × 3 parameters`);
  await page.waitForFunction((count) => document.querySelectorAll("figure.chart.drawn canvas").length >= count,
    expected.length, { timeout: 10000 });
  const keys = await page.$$eval("figure.chart", (charts) => charts.map((chart) => chart.dataset.key));
  check(JSON.stringify([...keys].sort()) === JSON.stringify([...expected].sort()),
    `charts ${JSON.stringify(keys)}, expected ${JSON.stringify(expected)}`);
  const units = await page.$$eval("figure.chart figcaption .unit", (spans) => spans.map((span) => span.textContent));
  check(units.every((unit) => /\(.+\)/.test(unit)), `every chart names its unit: ${JSON.stringify(units)}`);
  await page.waitForFunction(() => [...document.querySelectorAll("figure.chart .latest")].every((s) => s.textContent.trim()),
    null, { timeout: 10000 });

  step("a raised anomaly appears without a reload");
  const sentAt = Date.now();
  const anomaly = await raiseSpike("wtf-pipe-2", 7.25);
  await page.waitForSelector(`#anomaly-rows tr[data-id="${anomaly.id}"]`, { timeout: 5000 });
  await page.waitForSelector(`#alarm-rows tr[data-id="${anomaly.id}"]`, { timeout: 5000 });
  console.log(`  shown ${Date.now() - sentAt} ms after the reading was sent`);
  const row = await page.textContent(`#anomaly-rows tr[data-id="${anomaly.id}"]`);
  check(row.includes("7.25 bar"), `the anomaly row shows its value with its unit: ${row}`);
  await page.waitForFunction(() => Number(document.querySelector('figure.chart[data-key="wtf-pipe-2|pressure"]')?.dataset.marks) > 0,
    null, { timeout: 5000 });
  check(await page.evaluate(() => window.notReloaded === true), "the page reloaded");

  step("acknowledging through the page changes the alarm in GET /alarms");
  const before = await api(`/alarms/${anomaly.id}`);
  check(before.status === 200 && before.body.state.endsWith("_unack"), `before: ${JSON.stringify(before)}`);
  await page.click(`#alarm-rows tr[data-id="${anomaly.id}"] button.ack`);
  await page.waitForSelector("#token-dialog[open]", { timeout: 2000 });
  await page.fill("#token-input", operatorToken);
  await page.click("#token-ok");
  let after;
  for (let i = 0; i < 50; i++) {
    after = await api(`/alarms/${anomaly.id}`);
    // Acknowledged: still active (active_ack), or gone when the spike had already cleared.
    if (after.status === 404 || after.body.state === "active_ack") break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  check(after.status === 404 || after.body.state === "active_ack", `after the click: ${JSON.stringify(after)}`);
  const listed = (await api("/alarms")).body.find((alarm) => alarm.id === anomaly.id);
  check(!listed || listed.state === "active_ack", `GET /alarms still lists it as ${listed?.state}`);
  const audit = (await api("/audit?limit=20")).body;
  check(audit.some((entry) => entry.actor === "night-shift" && entry.target.includes(anomaly.id)),
    `the audit trail names the operator: ${JSON.stringify(audit.slice(0, 3))}`);
  await page.waitForFunction((id) => {
    const shown = document.querySelector(`#alarm-rows tr[data-id="${id}"]`);
    return !shown || shown.dataset.state === "active_ack";
  }, anomaly.id, { timeout: 5000 });
  const stored = await page.evaluate(() => ({ session: Object.keys(sessionStorage), local: Object.keys(localStorage) }));
  check(stored.session.length === 1 && stored.local.length === 0, `the token is kept in the session only: ${JSON.stringify(stored)}`);

  step("the page recovers after the daemon restarts on the same port");
  const loadedBefore = await page.getAttribute("body", "data-loaded");
  await restartDaemon();
  await page.waitForFunction((loaded) => document.body.dataset.stream === "open" && document.body.dataset.loaded !== loaded,
    loadedBefore, { timeout: 20000 });
  const second = await raiseSpike("wtf-pipe-3", 8.5);
  await page.waitForSelector(`#anomaly-rows tr[data-id="${second.id}"]`, { timeout: 5000 });
  await page.waitForSelector(`#alarm-rows tr[data-id="${second.id}"]`, { timeout: 5000 });
  // The first daemon's alarms went with it (no Redis here): the page shows the new daemon's.
  check(!(await page.$(`#alarm-rows tr[data-id="${anomaly.id}"]`)), "an alarm of the old daemon is still shown");
  check(await page.evaluate(() => window.notReloaded === true), "the page reloaded");

  check(foreign.length === 0, `requests left the machine: ${foreign.join(", ")}`);
  check(problems.length === 0, `the page reported problems:\n  ${problems.join("\n  ")}`);
  console.log(`ok: every check passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (error) {
  failed = error;
} finally {
  await browser.close();
  lines.close();
}
if (failed) {
  console.error(`dashboard test failed: ${failed.message}`);
  process.exit(1);
}
