// Checks, in real headless Chromium, that the viewer page names each
// refusal the server gives a reserve, for gateway/tests/pages.rs. The page
// talks to the real server through a pass-through WebSocket route that can
// hold back the server's pushes (so the page still offers what has just
// gone) or ask for two units instead of one (the page always asks for one):
// every refusal is the server's own answer.
//
//   node refusals.mjs BASE_URL STREAM_ID SELLER_KEY TWO_UNIT_OFFER ENDING_OFFER DRAFT_OFFER
//
// TWO_UNIT_OFFER: started, 2 units, 2 per buyer.
//
// Prints one JSON line per step; {"step":"error"} when a check fails.
import { drive, out } from './browser.mjs';

const [base, streamId, key, lastOne, ending, draft] = process.argv.slice(2);
const fail = (msg) => { throw new Error(msg); };
const seller = (path, method = 'POST', body) => fetch(`${base}${path}`, {
  method,
  headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
  body: body && JSON.stringify(body),
});

await drive(async (browser, shoot) => {
  const wire = { frozen: false, held: [], twoUnits: false, toPage: null };
  const page = await (await browser.newContext()).newPage();
  shoot(page);
  page.on('pageerror', (e) => out('page_error', String(e)));
  await page.routeWebSocket(/\/connection\/websocket$/, (ws) => {
    const server = ws.connectToServer();
    wire.toPage = (frame) => ws.send(frame);
    ws.onMessage((frame) => {
      if (!wire.twoUnits) return server.send(frame);
      server.send(String(frame).split('\n').map((line) => {
        const f = line && JSON.parse(line);
        if (f && f.rpc && f.rpc.method === 'reserve') {
          f.rpc.data.quantity = 2;
          return JSON.stringify(f);
        }
        return line;
      }).join('\n'));
    });
    server.onMessage((frame) => {
      if (!wire.frozen) return ws.send(frame);
      const lines = String(frame).split('\n').filter((l) => l);
      wire.held.push(...lines.filter((l) => l.includes('"push"')));
      const rest = lines.filter((l) => !l.includes('"push"'));
      if (rest.length) ws.send(rest.join('\n'));
    });
  });
  const thaw = () => { wire.frozen = false; for (const f of wire.held.splice(0)) wire.toPage(f); };

  await page.goto(`${base}/watch/${streamId}`);
  await page.locator('[data-test=status][data-state=live]').waitFor({ timeout: 10000 });
  const card = (offer) => page.locator(`[data-test=offers] [data-offer="${offer}"]`);
  const refusal = async (offer) => {
    const before = await page.locator('[data-test=result]').textContent().catch(() => '');
    await card(offer).locator('[data-test=buy]').click();
    await page.waitForFunction((prev) => {
      const el = document.querySelector('[data-test=result]');
      return el && el.dataset.kind === 'error' && el.textContent !== prev;
    }, before, { timeout: 10000 });
    return page.locator('[data-test=result]').textContent();
  };
  await card(lastOne).waitFor({ timeout: 10000 });

  // Another buyer takes units straight from the API.
  const viewer = await (await seller('/v1/viewer-tokens', 'POST', { viewer_id: 'faster' })).json();
  const takeOne = async (n) => {
    const r = await fetch(`${base}/v1/offers/${lastOne}/reserve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${viewer.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ quantity: 1, request_id: `faster-${n}` }),
    });
    if (r.status !== 201) fail(`the other buyer's reserve: ${r.status} ${await r.text()}`);
  };

  // Two units of an offer with one left.
  await takeOne(1);
  await page.waitForFunction((o) => document.querySelector(`[data-offer="${o}"] [data-test=units-left]`)
    .textContent === '1', lastOne, { timeout: 10000 });
  wire.twoUnits = true;
  out('not_enough_stock', await refusal(lastOne));
  wire.twoUnits = false;

  // Someone else takes the last unit while the page has not heard yet.
  wire.frozen = true;
  await takeOne(2);
  out('sold_out', await refusal(lastOne));
  thaw();

  // The streamer starts another offer and ends it before the page hears.
  const started = await seller(`/v1/offers/${ending}/start`);
  if (!started.ok) fail(`start: ${started.status} ${await started.text()}`);
  await card(ending).waitFor({ timeout: 10000 });
  wire.frozen = true;
  const cancelled = await seller(`/v1/offers/${ending}/cancel`);
  if (!cancelled.ok) fail(`cancel: ${cancelled.status} ${await cancelled.text()}`);
  out('offer_ended', await refusal(ending));
  thaw();

  // The page is told of an offer the server has not started: the server
  // refuses the reserve.
  const d = await (await seller(`/v1/offers/${draft}`, 'GET')).json();
  wire.toPage(JSON.stringify({ push: { channel: `stream:${streamId}`, pub: { data: {
    type: 'offer.started', offer_id: d.id, price_minor: d.price_minor, currency: d.currency,
    quantity: d.quantity, per_buyer_limit: d.per_buyer_limit, units_left: d.quantity,
    ends_at: Date.now() + 60000, server_time: Date.now() } } } }));
  await card(draft).waitFor({ timeout: 10000 });
  out('offer_not_started', await refusal(draft));
  out('done');
});
