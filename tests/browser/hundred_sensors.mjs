// The dashboard with many sensors: `node hundred_sensors.mjs <base url>` against a daemon watching
// 100 simulated sensors. Shows all 300 charts, then reports how many are drawn (only those on
// screen are) and the main thread's long tasks (over 50 ms) over 10 s, at the top and scrolled.
import { chromium } from "playwright-core";
const base = process.argv[2];
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
await page.addInitScript(() => {
  window.busy = 0;
  new PerformanceObserver((list) => { for (const e of list.getEntries()) window.busy += e.duration; }).observe({ type: "longtask", buffered: true });
});
const t0 = Date.now();
await page.goto(base);
await page.waitForSelector("figure.chart.drawn");
console.log("first chart drawn after", Date.now() - t0, "ms");
await page.click("#show-all");
await page.waitForTimeout(1000);
const measure = async (label) => {
  const before = await page.evaluate(() => window.busy);
  await page.waitForTimeout(10000);
  const after = await page.evaluate(() => window.busy);
  const info = await page.evaluate(() => ({ charts: document.querySelectorAll("figure.chart").length,
    drawn: document.querySelectorAll("figure.chart.drawn").length, heap: performance.memory?.usedJSHeapSize }));
  console.log(label, JSON.stringify(info), "long tasks over 10 s:", Math.round(after - before), "ms");
};
await measure("all 100 sensors shown, top of page:");
await page.mouse.wheel(0, 20000);
await page.waitForTimeout(1000);
await measure("scrolled down:");
await browser.close();
