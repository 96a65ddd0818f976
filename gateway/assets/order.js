// An order's page in the console: its fulfilment move and its refund, which
// asks to be confirmed and carries an Idempotency-Key (a second click of
// "Yes, refund" refunds once), both through the seller API with the
// session's cookie and CSRF token.
'use strict';

(() => {
  const $ = (sel) => document.querySelector(sel);
  const { t, money } = window.HaulText;
  const { api, digits } = window.HaulConsole;
  const box = $('[data-test=order]');
  const id = box.dataset.order;
  const currency = box.dataset.currency;

  const failed = (e) => window.HaulConsole.failed($('[data-test=order-error]'), e);

  const move = $('[data-test=move-form]');
  if (move) {
    move.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const f = move.elements;
      const body = { state: f.state.value };
      for (const k of ['carrier', 'tracking_number', 'note']) if (f[k].value.trim()) body[k] = f[k].value.trim();
      try {
        await api('POST', `/v1/orders/${id}/fulfilment`, body);
        location.reload();
      } catch (e) { failed(e); }
    });
  }

  const refund = $('[data-test=refund-form]');
  if (refund) {
    const ask = $('[data-test=refund-confirm]');
    let pending = null;
    refund.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const amount = Math.round(Number(refund.elements.amount.value) * 10 ** digits(currency));
      const key = `console-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
      pending = { amount, key, reason: refund.elements.reason.value.trim() };
      $('[data-test=refund-question]').textContent = t('console.orders.refund_ask', { amount: money(amount, currency) });
      ask.hidden = false;
      $('[data-test=refund-yes]').focus();
    });
    $('[data-test=refund-no]').addEventListener('click', () => { ask.hidden = true; pending = null; });
    const yes = $('[data-test=refund-yes]');
    yes.addEventListener('click', async () => {
      if (!pending) return;
      const body = { amount_minor: pending.amount };
      if (pending.reason) body.reason = pending.reason;
      // One click is one refund; the key makes sure of it even if a
      // second request gets through.
      yes.disabled = true;
      try {
        const r = await api('POST', `/v1/orders/${id}/refunds`, body, pending.key);
        const done = $('[data-test=order-done]');
        done.textContent = t('console.orders.refunded', { amount: money(r.amount_minor, currency) });
        done.hidden = false;
        setTimeout(() => location.reload(), 800);
      } catch (e) { failed(e); yes.disabled = false; }
    });
  }
})();
