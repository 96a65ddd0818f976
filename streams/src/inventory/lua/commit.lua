-- ARGV: hold, now, offer id
local rec = redis.call('HGET', KEYS[3], ARGV[1])
if not rec then return {'not_found'} end
local buyer, q, exp, st = parse_hold(rec)
local fresh = '0'
if st == 'h' then
  if tonumber(ARGV[2]) >= exp then return {'not_active', 'x'} end
  ungroup(ARGV[1], q)
  redis.call('HINCRBY', KEYS[1], 'held', -q)
  redis.call('HINCRBY', KEYS[1], 'sold', q)
  rec = pack_hold(buyer, q, exp, 'c')
  redis.call('HSET', KEYS[3], ARGV[1], rec)
  redis.call('ZREM', KEYS[5], ARGV[3] .. '|' .. ARGV[1])
  fresh = '1'
elseif st ~= 'c' then
  return {'not_active', st}
end
local lq, held, sold = levels()
return {'ok', ARGV[1], rec, lq, held, sold, fresh}
