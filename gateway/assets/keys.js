// The console's API keys page: a new key (shown once), a rotation (the old
// key works on for a day), a revocation (asked twice), through the seller
// API with the session.
'use strict';

(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const { t } = window.HaulText;
  const { api, failed, sure } = window.HaulConsole;
  const error = $('[data-test=keys-error]');

  // A new key is shown once, then the list is read again.
  function shown(answer) {
    $('[data-test=new-key]').textContent = answer.key;
    $('[data-test=new-key-box]').hidden = false;
  }

  const form = $('[data-test=new-key-form]');
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try { shown(await api('POST', '/v1/api-keys', { name: form.elements.name.value.trim() })); form.reset(); } catch (e) { failed(error, e); }
  });
  // Only keys that still work can be rotated or revoked.
  for (const row of document.querySelectorAll('[data-key]')) {
    if (!$('[data-action=rotate]', row)) continue;
    const id = row.dataset.key;
    $('[data-action=rotate]', row).addEventListener('click', async () => {
      try { shown(await api('POST', `/v1/api-keys/${id}/rotate`, { overlap_seconds: 86400 })); } catch (e) { failed(error, e); }
    });
    const revoke = $('[data-action=revoke]', row);
    revoke.addEventListener('click', async () => {
      if (!sure(revoke, t('console.keys.revoke_sure'))) return;
      try {
        await api('DELETE', `/v1/api-keys/${id}`);
        location.reload();
      } catch (e) { failed(error, e); }
    });
  }
})();
