// The console's webhooks page: an endpoint added (its signing secret
// shown once), paused or resumed, its secret rotated, deleted (asked
// twice), a delivery sent again — through the seller API with the session.
'use strict';

(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const { t } = window.HaulText;
  const { api, failed, sure } = window.HaulConsole;
  const error = $('[data-test=hooks-error]');
  const secret = (answer) => {
    $('[data-test=secret]').textContent = answer.secret;
    $('[data-test=secret-box]').hidden = false;
  };

  const form = $('[data-test=new-endpoint]');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const event_types = [...form.querySelectorAll('input[name=event]:checked')].map((c) => c.value);
    try {
      secret(await api('POST', '/v1/webhook-endpoints', { url: form.elements.url.value.trim(), event_types }));
      form.reset();
    } catch (e) { failed(error, e); }
  });

  for (const box of document.querySelectorAll('[data-test=endpoint]')) {
    const id = box.dataset.endpoint;
    $('[data-action=toggle]', box).addEventListener('click', async () => {
      try {
        await api('PATCH', `/v1/webhook-endpoints/${id}`, { enabled: box.dataset.enabled !== 'true' });
        location.reload();
      } catch (e) { failed(error, e); }
    });
    $('[data-action=rotate]', box).addEventListener('click', async () => {
      try { secret(await api('POST', `/v1/webhook-endpoints/${id}/rotate`)); } catch (e) { failed(error, e); }
    });
    const del = $('[data-action=delete]', box);
    del.addEventListener('click', async () => {
      if (!sure(del, t('console.hooks.delete_sure'))) return;
      try {
        await api('DELETE', `/v1/webhook-endpoints/${id}`);
        location.reload();
      } catch (e) { failed(error, e); }
    });
    for (const row of box.querySelectorAll('[data-message]')) {
      const button = $('[data-action=resend]', row);
      button.addEventListener('click', async () => {
        button.disabled = true;
        try {
          await api('POST', `/v1/webhook-endpoints/${id}/deliveries/${row.dataset.message}/resend`);
          const done = $('[data-test=hooks-done]');
          done.textContent = t('console.hooks.resent');
          done.hidden = false;
        } catch (e) { failed(error, e); button.disabled = false; }
      });
    }
  }
})();
