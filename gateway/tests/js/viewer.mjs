// A viewer built only on the official Centrifugo SDK (centrifuge-js), driven
// by gateway/tests/realtime.rs. It prints one JSON line per thing it sees.
//
//   node viewer.mjs WS_URL TOKEN STREAM_ID OFFER_ID
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

const [url, token, streamId, offerId] = process.argv.slice(2);
const out = (kind, value) => console.log(JSON.stringify({ kind, value }));
const client = new Centrifuge(url, { websocket: WebSocket, token: token || undefined });

client.on('connected', (ctx) => out('connected', { client: ctx.client, data: ctx.data }));
client.on('disconnected', (ctx) => out('disconnected', { code: ctx.code, reason: ctx.reason }));
client.on('error', (ctx) => out('client_error', String(ctx.error && ctx.error.message)));

const sub = client.newSubscription(`stream:${streamId}`);
sub.on('publication', (ctx) => out('publication', { data: ctx.data, offset: ctx.offset }));
sub.on('subscribed', async (ctx) => {
  out('subscribed', { data: ctx.data, recoverable: ctx.recoverable, positioned: ctx.positioned,
    streamPosition: ctx.streamPosition });
  try {
    const r = await client.rpc('reserve', { offer_id: offerId, quantity: 1, request_id: 'sdk-1' });
    out('rpc', r.data);
  } catch (e) {
    out('rpc_error', { code: e.code, message: e.message });
  }
  try {
    await client.rpc('reserve', { offer_id: offerId, quantity: 99, request_id: 'sdk-2' });
  } catch (e) {
    out('rpc_error', { code: e.code, message: e.message });
  }
  try {
    await client.rpc('no_such_method', {});
  } catch (e) {
    out('rpc_error', { code: e.code, message: e.message });
  }
  // Another viewer's personal channel is refused.
  const other = client.newSubscription('holds#somebody.else');
  other.on('error', (e) => out('sub_error', { code: e.error.code, message: e.error.message }));
  other.on('unsubscribed', (e) => out('unsubscribed', { code: e.code, reason: e.reason }));
  other.subscribe();
  out('ready', null);
});
sub.on('error', (ctx) => out('sub_error', { code: ctx.error.code, message: ctx.error.message }));
sub.subscribe();
client.connect();

// Bounded: the test reads what it needs, then this ends by itself.
setTimeout(() => { client.disconnect(); process.exit(0); }, 20000);
process.stdin.on('end', () => { client.disconnect(); process.exit(0); });
process.stdin.resume();
