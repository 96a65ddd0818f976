-- ARGV: buyer, qty, ttl, now, request id, new hold id, offer id, group ('' for
-- none), units the group may hold at once
local o = redis.call('HMGET', KEYS[1], 'q', 'held', 'sold', 'limit', 'starts', 'ends', 'closed')
if not o[1] then return {'not_loaded'} end
local buyer, qty, ttl, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local rkey = buyer .. '|' .. ARGV[5]
local existing = redis.call('HGET', KEYS[4], rkey)
if existing then
  local q, held, sold = levels()
  return {'replay', existing, redis.call('HGET', KEYS[3], existing), q, held, sold}
end
if o[7] or now >= tonumber(o[6]) then return {'ended'} end
if now < tonumber(o[5]) then return {'not_started'} end
local left = tonumber(o[1]) - tonumber(o[2]) - tonumber(o[3])
if left <= 0 then return {'sold_out'} end
local mine = tonumber(redis.call('HGET', KEYS[2], buyer) or '0')
local limit = tonumber(o[4])
if mine + qty > limit then return {'over_limit', n(math.max(limit - mine, 0))} end
local group = ARGV[8]
if group ~= '' then
  local cap = tonumber(ARGV[9])
  local theirs = tonumber(redis.call('HGET', KEYS[2], '@' .. group) or '0')
  if theirs + qty > cap then return {'over_group', n(math.max(cap - theirs, 0))} end
end
if qty > left then return {'not_enough', n(left)} end
local exp = now + ttl
local hold = ARGV[6]
redis.call('HINCRBY', KEYS[1], 'held', qty)
redis.call('HINCRBY', KEYS[2], buyer, qty)
local rec = pack_hold(buyer, qty, exp, 'h')
redis.call('HSET', KEYS[3], hold, rec)
redis.call('HSET', KEYS[4], rkey, hold)
if group ~= '' then
  redis.call('HINCRBY', KEYS[2], '@' .. group, qty)
  redis.call('HSET', KEYS[3], '@' .. hold, group)
end
redis.call('ZADD', KEYS[5], n(exp), ARGV[7] .. '|' .. hold)
local q, held, sold = levels()
return {'held', hold, rec, q, held, sold}
