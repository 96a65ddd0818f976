-- Records one node's viewer count of a stream and sums the fresh counts of
-- every node; says whether the sum changed since it was last announced, so
-- one node announces each change.
-- KEYS[1] viewers hash (node -> "count:reported_at", '_last' -> last sum)
-- ARGV: node id, count, staleness (ms)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stale = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. now)
local all = redis.call('HGETALL', KEYS[1])
local sum = 0
for i = 1, #all, 2 do
  if all[i] ~= '_last' then
    local c, at = string.match(all[i + 1], '^(%d+):(%d+)$')
    if c and now - tonumber(at) <= stale then
      sum = sum + tonumber(c)
    else
      redis.call('HDEL', KEYS[1], all[i])
    end
  end
end
redis.call('PEXPIRE', KEYS[1], stale * 4)
if redis.call('HGET', KEYS[1], '_last') == tostring(sum) then
  return { sum, 0 }
end
redis.call('HSET', KEYS[1], '_last', sum)
return { sum, 1 }
