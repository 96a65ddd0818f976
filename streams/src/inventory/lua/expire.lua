-- ARGV: hold, now, offer id. Releases the hold if it is held and due; cleans
-- the expiry queue of entries that no longer stand for a live hold.
local member = ARGV[3] .. '|' .. ARGV[1]
local rec = redis.call('HGET', KEYS[3], ARGV[1])
if not rec then
  redis.call('ZREM', KEYS[5], member)
  return {'skip'}
end
local buyer, q, exp, st = parse_hold(rec)
if st ~= 'h' then
  redis.call('ZREM', KEYS[5], member)
  return {'skip'}
end
if exp > tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[5], n(exp), member)
  return {'skip'}
end
give_back(ARGV[1], buyer, q, exp, 'x', ARGV[3])
local lq, held, sold = levels()
return {'expired', ARGV[1], pack_hold(buyer, q, exp, 'x'), lq, held, sold}
