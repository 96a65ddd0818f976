-- ARGV: now, retain ms
if redis.call('EXISTS', KEYS[1]) == 0 then return '0' end
if redis.call('HEXISTS', KEYS[1], 'closed') == 1 then return '0' end
local last = tonumber(redis.call('HGET', KEYS[1], 'ends'))
local recs = redis.call('HVALS', KEYS[3])
for i = 1, #recs do
  local _, _, exp, st = parse_hold(recs[i])
  if st == 'h' and exp > last then last = exp end
end
local forget_at = last + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'closed', '1', 'forget_at', n(forget_at), 'retain', ARGV[2])
keep_until(forget_at, tonumber(ARGV[1]))
return '1'
