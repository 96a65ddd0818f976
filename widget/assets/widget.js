/*! Haul checkout widget. Paste one tag on any page:
 *    <script src="https://HAUL/widget.js"></script>
 *  then open a checkout session your backend made (or one from signed parameters):
 *    Haul.checkout({ session: 'cs_…', onSuccess(state) {}, onFailure(state) {}, onClose() {} });
 *  `locale: 'ru'` (or 'en') makes the checkout speak that language; without
 *  it, the checkout follows the buyer's browser, then the seller's default.
 *  It opens Haul's checkout page in an overlay frame (a new tab on small
 *  screens) and calls you back once with the outcome, read from the server:
 *  closed while a payment runs, it waits for that payment's end; on a page
 *  whose origin is not allowed, onFailure('origin_not_allowed'). Messages are accepted only from Haul's own origin; Haul's page
 *  sends them only to your page's exact origin, and only if you allowed it
 *  (PUT /v1/widget-origins).
 */
(function () {
  'use strict';
  var script = document.currentScript;
  var base = new URL(script && script.src ? script.src : '/', location.href).origin;
  // The few words the overlay itself says, in the checkout's language.
  var WORDS = {
    en: { frame: 'Checkout', close: 'Close the checkout' },
    ru: { frame: 'Оформление заказа', close: 'Закрыть оформление заказа' }
  };

  function checkout(opts) {
    if (!opts || typeof opts.session !== 'string' || !/^cs_[A-Za-z0-9]{1,40}$/.test(opts.session)) {
      throw new Error('Haul.checkout: give { session: "cs_…" }');
    }
    if (opts.locale !== undefined && !Object.prototype.hasOwnProperty.call(WORDS, opts.locale)) {
      throw new Error('Haul.checkout: locale is one of ' + Object.keys(WORDS).join(', '));
    }
    var url = base + '/checkout/' + opts.session + '?origin=' + encodeURIComponent(location.origin)
      + (opts.locale ? '&lang=' + opts.locale : '');
    var lang = opts.locale || (/^ru\b/i.test(navigator.language || '') ? 'ru' : 'en');
    var words = WORDS[lang];
    var small = window.matchMedia && window.matchMedia('(max-width: 600px)').matches;
    var overlay = null;
    var tab = null;
    var done = false;
    var statusUrl = base + '/v1/checkout/sessions/' + opts.session + '/status';
    var FINAL = { succeeded: 1, failed: 1, cancelled: 1, expired: 1, refunded: 1, partially_refunded: 1 };

    function onKey(e) { if (e.key === 'Escape') closed(); }

    function hide() {
      window.removeEventListener('message', onMessage);
      document.removeEventListener('keydown', onKey);
      if (overlay) overlay.remove();
      if (tab && !tab.closed) tab.close();
    }

    // Calls the shop back once.
    function report(state) {
      if (done) return;
      done = true;
      hide();
      if (state === 'succeeded') { if (opts.onSuccess) opts.onSuccess(state); }
      else if (state === 'closed') { if (opts.onClose) opts.onClose(); }
      else if (opts.onFailure) opts.onFailure(state);
    }

    function status() {
      return fetch(statusUrl, { credentials: 'omit' })
        .then(function (r) { return r.ok ? r.json() : null; })
        .catch(function () { return null; });
    }

    // The buyer closed the checkout: the server's word decides. A payment
    // under way is followed to its end (up to two minutes); one started
    // that the bank has not answered yet, for 20 s (the buyer may have just
    // sent the card); nothing under way is onClose.
    function closed() {
      if (done) return;
      hide();
      var tries = 0;
      (function check() {
        status().then(function (info) {
          var st = info && info.state;
          if (st && FINAL[st]) return report(st);
          if ((st === 'pending' || st === 'requires_action') && tries++ < 60) return setTimeout(check, 2000);
          if (info && info.paying && tries++ < 10) return setTimeout(check, 2000);
          report('closed');
        });
      })();
    }

    function onMessage(event) {
      if (event.origin !== base) return; // only Haul's checkout page speaks to us
      var d = event.data;
      if (!d || d.type !== 'haul.checkout' || d.session !== opts.session) return;
      if (d.state === 'closed') closed();
      else report(String(d.state));
    }
    window.addEventListener('message', onMessage);

    // A page whose origin the seller did not allow cannot frame the
    // checkout nor hear from it: say so instead of showing a broken frame.
    status().then(function (info) {
      if (info && !info.stream && info.origins.indexOf(location.origin) < 0) report('origin_not_allowed');
    });

    if (small) {
      tab = window.open(url, '_blank');
      return;
    }
    overlay = document.createElement('div');
    overlay.setAttribute('data-haul-overlay', '');
    var s = overlay.style;
    s.position = 'fixed'; s.inset = '0'; s.background = 'rgba(0,0,0,.5)'; s.zIndex = '2147483647';
    s.display = 'flex'; s.alignItems = 'center'; s.justifyContent = 'center';
    var frame = document.createElement('iframe');
    frame.src = url;
    frame.title = words.frame;
    frame.setAttribute('allow', 'payment');
    var f = frame.style;
    f.width = 'min(480px, 100vw)'; f.height = 'min(720px, 100vh)'; f.border = '0'; f.borderRadius = '12px';
    f.background = '#fff';
    overlay.appendChild(frame);
    // Closed by its × button, Escape, or a click beside the frame.
    var close = document.createElement('button');
    close.type = 'button';
    close.textContent = '\u00d7';
    close.setAttribute('aria-label', words.close);
    close.setAttribute('data-haul-close', '');
    var c = close.style;
    c.position = 'absolute'; c.top = '12px'; c.right = '12px'; c.width = '40px'; c.height = '40px';
    c.border = '0'; c.borderRadius = '50%'; c.background = '#fff'; c.color = '#222';
    c.font = '24px/40px sans-serif'; c.cursor = 'pointer'; c.padding = '0';
    close.addEventListener('click', closed);
    overlay.appendChild(close);
    overlay.addEventListener('click', function (e) { if (e.target === overlay) closed(); });
    document.addEventListener('keydown', onKey);
    document.body.appendChild(overlay);
    close.focus();
  }

  window.Haul = { checkout: checkout };
})();
