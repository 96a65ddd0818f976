// A stream purchase's checkout page asks the buyer's details and delivery
// before paying: a wrong phone is refused with the field named, the courier
// asks for an address and adds its price to the total, then the buyer pays
// with a sandbox test card. A second visit offers the details kept.
// Driven by gateway/tests/suite/pages.rs.
//
//   node details.mjs CHECKOUT_URL [first|again]
import { drive, out } from './browser.mjs';

const [url, visit = 'first'] = process.argv.slice(2);
await drive(async (browser, shoot) => {
  const page = await (await browser.newContext()).newPage();
  shoot(page);
  page.on('pageerror', (e) => out('page_error', String(e)));
  await page.goto(url);
  const form = page.locator('[data-test=details]');
  await form.waitFor({ timeout: 10000 });
  await page.waitForFunction(() => document.querySelector('[data-test=total]').textContent.trim() !== '',
    null, { timeout: 10000 });
  out('asked', {
    total: await page.locator('[data-test=total]').textContent(),
    methods: await page.locator('[data-test^=pay-]').count(),
  });
  if (visit === 'again') {
    out('prefilled', {
      name: await form.locator('input[name=name]').inputValue(),
      phone: await form.locator('input[name=phone]').inputValue(),
      line1: await form.locator('input[name=line1]').inputValue(),
      courier: await form.locator('[data-test=delivery-courier]').isChecked(),
      save: await form.locator('[data-test=save]').isChecked(),
    });
    return;
  }
  await form.locator('input[name=name]').fill('Anna Petrova');
  await form.locator('input[name=phone]').fill('12345');
  await form.locator('[data-test=delivery-courier]').check();
  out('address_shown', await form.locator('[data-test=address]').isVisible());
  await form.locator('input[name=city]').fill('Moscow');
  await form.locator('input[name=line1]').fill('Arbat 1, apt 2');
  await form.locator('input[name=postal_code]').fill('119002');
  await form.locator('[data-test=save]').check();
  await form.locator('[data-test=details-submit]').click();
  const err = page.locator('[data-test=details-error]');
  await err.waitFor({ state: 'visible', timeout: 10000 });
  out('refused', { field: await err.getAttribute('data-field'), text: await err.textContent() });
  await form.locator('input[name=phone]').fill('8 900 123-45-67');
  await form.locator('[data-test=details-submit]').click();
  await page.locator('[data-test=pay-sandbox]').waitFor({ timeout: 10000 });
  out('given', {
    total: await page.locator('[data-test=total]').textContent(),
    summary: await page.locator('[data-test=given]').textContent(),
    lines: await page.locator('[data-test=items] li').count(),
  });
  await page.locator('[data-test=pay-sandbox]').click();
  await page.locator('input[name=number]').fill('4242 4242 4242 4242');
  await page.locator('input[name=expiry]').fill('12/39');
  await page.locator('input[name=cvc]').fill('123');
  await page.locator('button[type=submit]').click();
  await page.locator('[data-test=state][data-kind=ok]').waitFor({ timeout: 20000 });
  out('paid', await page.locator('[data-test=state]').textContent());
});
