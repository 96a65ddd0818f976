// What the browser scripts share: Debian's chromium (HAUL_TEST_CHROMIUM
// overrides the path) through playwright-core, one JSON line per step, a
// time limit, and on a failure a screenshot (HAUL_TEST_SCREENSHOT) and a
// {"step":"error"} line with a non-zero exit.
import { chromium } from 'playwright-core';

export const out = (step, value = null) => console.log(JSON.stringify({ step, value }));

// Runs `steps(browser, shoot)` and exits; `shoot(page)` names the page to
// screenshot when a step fails.
export async function drive(steps, limitMs = 60000) {
  const browser = await chromium.launch({
    executablePath: process.env.HAUL_TEST_CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const timer = setTimeout(() => { out('error', 'timed out'); process.exit(2); }, limitMs);
  let shot = null;
  let code = 0;
  try {
    await steps(browser, (page) => { shot = page; });
  } catch (e) {
    if (shot) await shot.screenshot({ path: process.env.HAUL_TEST_SCREENSHOT || 'browser-failure.png' }).catch(() => {});
    out('error', String((e && e.message) || e));
    code = 1;
  }
  clearTimeout(timer);
  await browser.close();
  process.exit(code);
}
