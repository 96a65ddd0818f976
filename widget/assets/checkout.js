// The checkout page of a session: /checkout/<session>[?origin=<host origin>].
// It shows the summary, sends the buyer to the chosen acquirer's page, and on
// return reads the final state from Haul (never from the redirect), then
// tells the embedding page by postMessage with that page's exact origin, and
// only if the seller allows it.
'use strict';

(() => {
  const $ = (sel) => document.querySelector(sel);
  const { t, money, phone, lang } = window.HaulText;
  const id = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() || '');
  const params = new URLSearchParams(location.search);
  // The host's origin rides along across the acquirer's page.
  const key = `haul.origin.${id}`;
  if (params.get('origin')) {
    try { sessionStorage.setItem(key, params.get('origin')); } catch { /* fine */ }
  }
  let hostOrigin = params.get('origin');
  try { hostOrigin = hostOrigin || sessionStorage.getItem(key); } catch { /* fine */ }
  let info = null;
  let told = false;
  let typed = '';

  function show(kind, text) {
    const el = $('[data-test=state]');
    el.dataset.kind = kind;
    el.textContent = text;
  }

  // Tells the shop's page, at its exact origin, if the seller allows that
  // origin. When the page's origin was lost on the way through the
  // acquirer's page (storage in third-party frames may be off), the message
  // goes to each allowed origin in turn: the browser delivers it only to the
  // one the shop's page really has, never to anyone else.
  // A stream purchase is paid from Haul's own viewer page: only this origin.
  function tell(state) {
    if (told || !info) return;
    const target = window.parent !== window ? window.parent : window.opener;
    if (!target) return;
    const message = { type: 'haul.checkout', session: id, state };
    const targets = info.stream ? [location.origin]
      : hostOrigin && info.origins.includes(hostOrigin) ? [hostOrigin] : info.origins;
    if (targets.length === 0) return;
    for (const origin of targets) target.postMessage(message, origin);
    told = true;
  }

  const NAMES = { tbank: 'T-Bank', cloudpayments: 'CloudPayments', yookassa: 'YooKassa', stripe: 'Stripe' };

  // How each final state reads: its kind, and the words under checkout.final.
  const FINAL = { succeeded: 'ok', failed: 'error', cancelled: 'error', expired: 'error',
    refunded: 'ok', partially_refunded: 'ok' };

  // ----- the buyer's details ------------------------------------------------
  // Asked before paying when the seller's checkout asks them: the form is
  // filled from what the buyer kept last time, the server checks it, and
  // the total follows the delivery chosen.
  let asked = null;
  let editing = false;
  const FIELDS = ['name', 'phone', 'email', 'delivery', 'address'];
  const ADDRESS = ['country', 'city', 'line1', 'postal_code'];
  // A refused field's name, and what to do: the server's words in English,
  // the page's own in another language.
  function refusal(field, message) {
    const [top, sub] = (field || '').split('.');
    const name = top === 'address' && ADDRESS.includes(sub) ? t(`checkout.${sub}`)
      : FIELDS.includes(top) ? t(`checkout.${top}`) : field;
    const what = lang === 'en' || !FIELDS.includes(top) ? message || t('checkout.check_form') : t(`checkout.invalid.${top}`);
    return name ? `${name}: ${what}` : what;
  }
  async function loadDetails() {
    const r = await fetch(`/v1/checkout/sessions/${encodeURIComponent(id)}/details`);
    if (r.ok) asked = await r.json();
  }
  function renderDetails(open) {
    const form = $('[data-test=details]');
    const given = $('[data-test=given]');
    const need = info.details_asked && open && asked;
    form.hidden = !(need && (!info.details_given || editing));
    given.hidden = !(need && info.details_given && !editing);
    if (!need) return;
    if (!given.hidden) {
      const g = asked.given || {};
      const parts = [g.name, g.phone && phone(g.phone), g.email, g.delivery && g.delivery.name,
        g.address && `${g.address.line1}, ${g.address.city}`].filter(Boolean);
      given.textContent = parts.join(' · ');
      const change = document.createElement('button');
      change.type = 'button';
      change.className = 'secondary';
      change.dataset.test = 'details-change';
      change.textContent = t('checkout.change');
      change.addEventListener('click', () => { editing = true; render(); });
      given.append(' ', change);
    }
    if (form.hidden || form.dataset.ready) return;
    form.dataset.ready = '1';
    const prior = asked.given || asked.saved || {};
    for (const f of ['name', 'phone', 'email']) {
      const need = asked.fields[f];
      const label = form.querySelector(`[data-field=${f}]`);
      label.hidden = need === 'off';
      const input = label.querySelector('input');
      input.required = need === 'required';
      input.value = prior[f] || '';
    }
    const box = $('[data-test=delivery]');
    box.hidden = asked.delivery.length === 0;
    for (const d of asked.delivery) {
      const label = document.createElement('label');
      const radio = document.createElement('input');
      radio.type = 'radio';
      radio.name = 'delivery';
      radio.value = d.id;
      radio.dataset.kind = d.kind;
      radio.dataset.test = `delivery-${d.id}`;
      radio.checked = prior.delivery ? prior.delivery.id === d.id : asked.delivery.length === 1;
      const price = d.price_minor > 0 ? money(d.price_minor, info.currency) : t('checkout.free');
      label.append(radio, ` ${d.name} — ${price}${d.address ? ` (${d.address})` : ''}`);
      box.append(label);
    }
    const address = $('[data-test=address]');
    const a = prior.address || {};
    for (const k of ['country', 'city', 'line1', 'postal_code']) if (a[k]) form.elements[k].value = a[k];
    const shipping = () => {
      const chosen = form.querySelector('input[name=delivery]:checked');
      address.hidden = !(asked.fields.address === 'required' && chosen && chosen.dataset.kind === 'shipping');
    };
    box.addEventListener('change', shipping);
    shipping();
    form.elements.save.checked = Boolean(asked.saved || asked.given);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const err = $('[data-test=details-error]');
      err.hidden = true;
      const body = { save: form.elements.save.checked };
      for (const f of ['name', 'phone', 'email']) {
        const v = form.elements[f].value.trim();
        if (asked.fields[f] !== 'off' && v) body[f] = v;
      }
      const chosen = form.querySelector('input[name=delivery]:checked');
      if (chosen) body.delivery = chosen.value;
      if (!address.hidden) {
        body.address = {};
        for (const k of ['country', 'city', 'line1', 'postal_code']) body.address[k] = form.elements[k].value.trim();
      }
      const r = await fetch(`/v1/checkout/sessions/${encodeURIComponent(id)}/details`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const answer = await r.json().catch(() => ({}));
      if (!r.ok) {
        const field = answer.error && answer.error.field;
        err.textContent = refusal(field, answer.error && answer.error.message);
        err.dataset.field = field || '';
        err.hidden = false;
        return;
      }
      editing = false;
      await load();
    });
  }

  function render() {
    $('[data-test=test-mode]').hidden = info.livemode !== false;
    const list = $('[data-test=items]');
    list.replaceChildren();
    for (const item of info.items) {
      const li = document.createElement('li');
      const name = document.createElement('span');
      name.textContent = `${item.name} × ${item.quantity}`;
      const price = document.createElement('span');
      price.textContent = money(item.price_minor * item.quantity, info.currency);
      li.append(name, price);
      list.append(li);
    }
    $('[data-test=total]').textContent = money(info.amount_minor, info.currency);
    const methods = $('[data-test=methods]');
    methods.replaceChildren();
    const open = ['created', 'pending', 'requires_action'].includes(info.state);
    renderDetails(info.state === 'created');
    // Nothing to pay with until the details the seller asks are given.
    if (info.details_asked && (!info.details_given || editing) && info.state === 'created') return;
    // A stream purchase has no buyer contact: banks that issue receipts need one.
    if (open && !info.has_contact && info.acquirers.some((a) => a !== 'sandbox')) {
      const label = document.createElement('label');
      label.textContent = `${t('checkout.receipt_email')} `;
      const input = document.createElement('input');
      input.type = 'email';
      input.autocomplete = 'email';
      input.dataset.test = 'email';
      input.value = typed;
      input.addEventListener('input', () => { typed = input.value.trim(); });
      label.append(input);
      methods.append(label);
    }
    if (open && info.acquirers.length === 0) {
      const none = document.createElement('p');
      none.dataset.test = 'no-methods';
      none.textContent = t('checkout.no_methods');
      methods.append(none);
    }
    if (open) {
      for (const acquirer of info.acquirers) {
        const b = document.createElement('button');
        b.type = 'button';
        b.dataset.test = `pay-${acquirer}`;
        b.textContent = acquirer === 'sandbox' ? t('checkout.pay_test') : t('checkout.pay_with', { bank: NAMES[acquirer] || acquirer });
        b.addEventListener('click', () => pay(acquirer, b));
        methods.append(b);
      }
    }
    const final = FINAL[info.state];
    if (final) {
      show(final, t(`checkout.final.${info.state}`));
      tell(info.state);
    } else if (info.state !== 'created') {
      show('', t('checkout.waiting'));
    }
  }

  async function load() {
    const r = await fetch(`/v1/checkout/sessions/${encodeURIComponent(id)}/status`);
    if (!r.ok) throw new Error(t(r.status === 404 ? 'checkout.not_found' : 'checkout.try_again'));
    info = await r.json();
    if (info.details_asked) await loadDetails();
    render();
  }

  async function pay(acquirer, button) {
    button.disabled = true;
    try {
      const r = await fetch(`/v1/checkout/sessions/${encodeURIComponent(id)}/attempts`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify(acquirer !== 'sandbox' && typed ? { acquirer, customer_email: typed, locale: lang }
          : { acquirer, locale: lang }) });
      const body = await r.json();
      if (!r.ok) throw new Error((body.error && body.error.message) || t('checkout.could_not_start'));
      location.href = body.redirect_url;
    } catch (e) {
      show('error', String(e.message || e));
      button.disabled = false;
    }
  }

  $('[data-test=close]').addEventListener('click', () => {
    if (info && !FINAL[info.state]) tell('closed');
    if (info && window.parent === window && !window.opener) location.href = info.cancel_url;
  });
  // Escape closes too, wherever the focus is in this page.
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') $('[data-test=close]').click();
  });

  // After the acquirer's page: poll until the server says how it ended.
  async function poll() {
    for (let i = 0; i < 120 && info && !FINAL[info.state]; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      try { await load(); } catch { /* keep trying */ }
    }
  }

  load().then(() => { if (params.has('return')) poll(); }).catch((e) => show('error', String(e.message || e)));
})();
