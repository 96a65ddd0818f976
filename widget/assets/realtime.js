// A client of Haul's realtime gateway, shared by Haul's own pages (the
// watch page, the console's live room): the Centrifugo client protocol
// (JSON) over /connection/websocket — connect with a token, subscribe with
// recovery, ping/pong, RPC, reconnects with backoff, recovering what each
// channel missed.
//
//   const live = new HaulRealtime({
//     token: async () => '…',                 // the connection token
//     channels: (connectData) => ['stream:…'], // subscribed after each connect
//     onSnapshot(channel, data) {},            // a fresh subscribe's state
//     onPublication(channel, data) {},         // each publication, in order, once
//     onConnected(connectData) {},             // after connect, before subscribing
//     onStatus(state) {},                      // 'live' | 'reconnecting' | 'failed'
//     onClosed(event) { return true; },        // a "do not come back" close: true retries
//     onRefused(error) {},                     // the connect was refused
//   });
//   live.start(); live.rpc('reserve', {...});
'use strict';

(() => {
  class HaulRealtime {
    constructor(opts) {
      this.opts = opts;
      this.url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/connection/websocket`;
      this.nextId = 1;
      this.pending = new Map();
      this.positions = new Map(); // channel -> { epoch, offset }
      this.attempt = 0;
      this.ws = null;
      this.connected = false;
    }

    send(cmd) {
      const id = this.nextId++;
      this.ws.send(JSON.stringify({ id, ...cmd }));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => { this.pending.delete(id); reject(new Error('timeout')); }, 10000);
        this.pending.set(id, { resolve, reject, timer });
      });
    }

    rpc(method, data) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.connected) {
        return Promise.reject(new Error('not connected'));
      }
      return this.send({ rpc: { method, data } }).then((r) => r.rpc.data);
    }

    async subscribe(channel) {
      const sub = { channel };
      const at = this.positions.get(channel);
      if (at) Object.assign(sub, { recover: true, ...at });
      const r = (await this.send({ subscribe: sub })).subscribe;
      if (r.was_recovering && r.recovered) {
        for (const p of r.publications || []) this.publication(channel, p);
      } else {
        this.positions.delete(channel);
        if (this.opts.onSnapshot) this.opts.onSnapshot(channel, r.data || {});
      }
      this.positions.set(channel, { epoch: r.epoch, offset: r.offset });
    }

    async start() {
      let token;
      try {
        token = await this.opts.token();
        this.bearer = token;
      } catch {
        this.retry();
        return;
      }
      this.connected = false;
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.onopen = async () => {
        try {
          const c = (await this.send({ connect: { token, name: 'haul-page' } })).connect;
          this.connected = true;
          const data = (c && c.data) || {};
          if (this.opts.onConnected) this.opts.onConnected(data);
          for (const channel of this.opts.channels(data)) await this.subscribe(channel);
          this.attempt = 0;
          this.status('live');
        } catch (e) {
          if (this.opts.onRefused) this.opts.onRefused(e);
          ws.close();
        }
      };
      ws.onmessage = (m) => {
        for (const line of String(m.data).split('\n')) {
          if (!line.trim()) continue;
          let f;
          try { f = JSON.parse(line); } catch { continue; }
          this.frame(f);
        }
      };
      ws.onclose = (ev) => {
        this.connected = false;
        for (const { reject, timer } of this.pending.values()) { clearTimeout(timer); reject(new Error('connection lost')); }
        this.pending.clear();
        // 3500-3999 and 4500-4999: the server says not to come back, unless
        // the page knows better (a fresh token).
        const final = (ev.code >= 3500 && ev.code < 4000) || (ev.code >= 4500 && ev.code < 5000);
        if (final && !(this.opts.onClosed && this.opts.onClosed(ev))) {
          this.status('failed', ev.reason || String(ev.code));
          return;
        }
        this.retry();
      };
    }

    status(state, detail) {
      if (this.opts.onStatus) this.opts.onStatus(state, detail);
    }

    retry() {
      this.attempt += 1;
      const base = Math.min(10000, 300 * 2 ** Math.min(this.attempt, 6));
      const wait = base / 2 + Math.random() * base / 2;
      this.status('reconnecting');
      setTimeout(() => this.start(), wait);
    }

    frame(f) {
      if (f.id) {
        const p = this.pending.get(f.id);
        if (!p) return;
        this.pending.delete(f.id);
        clearTimeout(p.timer);
        if (f.error) {
          const err = new Error(f.error.message);
          err.code = f.error.code;
          p.reject(err);
        } else {
          p.resolve(f);
        }
        return;
      }
      if (f.push) {
        if (f.push.pub) this.publication(f.push.channel, f.push.pub);
        return;
      }
      if (Object.keys(f).length === 0 && this.ws.readyState === WebSocket.OPEN) this.ws.send('{}'); // pong
    }

    publication(channel, p) {
      const at = this.positions.get(channel);
      if (at && typeof p.offset === 'number') {
        if (p.offset <= at.offset) return; // already seen
        at.offset = p.offset;
      }
      this.opts.onPublication(channel, p.data || {});
    }
  }

  window.HaulRealtime = HaulRealtime;
})();
