-- ARGV: q, limit, starts, ends, then buyer, units pairs of units already sold.
if redis.call('EXISTS', KEYS[1]) == 1 then return '0' end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
local sold = 0
for i = 5, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1])
  sold = sold + tonumber(ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'q', ARGV[1], 'limit', ARGV[2], 'starts', ARGV[3], 'ends', ARGV[4],
  'held', '0', 'sold', n(sold))
return '1'
