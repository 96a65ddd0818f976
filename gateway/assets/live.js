// The console's live room (/console/streams/<id>): hears the stream's
// channel (offers, stock, purchases, notes, viewers) and its seller channel
// (each live offer's held and sold units), and runs the sale through the
// seller API with the session's cookie and CSRF token.
'use strict';

(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const meta = (name) => document.querySelector(`meta[name=${name}]`).content;
  const { t, money } = window.HaulText;
  const { api, digits } = window.HaulConsole;
  const token = meta('haul-token');
  const streamId = meta('haul-stream');
  const room = $('[data-test=room]');
  const canWrite = room.dataset.write === 'true';

  // ----- the seller API ----------------------------------------------------
  async function act(button, work) {
    const error = $('[data-test=room-error]');
    button.disabled = true;
    error.hidden = true;
    try { await work(); } catch (e) { window.HaulConsole.failed(error, e); } finally { button.disabled = false; }
  }

  // ----- state ---------------------------------------------------------------
  let skew = 0;
  const clock = (serverTime) => {
    if (typeof serverTime === 'number') skew = Math.max(skew * 0.8, serverTime - Date.now());
  };
  const serverNow = () => Date.now() + skew;
  const offers = new Map(); // id -> { price, currency, quantity, left, held, sold, endsAt, lot, ended }
  const lotTitle = (id) => {
    const el = document.querySelector(`[data-lot="${id}"]`);
    return el ? el.dataset.title : '';
  };

  function setState(state) {
    const badge = $('[data-test=room-state]');
    badge.dataset.state = state;
    badge.textContent = t(`console.stream_state.${state}`);
    const live = $('[data-test=go-live]');
    const end = $('[data-test=end-stream]');
    if (live) live.hidden = state !== 'scheduled';
    if (end) end.hidden = state !== 'live';
  }
  function setPinned(lotId) {
    for (const el of document.querySelectorAll('[data-test=room-lot]')) {
      $('[data-test=lot-pinned]', el).hidden = el.dataset.lot !== lotId;
    }
  }
  function feed(kind, text) {
    const li = document.createElement('li');
    li.dataset.kind = kind;
    li.textContent = text;
    const list = $('[data-test=room-feed]');
    list.prepend(li);
    while (list.children.length > 50) list.lastChild.remove();
  }

  function offerFrom(o) {
    return {
      price: o.price_minor, currency: o.currency, quantity: o.quantity, left: o.units_left ?? o.quantity,
      held: 0, sold: 0, endsAt: o.ends_at, lot: o.lot_id, ended: null,
    };
  }

  function snapshot(s) {
    clock(s.server_time);
    setState(s.state);
    setPinned(s.pinned_lot && s.pinned_lot.id);
    for (const o of s.offers || []) {
      const had = offers.get(o.id);
      offers.set(o.id, { ...offerFrom(o), held: had ? had.held : 0, sold: had ? had.sold : 0 });
    }
    render();
  }

  function stats(s) {
    const o = offers.get(s.offer_id);
    if (!o) return;
    Object.assign(o, { quantity: s.quantity, left: s.units_left, held: s.held, sold: s.sold });
  }

  function event(e) {
    clock(e.server_time);
    switch (e.type) {
      case 'stream.status': setState(e.state); break;
      case 'lot.pinned': setPinned(e.lot.id); break;
      case 'lot.unpinned': setPinned(null); break;
      case 'offer.started':
        offers.set(e.offer_id, offerFrom({ ...e, id: e.offer_id }));
        break;
      case 'offer.stock': {
        const o = offers.get(e.offer_id);
        if (o) o.left = e.units_left;
        break;
      }
      case 'offer.updated': {
        const o = offers.get(e.offer_id);
        if (o) Object.assign(o, { quantity: e.quantity, left: e.units_left, endsAt: e.ends_at });
        break;
      }
      case 'offer.ended': {
        const o = offers.get(e.offer_id);
        if (o) {
          o.ended = e.reason;
          setTimeout(() => { offers.delete(e.offer_id); render(); }, 15000);
        }
        break;
      }
      case 'purchase':
        feed('purchase', t('console.room.bought', { quantity: e.quantity, lot: lotTitle(e.lot_id) }));
        break;
      case 'viewers': $('[data-test=room-viewers]').textContent = String(e.count); break;
      case 'message': feed('note', e.text); break;
      default: return;
    }
    render();
  }

  // ----- rendering -------------------------------------------------------------
  const countdown = (ms) => {
    const s = Math.max(0, Math.ceil(ms / 1000));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
  };
  function render() {
    const box = $('[data-test=room-offers]');
    const cards = new Map([...box.children].map((c) => [c.dataset.offer, c]));
    for (const [id, o] of offers) {
      let card = cards.get(id);
      if (!card) {
        card = $('#room-offer').content.firstElementChild.cloneNode(true);
        card.dataset.offer = id;
        card.dataset.lot = o.lot;
        wire(card, id);
        box.append(card);
      }
      cards.delete(id);
      $('[data-test=offer-price]', card).textContent = `${lotTitle(o.lot)} · ${money(o.price, o.currency)}`;
      $('[data-test=offer-left]', card).textContent = `${o.left} / ${o.quantity}`;
      $('[data-test=offer-held]', card).textContent = String(o.held);
      $('[data-test=offer-sold]', card).textContent = String(o.sold);
      $('[data-test=offer-revenue]', card).textContent = money(o.sold * o.price, o.currency);
      if (o.ended) {
        card.dataset.ended = o.ended;
        for (const b of card.querySelectorAll('button')) b.disabled = true;
      }
    }
    for (const stale of cards.values()) stale.remove();
    $('[data-test=no-offers]').hidden = offers.size > 0;
    tick();
  }
  function tick() {
    for (const card of $('[data-test=room-offers]').children) {
      const o = offers.get(card.dataset.offer);
      if (o) $('[data-test=offer-countdown]', card).textContent = o.ended ? t('console.room.ended') : countdown(o.endsAt - serverNow());
    }
  }
  setInterval(tick, 250);

  // ----- actions -------------------------------------------------------------
  function wire(card, id) {
    if (!canWrite) return;
    $('[data-action=add-stock]', card).addEventListener('click', (ev) => act(ev.currentTarget, async () => {
      const o = offers.get(id);
      await api('PATCH', `/v1/offers/${id}`, { quantity: o.quantity + 10 });
    }));
    $('[data-action=extend]', card).addEventListener('click', (ev) => act(ev.currentTarget,
      () => api('PATCH', `/v1/offers/${id}`, { extend_seconds: 60 })));
    $('[data-action=end]', card).addEventListener('click', (ev) => act(ev.currentTarget,
      () => api('POST', `/v1/offers/${id}/end`, {})));
  }
  if (canWrite) {
    const goLive = $('[data-test=go-live]');
    goLive.addEventListener('click', () => act(goLive, () => api('POST', `/v1/streams/${streamId}/live`)));
    const end = $('[data-test=end-stream]');
    end.addEventListener('click', () => act(end, () => api('POST', `/v1/streams/${streamId}/end`)));
    for (const lot of document.querySelectorAll('[data-test=room-lot]')) {
      const id = lot.dataset.lot;
      const pin = $('[data-action=pin]', lot);
      pin.addEventListener('click', () => act(pin, () => api('POST', `/v1/lots/${id}/pin`)));
      const form = $('[data-test=launch-form]', lot);
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        act($('[data-test=launch]', form), async () => {
          const f = form.elements;
          const currency = f.currency.value.trim().toUpperCase();
          const body = {
            price_minor: Math.round(Number(f.price.value) * 10 ** digits(currency)),
            currency,
            quantity: Number(f.quantity.value),
            duration_seconds: Number(f.duration_seconds.value),
          };
          if (f.per_buyer_limit.value) body.per_buyer_limit = Number(f.per_buyer_limit.value);
          const made = await api('POST', `/v1/lots/${id}/offers`, body);
          await api('POST', `/v1/offers/${made.id}/start`);
        });
      });
    }
    const addLot = $('[data-test=add-lot]');
    addLot.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act($('button', addLot), async () => {
        await api('POST', `/v1/streams/${streamId}/lots`, { title: addLot.elements.title.value.trim() });
        location.reload();
      });
    });
    const note = $('[data-test=note-form]');
    note.addEventListener('submit', (ev) => {
      ev.preventDefault();
      act($('button', note), async () => {
        await api('POST', `/v1/streams/${streamId}/messages`, { text: note.elements.text.value.trim() });
        note.reset();
      });
    });
  }

  // ----- the connection ------------------------------------------------------
  const streamChannel = `stream:${streamId}`;
  const sellerChannel = `seller#${streamId}`;
  const link = (key, state) => {
    const el = $('[data-test=room-link]');
    el.dataset.state = state;
    el.textContent = t(key);
  };
  const live = new window.HaulRealtime({
    token: async () => token,
    channels: () => [streamChannel, sellerChannel],
    onSnapshot: (ch, data) => {
      if (ch === streamChannel) snapshot(data);
      else for (const s of data.offers || []) stats(s);
      render();
    },
    onPublication: (ch, data) => {
      if (ch === streamChannel) event(data);
      else if (data.type === 'offer.stats') { stats(data); render(); }
    },
    onStatus: (state) => link(state === 'live' ? 'console.room.live_link' : 'console.room.reconnecting', state),
    // An expired token: the page brings a fresh one.
    onRefused: (e) => { if (e.code === 109) location.reload(); },
  });
  live.start();
})();
