// The buyer's pages in the buyer's language, in real headless Chromium:
// a Russian browser watches, buys and pays in Russian (watch page, the
// widget's checkout, the sandbox's card page), with amounts and dates as
// Russian writes them; an English browser reads English; a German one gets
// the seller's default (Russian) and switches to English.
// Driven by gateway/tests/suite/pages.rs.
//
//   node language.mjs BASE_URL STREAM_ID
import { drive, out } from './browser.mjs';

const [base, streamId] = process.argv.slice(2);

await drive(async (browser, shoot) => {
  const open = async (locale) => {
    const page = await (await browser.newContext({ locale })).newPage();
    page.on('pageerror', (e) => out('page_error', String(e)));
    await page.goto(`${base}/watch/${streamId}`);
    await page.locator('[data-test=status][data-state=live]').waitFor({ timeout: 10000 });
    await page.locator('[data-test=offer]').waitFor({ timeout: 10000 });
    return page;
  };
  const card = async (page) => ({
    lang: await page.evaluate(() => document.documentElement.lang),
    price: await page.locator('[data-test=price]').textContent(),
    left: await page.locator('[data-test=left-line]').textContent(),
    buy: await page.locator('[data-test=buy]').textContent(),
    status: await page.locator('[data-test=status]').textContent(),
    badge: await page.locator('[data-test=stream-state]').textContent(),
  });

  // Russian: watch, buy, pay.
  const ru = await open('ru-RU');
  shoot(ru);
  out('ru_watch', await card(ru));
  await ru.locator('[data-test=buy]').click();
  await ru.locator('[data-test=result][data-kind=ok]').waitFor({ timeout: 10000 });
  out('ru_held', await ru.locator('[data-test=result]').textContent());
  await ru.locator('[data-test=pay]').click();
  const frame = ru.frameLocator('[data-haul-overlay] iframe');
  await frame.locator('[data-test=total]').waitFor({ timeout: 10000 });
  await frame.locator('[data-test=pay-sandbox]').waitFor({ timeout: 10000 });
  out('ru_checkout', {
    frame_title: await ru.locator('[data-haul-overlay] iframe').getAttribute('title'),
    lang: await frame.locator('html').getAttribute('lang'),
    heading: await frame.locator('h1').textContent(),
    total: await frame.locator('[data-test=total]').textContent(),
    pay: await frame.locator('[data-test=pay-sandbox]').textContent(),
    back: await frame.locator('[data-test=close]').textContent(),
  });
  await frame.locator('[data-test=pay-sandbox]').click();
  await frame.locator('input[name=number]').waitFor({ timeout: 10000 });
  out('ru_card_page', {
    lang: await frame.locator('html').getAttribute('lang'),
    heading: await frame.locator('h1').textContent(),
    button: await frame.locator('[data-test=sandbox-pay]').textContent(),
  });
  await frame.locator('input[name=number]').fill('4242 4242 4242 4242');
  await frame.locator('input[name=expiry]').fill('12/39');
  await frame.locator('input[name=cvc]').fill('123');
  await frame.locator('[data-test=sandbox-pay]').click();
  await frame.locator('[data-test=return]').click();
  await ru.waitForFunction(() => !document.querySelector('[data-haul-overlay]'), null, { timeout: 20000 });
  await ru.locator('[data-test=result][data-kind=ok]').waitFor({ timeout: 10000 });
  out('ru_paid', await ru.locator('[data-test=result]').textContent());
  const mine = ru.locator('[data-test=my-orders] li[data-state=succeeded]');
  await mine.waitFor({ timeout: 10000 });
  out('ru_my_order', {
    heading: await ru.locator('[data-test=my-orders] h3').textContent(),
    amount: await mine.locator('[data-test=order-amount]').textContent(),
    date: await mine.locator('[data-test=order-date]').textContent(),
    state: await mine.locator('[data-test=order-state]').textContent(),
  });

  // English from an English browser, though the seller's default is Russian.
  const en = await open('en-US');
  shoot(en);
  out('en_watch', await card(en));

  // A German browser: the seller's default; then the buyer picks English.
  const de = await open('de-DE');
  shoot(de);
  out('de_watch', await card(de));
  await de.locator('[data-test=lang] a[data-lang=en]').click();
  await de.waitForURL(/lang=en/, { timeout: 10000 });
  await de.locator('[data-test=offer]').waitFor({ timeout: 10000 });
  out('de_picked_en', await card(de));
});
