// A seller's page on another origin embeds Haul's widget; the buyer pays in
// the overlay (or, on a phone-sized screen, a new tab) with a test card, by
// the sandbox or one of the seller's banks (an emulator's hosted page); the
// page is told the outcome. Driven by gateway/tests/pages.rs in
// Debian's chromium through playwright-core.
//
//   node checkout.mjs HOST_PAGE_URL CARD [overlay|tab|close-button|escape|escape-in-frame|close-while-paying|refused|methods] [sandbox|ACQUIRER]
//
// `methods` only reports what the page offers (and whether it says "test mode").
import { drive, out } from './browser.mjs';

const [hostUrl, card, mode = 'overlay', acquirer = 'sandbox'] = process.argv.slice(2);
await drive(async (browser, shoot) => {
  const phone = mode === 'tab' ? { viewport: { width: 390, height: 800 } } : {};
  const context = await browser.newContext(phone);
  // A step that cannot happen fails with its own message, not the run's
  // time limit.
  context.setDefaultTimeout(15000);
  const page = await context.newPage();
  shoot(page);
  out('mode', mode);
  page.on('pageerror', (e) => out('page_error', String(e)));
  await page.goto(hostUrl);
  out('host_loaded', await page.evaluate(() => typeof window.Haul));
  let checkout;
  let tab = null;
  if (mode === 'tab') {
    [tab] = await Promise.all([page.waitForEvent('popup'), page.click('#buy')]);
    tab.on('pageerror', (e) => out('page_error', String(e)));
    checkout = tab;
  } else {
    await page.click('#buy');
    checkout = page.frameLocator('iframe[title=Checkout]');
  }
  // A shop whose origin the seller did not allow hears why.
  if (mode === 'refused') {
    await page.waitForSelector('body[data-result]', { timeout: 10000 });
    out('result', await page.evaluate(() => document.body.dataset.result));
    out('overlay_closed', await page.evaluate(() => !document.querySelector('[data-haul-overlay]')));
    return;
  }
  out('opened_as', tab ? 'tab' : await page.evaluate(() => (document.querySelector('[data-haul-overlay] iframe') ? 'overlay' : 'none')));
  await checkout.locator('[data-test=total]').waitFor({ timeout: 10000 });
  out('summary', await checkout.locator('[data-test=total]').textContent());
  if (mode === 'methods') {
    await checkout.locator('[data-test^=pay-], [data-test=no-methods]').first().waitFor({ timeout: 10000 });
    out('offered', {
      test_mode: await checkout.locator('[data-test=test-mode]').isVisible(),
      methods: await checkout.locator('[data-test^=pay-]').evaluateAll((bs) => bs.map((b) => b.dataset.test.slice(4))),
      none: await checkout.locator('[data-test=no-methods]').isVisible(),
    });
    return;
  }
  // Closing instead of paying: the overlay's ×, Escape on the shop's page,
  // or Escape inside the checkout frame.
  if (['close-button', 'escape', 'escape-in-frame'].includes(mode)) {
    if (mode === 'close-button') await page.click('[data-haul-close]');
    if (mode === 'escape') await page.keyboard.press('Escape');
    const closed = page.waitForSelector('body[data-result]', { timeout: 10000 });
    if (mode === 'escape-in-frame') {
      await checkout.locator('[data-test=total]').click();
      // The key closes the frame it is pressed in: the browser may never
      // acknowledge the key's end to a frame that is gone, so the test goes
      // on when the shop hears the outcome, not when the key is done.
      await Promise.race([page.keyboard.press('Escape'), closed]);
    }
    await closed;
    out('result', await page.evaluate(() => document.body.dataset.result));
    out('overlay_closed', await page.evaluate(() => !document.querySelector('[data-haul-overlay]')));
    return;
  }
  await checkout.locator('[data-test^=pay-]').first().waitFor({ timeout: 10000 });
  out('methods', await checkout.locator('[data-test^=pay-]').evaluateAll(
    (bs) => bs.map((b) => [b.dataset.test.slice(4), b.textContent])));
  await checkout.locator(`[data-test=pay-${acquirer}]`).click();
  await checkout.locator('input[name=number]').fill(card);
  if (acquirer === 'sandbox') {
    await checkout.locator('input[name=expiry]').fill('12/39');
    await checkout.locator('input[name=cvc]').fill('123');
  }
  await checkout.locator('button[type=submit]').click();
  // Closed while the payment runs: the shop still hears how it ended.
  if (mode === 'close-while-paying') {
    await page.click('[data-haul-close]');
    out('overlay_closed', await page.evaluate(() => !document.querySelector('[data-haul-overlay]')));
    await page.waitForSelector('body[data-result]', { timeout: 20000 });
    out('result', await page.evaluate(() => document.body.dataset.result));
    return;
  }
  // The sandbox's page goes back to the checkout by itself; the other
  // banks' emulators are followed by their link.
  if (acquirer !== 'sandbox') await checkout.locator('[data-test=return]').click();
  await page.waitForSelector('body[data-result]', { timeout: 20000 });
  out('result', await page.evaluate(() => document.body.dataset.result));
  out('overlay_closed', await page.evaluate(() => !document.querySelector('[data-haul-overlay]')));
  if (tab) {
    await tab.waitForEvent('close', { timeout: 5000 }).catch(() => {});
    out('tab_closed', tab.isClosed());
  }
});
