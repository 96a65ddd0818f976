// Haul's reference viewer page: /watch/<stream id>[?token=<viewer token>].
//
// Speaks the Centrifugo client protocol through realtime.js: subscribes to
// stream:<id> and the viewer's own channel with recovery, reserves over RPC,
// reconnects recovering what it missed. Without ?token the page gets an
// anonymous viewer token and keeps it.
'use strict';

(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const { t, money, date } = window.HaulText;
  const streamId = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() || '');
  const channel = `stream:${streamId}`;

  // ----- clock skew ------------------------------------------------------
  // server_time - local time, from every event. Network delay only makes a
  // sample smaller, so the largest recent sample is the best estimate.
  let skew = 0;
  let skewSamples = [];
  function sampleClock(serverTime) {
    if (typeof serverTime !== 'number') return;
    const now = Date.now();
    skewSamples.push([now, serverTime - now]);
    skewSamples = skewSamples.filter(([at]) => now - at < 60000).slice(-50);
    skew = Math.max(...skewSamples.map(([, s]) => s));
  }
  const serverNow = () => Date.now() + skew;

  // ----- state -----------------------------------------------------------
  const state = { title: '', streamState: '', lot: null, offers: new Map(), viewers: 0 };

  function applySnapshot(s) {
    sampleClock(s.server_time);
    $('[data-test=test-mode]').hidden = s.livemode !== false;
    state.title = s.title;
    state.streamState = s.state;
    state.lot = s.pinned_lot;
    state.offers = new Map();
    for (const o of s.offers || []) {
      state.offers.set(o.id, {
        id: o.id, price: o.price_minor, currency: o.currency, quantity: o.quantity,
        limit: o.per_buyer_limit, endsAt: o.ends_at, left: o.units_left ?? o.quantity, ended: null,
      });
    }
    render();
  }

  function applyEvent(e) {
    sampleClock(e.server_time);
    switch (e.type) {
      case 'stream.status':
        state.streamState = e.state;
        break;
      case 'lot.pinned':
        state.lot = e.lot;
        break;
      case 'lot.unpinned':
        if (state.lot && state.lot.id === e.lot_id) state.lot = null;
        break;
      case 'offer.started':
        state.offers.set(e.offer_id, {
          id: e.offer_id, price: e.price_minor, currency: e.currency, quantity: e.quantity,
          limit: e.per_buyer_limit, endsAt: e.ends_at, left: e.units_left, ended: null,
        });
        break;
      case 'offer.stock': {
        const o = state.offers.get(e.offer_id);
        if (o && !o.ended) o.left = e.units_left;
        break;
      }
      case 'offer.updated': {
        // Stock added or taken away, the limit or the end moved.
        const o = state.offers.get(e.offer_id);
        if (o && !o.ended) {
          o.quantity = e.quantity;
          o.limit = e.per_buyer_limit;
          o.endsAt = e.ends_at;
          o.left = e.units_left;
        }
        break;
      }
      case 'offer.ended': {
        const o = state.offers.get(e.offer_id);
        if (e.note) tick('message', e.note);
        if (o) {
          o.ended = e.reason;
          o.note = e.note || '';
          if (e.reason === 'sold_out') o.left = 0;
          // An ended offer stays visible for a moment, then goes.
          setTimeout(() => { state.offers.delete(e.offer_id); render(); }, 5000);
        }
        break;
      }
      case 'purchase':
        tick('purchase', t('watch.purchase', { quantity: e.quantity, lot: lotTitle(e.lot_id) }));
        break;
      case 'viewers':
        state.viewers = e.count;
        break;
      case 'message':
        tick('message', e.text);
        break;
      default:
        return; // newer servers may send more
    }
    render();
  }

  const lotTitle = (id) => (state.lot && state.lot.id === id ? state.lot.title : t('watch.this_item'));

  function tick(kind, text) {
    const li = document.createElement('li');
    li.dataset.kind = kind;
    li.textContent = text;
    const list = $('[data-test=ticker]');
    list.prepend(li);
    while (list.children.length > 30) list.lastChild.remove();
  }

  // ----- rendering -------------------------------------------------------
  function clock(ms) {
    const s = Math.max(0, Math.ceil(ms / 1000));
    const m = Math.floor(s / 60);
    return `${m}:${String(s % 60).padStart(2, '0')}`;
  }

  function render() {
    document.title = state.title ? t('watch.title_live', { title: state.title }) : t('watch.page_title');
    $('[data-test=title]').textContent = state.title;
    const badge = $('[data-test=stream-state]');
    badge.textContent = t(state.streamState === 'live' ? 'watch.badge_live'
      : state.streamState === 'ended' ? 'watch.badge_ended' : 'watch.badge_soon');
    badge.dataset.state = state.streamState;
    $('[data-test=viewers]').textContent = String(state.viewers);

    const lot = $('[data-test=lot]');
    lot.hidden = !state.lot;
    if (state.lot) {
      $('[data-test=lot-title]').textContent = state.lot.title;
      $('[data-test=lot-description]').textContent = state.lot.description || '';
      const img = $('[data-test=lot-image]');
      img.hidden = !state.lot.image_url;
      if (state.lot.image_url && img.getAttribute('src') !== state.lot.image_url) img.src = state.lot.image_url;
    }

    const box = $('[data-test=offers]');
    const cards = new Map([...box.children].map((c) => [c.dataset.offer, c]));
    for (const [id, o] of state.offers) {
      let card = cards.get(id);
      if (!card) {
        card = $('#offer-card').content.firstElementChild.cloneNode(true);
        card.dataset.offer = id;
        // "3 left" / "Осталось: 3": the number sits where the words put it.
        const [before, after = ''] = t('watch.units_left').split('{n}');
        $('[data-part=before]', card).textContent = before;
        $('[data-part=after]', card).textContent = after;
        $('[data-test=buy]', card).addEventListener('click', () => buy(id));
        box.append(card);
      }
      cards.delete(id);
      $('[data-test=price]', card).textContent = money(o.price, o.currency);
      $('[data-test=units-left]', card).textContent = String(o.left);
      $('[data-test=stock-bar]', card).style.width = `${o.quantity ? (100 * o.left) / o.quantity : 0}%`;
      const button = $('[data-test=buy]', card);
      if (o.ended) {
        card.dataset.ended = o.ended;
        button.textContent = t(o.ended === 'sold_out' ? 'watch.sold_out' : 'watch.ended');
        button.title = o.note || '';
      } else if (o.left <= 0) {
        button.textContent = t('watch.sold_out');
      }
      button.disabled = Boolean(o.ended) || o.left <= 0 || buying.has(id);
    }
    for (const stale of cards.values()) stale.remove();
    $('[data-test=no-offer]').hidden = state.offers.size > 0;
    updateCountdowns();
  }

  function updateCountdowns() {
    for (const card of $('[data-test=offers]').children) {
      const o = state.offers.get(card.dataset.offer);
      if (!o) continue;
      $('[data-test=countdown]', card).textContent = o.ended ? '' : clock(o.endsAt - serverNow());
    }
  }
  setInterval(updateCountdowns, 250);

  function showResult(kind, text) {
    const el = $('[data-test=result]');
    el.hidden = false;
    el.dataset.kind = kind;
    el.textContent = text;
  }

  // Every refusal the reserve call can give, by the server's code
  // (streams' refusal codes, the socket's own answers).
  const REFUSALS = ['sold_out', 'not_enough_stock', 'over_buyer_limit', 'signed_viewer_required',
    'over_address_limit', 'offer_ended', 'offer_not_started', 'not_loaded', 'request_id_reused',
    'not_found', 'too_many_requests'];

  // ----- my orders ---------------------------------------------------------
  // The viewer's own orders in this stream: listed from the API, then kept
  // current by the pushes on the viewer's own channel.
  const myOrders = new Map();
  const ORDER_STATES = ['created', 'pending', 'requires_action', 'succeeded', 'failed', 'cancelled',
    'expired', 'partially_refunded', 'refunded'];
  const FULFILMENT = ['new', 'confirmed', 'packed', 'shipped', 'delivered', 'cancelled', 'returned'];
  function orderLabel(o) {
    if (o.state === 'refunded' || o.state === 'partially_refunded') return t(`watch.order.${o.state}`);
    if (o.fulfilment) return FULFILMENT.includes(o.fulfilment) ? t(`watch.fulfilment.${o.fulfilment}`) : o.fulfilment;
    return ORDER_STATES.includes(o.state) ? t(`watch.order.${o.state}`) : o.state;
  }
  async function loadMyOrders() {
    if (!live.bearer) return;
    try {
      const r = await fetch(`/v1/viewer/orders?stream=${encodeURIComponent(streamId)}&limit=50`,
        { headers: { authorization: `Bearer ${live.bearer}` } });
      if (!r.ok) return;
      const page = await r.json();
      for (const o of page.data || []) myOrders.set(o.id, o);
      renderMyOrders();
    } catch { /* the list waits for the next push */ }
  }
  function myOrderChanged(e) {
    const known = myOrders.get(e.order_id);
    if (!known) { loadMyOrders(); return; }
    Object.assign(known, {
      state: e.state, refunded_minor: e.refunded_minor, fulfilment: e.fulfilment, shipment: e.shipment,
    });
    renderMyOrders();
  }
  function renderMyOrders() {
    const box = $('[data-test=my-orders]');
    box.hidden = myOrders.size === 0;
    const list = $('[data-test=my-orders-list]');
    list.textContent = '';
    const newest = [...myOrders.values()].sort((a, b) => b.created_at - a.created_at);
    for (const o of newest) {
      const li = document.createElement('li');
      li.dataset.order = o.id;
      li.dataset.state = o.state;
      const what = document.createElement('span');
      what.dataset.test = 'order-amount';
      what.textContent = money(o.amount_minor, o.currency);
      const when = document.createElement('time');
      when.dataset.test = 'order-date';
      when.dateTime = new Date(o.created_at).toISOString();
      when.textContent = date(o.created_at);
      const st = document.createElement('span');
      st.dataset.test = 'order-state';
      st.textContent = orderLabel(o);
      li.append(what, when, st);
      const details = [];
      if (o.refunded_minor > 0) details.push(t('watch.refunded', { amount: money(o.refunded_minor, o.currency) }));
      if (o.shipment) details.push(`${o.shipment.carrier}: ${o.shipment.tracking_number}`);
      if (details.length) {
        const d = document.createElement('span');
        d.dataset.test = 'order-detail';
        d.textContent = details.join(' · ');
        li.append(d);
      }
      list.append(li);
    }
  }

  // ----- paying ----------------------------------------------------------
  // The hold becomes an order, paid in Haul's checkout widget (an overlay,
  // or a new tab on small screens) while this page stays live: the purchase
  // shows up here like anywhere, and a failed payment's unit comes back.
  const OUTCOMES = ['failed', 'expired', 'cancelled'];
  function offerPayment(offerId, holdId) {
    const box = $('[data-test=result]');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'buy';
    button.dataset.test = 'pay';
    button.textContent = t('watch.pay_now');
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        const r = await fetch(`/v1/offers/${encodeURIComponent(offerId)}/holds/${encodeURIComponent(holdId)}/order`,
          { method: 'POST', headers: { authorization: `Bearer ${live.bearer}` } });
        const o = await r.json();
        if (!r.ok) throw new Error((o.error && o.error.message) || t('watch.could_not_order'));
        loadMyOrders();
        window.Haul.checkout({
          session: o.checkout_session,
          locale: window.HaulText.lang,
          onSuccess: () => showResult('ok', t('watch.paid')),
          onFailure: (state) => showResult('error',
            OUTCOMES.includes(state) ? t(`watch.outcome.${state}`) : t('watch.outcome.other', { state })),
          onClose: () => { button.disabled = false; },
        });
      } catch (e) {
        button.disabled = false;
        showResult('error', t('watch.could_not_pay', { why: e.message || e }));
        box.append(' ', button);
      }
    });
    box.append(' ', button);
  }

  // ----- buying ----------------------------------------------------------
  const buying = new Set();
  async function buy(offerId) {
    if (buying.has(offerId)) return;
    buying.add(offerId);
    render();
    const requestId = `w${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`;
    try {
      const r = await live.rpc('reserve', { offer_id: offerId, quantity: 1, request_id: requestId });
      const secs = Math.max(1, Math.round((r.hold.expires_at - serverNow()) / 1000));
      const span = secs < 120 ? t('watch.seconds', { n: secs }) : t('watch.minutes', { n: Math.round(secs / 60) });
      showResult('ok', t('watch.held', { span }));
      offerPayment(offerId, r.hold.id);
      const o = state.offers.get(offerId);
      if (o && typeof r.units_left === 'number') o.left = Math.min(o.left, r.units_left);
    } catch (e) {
      const code = e.code === 111 ? 'too_many_requests' : e.message;
      const lost = !e.message || ['connection lost', 'not connected', 'timeout'].includes(e.message);
      showResult('error', REFUSALS.includes(code) ? t(`watch.refusal.${code}`)
        : t('watch.could_not_reserve', { why: lost ? t('watch.connection_lost') : e.message }));
    } finally {
      buying.delete(offerId);
      render();
    }
  }

  // ----- the connection ----------------------------------------------------
  // The stream's channel (with recovery) and the viewer's own channel (their
  // orders' changes; after a reconnect the list is read again, so nothing
  // missed is lost).
  const given = new URLSearchParams(location.search).get('token');
  async function viewerToken() {
    if (given) return given;
    try {
      const saved = JSON.parse(localStorage.getItem('haul.viewer') || 'null');
      if (saved && saved.expires_at > Date.now() + 60000) return saved.token;
    } catch { /* storage may be off */ }
    const r = await fetch('/v1/viewers/anonymous', { method: 'POST' });
    if (!r.ok) throw new Error(`anonymous token: ${r.status}`);
    const t = await r.json();
    try { localStorage.setItem('haul.viewer', JSON.stringify(t)); } catch { /* fine */ }
    return t.token;
  }
  const forgetToken = () => { try { localStorage.removeItem('haul.viewer'); } catch { /* fine */ } };
  function setStatus(s, text) {
    const el = $('[data-test=status]');
    el.dataset.state = s;
    el.textContent = text;
  }
  let personal = null;
  const live = new window.HaulRealtime({
    token: viewerToken,
    channels: (data) => {
      personal = data.personal_channel || null;
      return personal ? [channel, personal] : [channel];
    },
    onConnected: (data) => { if (data.personal_channel) loadMyOrders(); },
    onSnapshot: (ch, data) => { if (ch === channel) applySnapshot(data); },
    onPublication: (ch, data) => {
      if (ch === channel) applyEvent(data);
      else if (ch === personal && data.type === 'order.updated') myOrderChanged(data);
    },
    onStatus: (state, detail) => {
      if (state === 'live') setStatus('live', t('watch.live'));
      else if (state === 'reconnecting') setStatus('reconnecting', t('watch.reconnecting'));
      else setStatus('failed', t('watch.disconnected', { why: detail }));
    },
    // An anonymous token the server refuses (3500) is replaced; a given one is not.
    onClosed: (ev) => {
      if (ev.code !== 3500 || given) return false;
      forgetToken();
      return true;
    },
    onRefused: (e) => { if (e.code === 109) forgetToken(); },
  });
  render();
  live.start();
})();
