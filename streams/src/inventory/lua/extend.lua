-- ARGV: hold, ttl, now, offer id
local rec = redis.call('HGET', KEYS[3], ARGV[1])
if not rec then return {'not_found'} end
local buyer, q, exp, st = parse_hold(rec)
local now = tonumber(ARGV[3])
if st ~= 'h' then return {'not_active', st} end
if now >= exp then return {'not_active', 'x'} end
local new_exp = math.max(exp, now + tonumber(ARGV[2]))
rec = pack_hold(buyer, q, new_exp, 'h')
redis.call('HSET', KEYS[3], ARGV[1], rec)
redis.call('ZADD', KEYS[5], n(new_exp), ARGV[4] .. '|' .. ARGV[1])
local c = redis.call('HMGET', KEYS[1], 'closed', 'forget_at', 'retain')
if c[1] then
  local forget_at = math.max(tonumber(c[2]), new_exp + tonumber(c[3]))
  redis.call('HSET', KEYS[1], 'forget_at', n(forget_at))
  keep_until(forget_at, now)
end
return {'ok', ARGV[1], rec}
