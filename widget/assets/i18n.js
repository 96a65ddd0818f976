// The page's language, shared by Haul's buyer pages: the words the server
// put in the page (a JSON block, in the language it chose), and amounts,
// dates and phone numbers written the way that language writes them.
// Loaded before the page's own script.
'use strict';

(() => {
  const lang = document.documentElement.lang || 'en';
  let words = {};
  try { words = JSON.parse(document.getElementById('haul-text').textContent || '{}'); } catch { /* none */ }

  // The words of `key`, each {name} replaced by vars[name].
  const t = (key, vars = {}) => (words[key] ?? key)
    .replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));

  const moneyFormats = new Map();
  // An amount in minor units: `1 490,00 ₽` in Russian, `₽1,490.00` in English.
  function money(minor, currency) {
    if (!moneyFormats.has(currency)) {
      try {
        moneyFormats.set(currency, new Intl.NumberFormat(lang, { style: 'currency', currency, currencyDisplay: 'narrowSymbol' }));
      } catch {
        moneyFormats.set(currency, null);
      }
    }
    const f = moneyFormats.get(currency);
    if (!f) return `${minor} ${currency}`;
    return f.format(minor / 10 ** f.resolvedOptions().maximumFractionDigits);
  }

  // A moment (ms since the epoch) in the buyer's own time zone.
  const dates = new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' });
  const date = (ms) => dates.format(new Date(ms));

  // An E.164 number grouped as it is written at home: Russia and
  // Kazakhstan `+7 900 123-45-67`, North America `+1 415 555-0100`; others
  // as given.
  function phone(e164) {
    const s = String(e164 || '');
    let m = /^\+7(\d{3})(\d{3})(\d{2})(\d{2})$/.exec(s);
    if (m) return `+7 ${m[1]} ${m[2]}-${m[3]}-${m[4]}`;
    m = /^\+1(\d{3})(\d{3})(\d{4})$/.exec(s);
    if (m) return `+1 ${m[1]} ${m[2]}-${m[3]}`;
    return s;
  }

  // The language switch: each link is this very address in that language.
  for (const a of document.querySelectorAll('a[data-lang]')) {
    const url = new URL(location.href);
    url.searchParams.set('lang', a.dataset.lang);
    a.href = url.pathname + url.search;
    if (a.dataset.lang === lang) a.setAttribute('aria-current', 'true');
  }

  window.HaulText = { lang, t, money, date, phone };
})();
