// Takes a screenshot of the dashboard: `node screenshot.mjs <base url> <out.png>`.
// Used for docs/dashboard.png (see the README's "Dashboard" section).
import { chromium } from "playwright-core";

const [base, out] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium" });
const page = await browser.newPage({ viewport: { width: 1600, height: 1000 }, deviceScaleFactor: 1 });
page.on("console", (message) => { if (message.type() === "error" || message.type() === "warning") console.error("page:", message.text()); });
page.on("pageerror", (error) => console.error("page error:", error.message));
await page.goto(base);
await page.waitForSelector("figure.chart.drawn");
await page.waitForTimeout(Number(process.env.SETTLE_MS || 2500));
await page.screenshot({ path: out, fullPage: process.env.FULL_PAGE === "1" });
await browser.close();
