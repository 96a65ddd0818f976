// A seller's page on another origin embeds Haul's widget; the buyer pays in
// the overlay with the sandbox's success card; the page is told the outcome.
// Driven by gateway/tests/pages.rs in Debian's chromium through playwright-core.
//
//   node checkout.mjs HOST_PAGE_URL CARD
import { chromium } from 'playwright-core';

const [hostUrl, card] = process.argv.slice(2);
const out = (step, value = null) => console.log(JSON.stringify({ step, value }));
const browser = await chromium.launch({
  executablePath: process.env.HAUL_TEST_CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const timer = setTimeout(() => { out('error', 'timed out'); process.exit(2); }, 60000);
let page;
try {
  page = await (await browser.newContext()).newPage();
  page.on('pageerror', (e) => out('page_error', String(e)));
  await page.goto(hostUrl);
  out('host_loaded', await page.evaluate(() => typeof window.Haul));
  await page.click('#buy');
  const frame = page.frameLocator('iframe[title=Checkout]');
  await frame.locator('[data-test=total]').waitFor({ timeout: 10000 });
  out('summary', await frame.locator('[data-test=total]').textContent());
  await frame.locator('[data-test=pay-sandbox]').click();
  await frame.locator('input[name=number]').fill(card);
  await frame.locator('input[name=expiry]').fill('12/39');
  await frame.locator('input[name=cvc]').fill('123');
  await frame.locator('button[type=submit]').click();
  await frame.locator('[data-test=return]').click();
  await page.waitForSelector('body[data-result]', { timeout: 20000 });
  out('result', await page.evaluate(() => document.body.dataset.result));
  out('overlay_closed', await page.evaluate(() => !document.querySelector('[data-haul-overlay]')));
} catch (e) {
  if (page) await page.screenshot({ path: process.env.HAUL_TEST_SCREENSHOT || 'checkout-failure.png' }).catch(() => {});
  out('error', String((e && e.message) || e));
  clearTimeout(timer);
  await browser.close();
  process.exit(1);
}
clearTimeout(timer);
await browser.close();
process.exit(0);
