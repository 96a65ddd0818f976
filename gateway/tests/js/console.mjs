// The console in real headless Chromium, as people use it: an owner opens
// the account's first link and sets up, invites a host, the host accepts
// from the emailed link and lands in the shop but may not manage the team,
// a form sent without its CSRF token is refused, five wrong passwords lock
// sign-in; the overview is photographed at 1280 and 820 px wide.
// Driven by gateway/tests/suite/console.rs.
//
//   node console.mjs BASE_URL OWNER_LINK DATA_DIR SHOTS_PREFIX HOOK_URL
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { drive, out } from './browser.mjs';

const [base, ownerLink, dataDir, shots, hookUrl] = process.argv.slice(2);

// The link in the newest console email to `to`.
function mailedLink(to) {
  const dir = join(dataDir, 'mail');
  const files = readdirSync(dir).filter((f) => f.startsWith('console-'))
    .map((f) => join(dir, f)).sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs);
  for (const f of files.reverse()) {
    const text = readFileSync(f, 'utf8').replace(/=\r?\n/g, '').replace(/=3D/g, '=');
    if (!text.includes(`To: ${to}`)) continue;
    const m = /(https?:\/\/\S+\/console\/link\/lnk_[A-Za-z0-9]+)/.exec(text);
    if (m) return m[1];
  }
  throw new Error(`no email to ${to}`);
}

