-- Records one node's viewer count of a stream and sums the fresh counts of
-- every node; says whether to announce the sum: it changed since the last
-- announcement, which was at least the interval ago (whichever node made
-- it). Nodes report every interval, so a held-back change goes out next time.
-- KEYS[1] viewers hash (node -> "count:reported_at", '_last' -> last sum,
--         '_at' -> when it was announced)
-- ARGV: node id, count, staleness (ms), interval (ms)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stale = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. now)
local all = redis.call('HGETALL', KEYS[1])
local sum = 0
for i = 1, #all, 2 do
  if all[i] ~= '_last' and all[i] ~= '_at' then
    local c, at = string.match(all[i + 1], '^(%d+):(%d+)$')
    if c and now - tonumber(at) <= stale then
      sum = sum + tonumber(c)
    else
      redis.call('HDEL', KEYS[1], all[i])
    end
  end
end
redis.call('PEXPIRE', KEYS[1], stale * 4)
-- Returns { sum, announce (0/1), held back by the interval (0/1) }.
if redis.call('HGET', KEYS[1], '_last') == tostring(sum) then
  return { sum, 0, 0 }
end
local at = tonumber(redis.call('HGET', KEYS[1], '_at') or '0')
if now - at < tonumber(ARGV[4]) then
  return { sum, 0, 1 }
end
redis.call('HSET', KEYS[1], '_last', sum, '_at', now)
return { sum, 1, 0 }
