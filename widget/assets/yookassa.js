// YooKassa's embedded confirmation: /yookassa/confirm/<attempt>?token=<token>.
// Runs YooKassa's own payment form (its checkout-widget script) with the
// payment's one-time confirmation token; YooKassa sends the buyer back to
// Haul's checkout page, which reads the outcome from Haul.
'use strict';

(() => {
  const { t, lang } = window.HaulText;
  const state = document.querySelector('[data-test=state]');
  const back = document.querySelector('meta[name=haul-return]').content;
  const token = new URLSearchParams(location.search).get('token') || '';
  const fail = (text) => {
    state.dataset.kind = 'error';
    state.textContent = text;
  };
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(token)) {
    fail(t('yookassa.incomplete'));
    return;
  }
  if (typeof window.YooMoneyCheckoutWidget !== 'function') {
    fail(t('yookassa.not_loaded'));
    return;
  }
  const form = new window.YooMoneyCheckoutWidget({
    confirmation_token: token,
    return_url: back,
    error_callback: () => fail(t('yookassa.failed')),
  });
  form.render('payment-form');
})();
