// Drives haul's viewer page in real headless Chromium (Debian's chromium,
// through playwright-core), for gateway/tests/pages.rs. Prints one JSON line
// per step; exits non-zero with {"error": ...} when a check fails.
//
//   node watch.mjs BASE_URL STREAM_ID OFFER_ID SELLER_KEY QUANTITY
//
// After the last step it waits for stdin to end; the test stops the node in
// between and expects the page to say it is reconnecting.
import { drive, out } from './browser.mjs';

const [base, streamId, offerId, key, quantityArg] = process.argv.slice(2);
const quantity = Number(quantityArg);
const fail = (msg) => { throw new Error(msg); };

await drive(async (browser, shoot) => {
  const pages = [];
  // Two viewers in separate profiles: two anonymous buyers.
  for (let i = 0; i < 2; i++) {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    page.on('pageerror', (e) => out('page_error', String(e)));
    await page.goto(`${base}/watch/${streamId}`);
    pages.push(page);
    if (i === 0) shoot(page);
  }
  const [a, b] = pages;
  for (const p of pages) {
    await p.locator('[data-test=status][data-state=live]').waitFor({ timeout: 10000 });
  }
  out('loaded', { title: await a.locator('[data-test=title]').textContent(),
    lot: await a.locator('[data-test=lot-title]').textContent(),
    no_offer: await a.locator('[data-test=no-offer]').isVisible(),
    test_mode: await a.locator('[data-test=test-mode]').isVisible() });

  // The streamer starts the offer: both pages receive it.
  const r = await fetch(`${base}/v1/offers/${offerId}/start`, { method: 'POST', headers: { authorization: `Bearer ${key}` } });
  if (!r.ok) fail(`start: ${r.status} ${await r.text()}`);
  for (const p of pages) {
    await p.locator('[data-test=offer]').waitFor({ timeout: 10000 });
  }
  const left = async (p) => Number(await p.locator('[data-test=units-left]').textContent());
  out('offer', { units_left: [await left(a), await left(b)], price: await a.locator('[data-test=price]').textContent() });

  // The countdown runs.
  const secs = async () => {
    const t = await a.locator('[data-test=countdown]').textContent();
    const [m, s] = t.split(':').map(Number);
    return m * 60 + s;
  };
  const t1 = await secs();
  await a.waitForTimeout(2200);
  const t2 = await secs();
  out('countdown', { first: t1, later: t2 });

  // Buy on A; B sees the units left drop.
  await a.locator('[data-test=buy]').click();
  await a.locator('[data-test=result][data-kind=ok]').waitFor({ timeout: 10000 });
  out('bought', await a.locator('[data-test=result]').textContent());
  await b.waitForFunction((q) => Number(document.querySelector('[data-test=units-left]').textContent) === q - 1,
    quantity, { timeout: 10000 });
  out('seen_by_other', await left(b));
  // A pays in the checkout widget's overlay with the success card; B sees
  // the purchase, A's page hears the outcome from the widget.
  const payIn = async (p, card) => {
    await p.locator('[data-test=pay]').click();
    const frame = p.frameLocator('iframe[title=Checkout]');
    await frame.locator('[data-test=total]').waitFor({ timeout: 10000 });
    const total = await frame.locator('[data-test=total]').textContent();
    await frame.locator('[data-test=pay-sandbox]').click();
    await frame.locator('input[name=number]').fill(card);
    await frame.locator('input[name=expiry]').fill('12/39');
    await frame.locator('input[name=cvc]').fill('123');
    await frame.locator('button[type=submit]').click();
    await frame.locator('[data-test=return]').click();
    await p.waitForFunction(() => !document.querySelector('[data-haul-overlay]'), null, { timeout: 20000 });
    return total;
  };
  out('widget_total', await payIn(a, '4242 4242 4242 4242'));
  await a.locator('[data-test=result][data-kind=ok]', { hasText: 'Paid' }).waitFor({ timeout: 10000 });
  out('paid', await a.locator('[data-test=result]').textContent());
  await b.locator('[data-test=ticker] li[data-kind=purchase]').first().waitFor({ timeout: 10000 });
  out('purchase_seen', await b.locator('[data-test=ticker] li[data-kind=purchase]').first().textContent());

  // A's own orders: paid, then shipped by the seller — pushed on A's own
  // channel; B never sees A's order.
  const mine = a.locator('[data-test=my-orders] li[data-state=succeeded]');
  await mine.waitFor({ timeout: 10000 });
  const orderId = await mine.getAttribute('data-order');
  const paidLabel = await mine.locator('[data-test=order-state]').textContent();
  const shipped = await fetch(`${base}/v1/orders/${orderId}/fulfilment`, {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ state: 'shipped', carrier: 'CDEK', tracking_number: '1099887766' }) });
  if (!shipped.ok) fail(`ship: ${shipped.status} ${await shipped.text()}`);
  await mine.locator('[data-test=order-state]', { hasText: 'Shipped' }).waitFor({ timeout: 10000 });
  out('my_order', { paid: paidLabel, now: await mine.locator('[data-test=order-state]').textContent(),
    detail: await mine.locator('[data-test=order-detail]').textContent(),
    seen_by_b: await b.locator(`[data-order="${orderId}"]`).count() });

  // B buys and pays with the decline card: B's page says so, and the unit
  // comes back for everyone.
  await b.locator('[data-test=buy]').click();
  await b.locator('[data-test=result][data-kind=ok]').waitFor({ timeout: 10000 });
  await a.waitForFunction((q) => Number(document.querySelector('[data-test=units-left]').textContent) === q - 2,
    quantity, { timeout: 10000 });
  out('held_by_b', await left(a));
  await payIn(b, '4000 0000 0000 0002');
  await b.locator('[data-test=result][data-kind=error]').waitFor({ timeout: 10000 });
  out('declined', await b.locator('[data-test=result]').textContent());
  await a.waitForFunction((q) => Number(document.querySelector('[data-test=units-left]').textContent) === q - 1,
    quantity, { timeout: 10000 });
  out('released', await left(a));

  // A second buy by A goes over its limit of one: a clear refusal.
  await a.locator('[data-test=buy]').click();
  await a.locator('[data-test=result][data-kind=error]').waitFor({ timeout: 10000 });
  out('refused', await a.locator('[data-test=result]').textContent());

  // The streamer's note reaches the ticker.
  const m = await fetch(`${base}/v1/streams/${streamId}/messages`, {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ text: 'Only today!' }) });
  if (!m.ok) fail(`message: ${m.status}`);
  await b.locator('[data-test=ticker] li', { hasText: 'Only today!' }).waitFor({ timeout: 10000 });
  out('ticker', await b.locator('[data-test=ticker] li').first().textContent());

  // The seller adds stock and time while the sale runs: both pages follow.
  const e = await fetch(`${base}/v1/offers/${offerId}`, {
    method: 'PATCH', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ quantity: quantity + 5, extend_seconds: 600 }) });
  if (!e.ok) fail(`edit: ${e.status}`);
  for (const p of [a, b]) {
    await p.waitForFunction((q) => Number(document.querySelector('[data-test=units-left]').textContent) === q + 4,
      quantity, { timeout: 10000 });
  }
  const minutes = await b.locator('[data-test=countdown]').textContent();
  out('stock_added', { left: await left(b), countdown_minutes: Number(minutes.split(':')[0]) });

  // The node goes away: the page says so.
  out('stop_the_node');
  await b.locator('[data-test=status][data-state=reconnecting]').waitFor({ timeout: 15000 });
  out('reconnecting', await b.locator('[data-test=status]').textContent());
});
