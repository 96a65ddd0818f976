-- Shared by every per-offer script. KEYS, always in this order:
--   1 offer hash   q, held, sold, limit, starts, ends [, closed, forget_at, retain]
--   2 buyers hash  buyer -> units held + sold; "@" .. group -> units held now
--   3 holds hash   hold id -> "buyer|qty|expires_at|status" (status h, c, r, x);
--                  "@" .. hold id -> its group, while a capped hold is held
--                  (buyer and hold ids never contain "@")
--   4 requests     "buyer|request id" -> hold id
--   5 expiry zset  "offer|hold" scored by expires_at (shared by all offers)
-- Times are milliseconds passed in by the caller; numbers go back as strings.
local function n(x) return string.format('%d', x) end

local function parse_hold(rec)
  local buyer, q, exp, st = string.match(rec, '^([^|]+)|(%d+)|(%-?%d+)|(%a)$')
  return buyer, tonumber(q), tonumber(exp), st
end

local function pack_hold(buyer, q, exp, st)
  return buyer .. '|' .. n(q) .. '|' .. n(exp) .. '|' .. st
end

local function levels()
  local v = redis.call('HMGET', KEYS[1], 'q', 'held', 'sold')
  return v[1] or '0', v[2] or '0', v[3] or '0'
end

-- A hold stops counting against its group (released, expired or sold).
local function ungroup(hold, q)
  local g = redis.call('HGET', KEYS[3], '@' .. hold)
  if not g then return end
  local left = redis.call('HINCRBY', KEYS[2], '@' .. g, -q)
  if left <= 0 then redis.call('HDEL', KEYS[2], '@' .. g) end
  redis.call('HDEL', KEYS[3], '@' .. hold)
end

-- Gives a held hold's units back and marks it with status st.
local function give_back(hold, buyer, q, exp, st, offer)
  ungroup(hold, q)
  redis.call('HINCRBY', KEYS[1], 'held', -q)
  local left = redis.call('HINCRBY', KEYS[2], buyer, -q)
  if left <= 0 then redis.call('HDEL', KEYS[2], buyer) end
  redis.call('HSET', KEYS[3], hold, pack_hold(buyer, q, exp, st))
  redis.call('ZREM', KEYS[5], offer .. '|' .. hold)
end

-- On a closed offer, keeps every key until forget_at (relative to now).
local function keep_until(forget_at, now)
  local ttl = math.max(forget_at - now, 1)
  for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], n(ttl)) end
end
