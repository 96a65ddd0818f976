// The console's scripts call the seller API with the session: its cookie
// (same origin) and its CSRF token (the page's `haul-csrf`), and show what
// the API refused in the page's `[data-test$=-error]` line.
'use strict';

(() => {
  const csrf = document.querySelector('meta[name=haul-csrf]').content;
  const { t } = window.HaulText;

  // A call; an answer that is not 2xx throws the API's own message.
  async function api(method, path, body, idempotencyKey) {
    const headers = { 'content-type': 'application/json', 'x-csrf-token': csrf };
    if (idempotencyKey) headers['idempotency-key'] = idempotencyKey;
    const r = await fetch(path, {
      method, credentials: 'same-origin', headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await r.json().catch(() => ({}));
    if (!r.ok) {
      const e = answer.error || {};
      throw new Error(`${e.field ? `${e.field}: ` : ''}${e.message || r.status}`);
    }
    return answer;
  }

  // Says what went wrong in `el`.
  function failed(el, e) {
    el.textContent = t('console.room.failed', { why: e.message || e });
    el.hidden = false;
  }

  // A currency's minor digits, as the browser knows them.
  function digits(currency) {
    try {
      return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits;
    } catch {
      return 2;
    }
  }

  // A button that asks once more before it acts: true on its second click
  // (the first turns its words into `question`).
  function sure(button, question) {
    if (button.dataset.sure) return true;
    button.dataset.sure = '1';
    button.textContent = question;
    return false;
  }

  window.HaulConsole = { api, failed, digits, sure };
})();