await drive(async (browser, shoot) => {
  const person = async () => {
    const page = await (await browser.newContext({ locale: 'en-US' })).newPage();
    page.on('pageerror', (e) => out('page_error', String(e)));
    page.on('console', (m) => { if (m.type() === 'error') out('console_error', m.text()); });
    return page;
  };

  // The owner sets up from the first link.
  const owner = await person();
  shoot(owner);
  await owner.goto(ownerLink);
  out('owner_link', await owner.locator('[data-test=link-heading]').textContent());
  await owner.getByLabel('Email').fill('olga@shop.example');
  await owner.getByLabel('Your name').fill('Olga');
  await owner.getByLabel('Password').fill('correct horse battery');
  await owner.locator('[data-test=link-continue]').click();
  await owner.waitForURL(`${base}/console`);
  out('owner_home', {
    shop: await owner.locator('[data-test=shop-heading]').textContent(),
    role: await owner.locator('[data-test=role]').textContent(),
    test_banner: await owner.locator('[data-test=test-banner]').isVisible(),
  });
  for (const width of [1280, 820]) {
    await owner.setViewportSize({ width, height: 900 });
    await owner.screenshot({ path: `${shots}-${width}.png`, fullPage: true });
  }

  // The owner invites a host, with the keyboard only.
  await owner.locator('[data-test=nav-team]').click();
  await owner.waitForURL(`${base}/console/team`);
  const invite = owner.locator('[data-test=invite]');
  await invite.getByLabel('Email').focus();
  await owner.keyboard.type('hana@shop.example');
  await invite.locator('input[value=host]').check();
  await invite.locator('[data-test=invite-send]').focus();
  await owner.keyboard.press('Enter');
  await owner.locator('[data-test=message]').waitFor({ timeout: 10000 });
  out('invited', await owner.locator('[data-test=message]').textContent());

  // The host accepts from the email.
  const host = await person();
  shoot(host);
  await host.goto(mailedLink('hana@shop.example'));
  out('host_link', await host.locator('[data-test=link-heading]').textContent());
  await host.getByLabel('Your name').fill('Hana');
  await host.getByLabel('Password').fill('another long password');
  await host.locator('[data-test=link-continue]').click();
  await host.waitForURL(`${base}/console`);
  out('host_home', {
    role: await host.locator('[data-test=role]').textContent(),
    team_link: await host.locator('[data-test=nav-team]').count(),
  });
  const refused = await host.goto(`${base}/console/team`);
  out('host_team', { status: refused.status(), text: await host.locator('[data-test=message]').textContent() });

  // The host runs a sale from the live room: a stream, a lot, live, pinned,
  // an offer launched in one tap.
  await host.goto(`${base}/console`);
  await host.locator('[data-test=new-stream]').getByLabel('New stream').fill('Evening sale');
  await host.locator('[data-test=new-stream] button').click();
  await host.waitForURL(/\/console\/streams\/str_/);
  const streamId = host.url().split('/').pop();
  await host.locator('[data-test=room-link][data-state=live]').waitFor({ timeout: 10000 });
  await host.locator('[data-test=add-lot] input[name=title]').fill('Teapot');
  await Promise.all([host.waitForNavigation(), host.locator('[data-test=add-lot] button').click()]);
  await host.locator('[data-test=room-link][data-state=live]').waitFor({ timeout: 10000 });
  await host.locator('[data-test=go-live]').click();
  await host.locator('[data-test=room-state][data-state=live]').waitFor({ timeout: 10000 });
  const lot = host.locator('[data-test=room-lot]').first();
  await lot.locator('[data-test=pin]').click();
  await lot.locator('[data-test=lot-pinned]').waitFor({ timeout: 10000 });
  const launch = lot.locator('[data-test=launch-form]');
  await launch.getByLabel('Price').fill('1490');
  await launch.getByLabel('Quantity').fill('5');
  await launch.getByLabel('Per buyer').fill('1');
  await launch.getByLabel('Seconds').fill('600');
  await launch.locator('[data-test=launch]').click();
  const card = host.locator('[data-test=room-offer]').first();
  await card.waitFor({ timeout: 10000 });
  const numbers = async () => ({
    left: await card.locator('[data-test=offer-left]').textContent(),
    held: await card.locator('[data-test=offer-held]').textContent(),
    sold: await card.locator('[data-test=offer-sold]').textContent(),
    revenue: await card.locator('[data-test=offer-revenue]').textContent(),
  });
  out('launched', await numbers());

  // A viewer buys on the watch page: the room shows the hold, then the sale.
  const viewer = await person();
  await viewer.goto(`${base}/watch/${streamId}`);
  await viewer.locator('[data-test=offer]').waitFor({ timeout: 10000 });
  await viewer.locator('[data-test=buy]').click();
  await viewer.locator('[data-test=result][data-kind=ok]').waitFor({ timeout: 10000 });
  await card.locator('[data-test=offer-held]', { hasText: '1' }).waitFor({ timeout: 5000 });
  out('held', await numbers());
  await viewer.locator('[data-test=pay]').click();
  const frame = viewer.frameLocator('iframe[title=Checkout]');
  await frame.locator('[data-test=pay-sandbox]').click();
  await frame.locator('input[name=number]').fill('4242 4242 4242 4242');
  await frame.locator('input[name=expiry]').fill('12/39');
  await frame.locator('input[name=cvc]').fill('123');
  await frame.locator('button[type=submit]').click();
  await frame.locator('[data-test=return]').waitFor({ timeout: 20000 });
  const answered = Date.now();
  await card.locator('[data-test=offer-sold]', { hasText: '1' }).waitFor({ timeout: 5000 });
  out('sold', { ...(await numbers()), ms_after_the_bank_answered: Date.now() - answered,
    feed: await host.locator('[data-test=room-feed] li').first().textContent() });

  // Stock added and time extended from the room.
  const before = Number((await card.locator('[data-test=offer-countdown]').textContent()).split(':')[0]);
  await card.locator('[data-test=add-stock]').click();
  await card.locator('[data-test=offer-left]', { hasText: '/ 15' }).waitFor({ timeout: 5000 });
  await card.locator('[data-test=extend]').click();
  await host.waitForFunction((m) => {
    const c = document.querySelector('[data-test=offer-countdown]').textContent;
    return Number(c.split(':')[0]) > m;
  }, before, { timeout: 5000 });
  out('edited', { ...(await numbers()), minutes_before: before,
    minutes_after: Number((await card.locator('[data-test=offer-countdown]').textContent()).split(':')[0]) });
  for (const width of [1280, 820]) {
    await host.setViewportSize({ width, height: 1000 });
    await host.screenshot({ path: `${shots}-room-${width}.png`, fullPage: true });
  }
  out('stream', streamId);

  // The owner adds a webhook endpoint for refunds (its secret shown once).
  shoot(owner);
  await owner.goto(`${base}/console/webhooks`);
  const hooks = owner.locator('[data-test=new-endpoint]');
  await hooks.getByLabel('URL').fill(hookUrl);
  await hooks.locator('input[value="order.refunded"]').check();
  await hooks.locator('button[type=submit]').click();
  await owner.locator('[data-test=secret-box]').waitFor({ state: 'visible', timeout: 10000 });
  const secret = await owner.locator('[data-test=secret]').textContent();

  // The owner finds the order in the order book and refunds part of it,
  // confirming first.
  await owner.goto(`${base}/console/orders`);
  await owner.locator('[data-test=order-link]').first().click();
  await owner.locator('[data-test=order]').waitFor();
  out('order_page', {
    state: await owner.locator('[data-test=order-state]').textContent(),
    fulfilment: await owner.locator('[data-test=order-fulfilment]').textContent(),
  });
  await owner.locator('[data-test=refund-form]').getByLabel('Amount to refund').fill('490');
  await owner.locator('[data-test=refund]').click();
  const question = await owner.locator('[data-test=refund-question]').textContent();
  await owner.locator('[data-test=refund-yes]').dblclick();
  await owner.locator('[data-test=order-done]').waitFor({ timeout: 10000 });
  out('refunded', { question, done: await owner.locator('[data-test=order-done]').textContent() });

  // The refund's webhook is in the endpoint's log; it is sent again on ask.
  await owner.goto(`${base}/console/webhooks`);
  const delivery = owner.locator('[data-test=deliveries] tr').first();
  for (let i = 0; i < 50 && (await delivery.count()) === 0; i++) {
    await owner.waitForTimeout(200);
    await owner.reload();
  }
  await delivery.waitFor({ timeout: 10000 });
  await delivery.locator('[data-test=resend]').click();
  await owner.locator('[data-test=hooks-done]').waitFor({ state: 'visible', timeout: 10000 });
  out('webhook', { secret_shown: secret.startsWith('whsec_'), row: await delivery.textContent(),
    done: await owner.locator('[data-test=hooks-done]').textContent() });

  // The owner makes an API key (shown once), then revokes it, asked twice.
  await owner.locator('[data-test=nav-keys]').click();
  await owner.waitForURL(`${base}/console/keys`);
  await owner.locator('[data-test=new-key-form]').getByLabel('Name').fill('Warehouse');
  await owner.locator('[data-test=new-key-form] button').click();
  await owner.locator('[data-test=new-key-box]').waitFor({ state: 'visible', timeout: 10000 });
  const key = await owner.locator('[data-test=new-key]').textContent();
  await owner.reload();
  const row = owner.locator('tr[data-name=Warehouse]');
  await row.locator('[data-test=revoke]').click();
  const askedTwice = await row.locator('[data-test=revoke]').textContent();
  await Promise.all([owner.waitForNavigation(), row.locator('[data-test=revoke]').click()]);
  out('key', { key, asked_twice: askedTwice,
    state: await owner.locator('tr[data-name=Warehouse] [data-test=key-state]').textContent(),
    shown_again: (await owner.content()).includes(key) });

  // A form without its CSRF token is refused.
  await owner.goto(`${base}/console/team`);
  await owner.evaluate(() => document.querySelector('[data-test=invite] input[name=csrf]').remove());
  await owner.locator('[data-test=invite]').getByLabel('Email').fill('eve@shop.example');
  const [answer] = await Promise.all([
    owner.waitForResponse((r) => r.url().endsWith('/console/team/invite')),
    owner.locator('[data-test=invite-send]').click(),
  ]);
  await owner.locator('[data-test=message]').waitFor();
  out('csrf_refused', { status: answer.status(), text: await owner.locator('[data-test=message]').textContent() });

  // Five wrong passwords lock sign-in for that email.
  const stranger = await person();
  shoot(stranger);
  await stranger.goto(`${base}/console/signin`);
  let last = null;
  for (let i = 0; i < 5; i++) {
    const form = stranger.locator('[data-test=signin]');
    await form.getByLabel('Email').fill('olga@shop.example');
    await form.getByLabel('Password').fill(`not the password ${i}`);
    [last] = await Promise.all([
      stranger.waitForResponse((r) => r.url().endsWith('/console/signin') && r.request().method() === 'POST'),
      form.locator('button[type=submit]').click(),
    ]);
    await stranger.locator('[data-test=message]').waitFor();
  }
  out('locked', { status: last.status(), text: await stranger.locator('[data-test=message]').textContent() });
});
