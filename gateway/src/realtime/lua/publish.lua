-- Publishes one message on a channel: the next offset within the channel's
-- epoch, kept in the channel's history stream, then sent on the bus.
-- KEYS[1] meta hash (e = epoch, s = top offset), KEYS[2] history stream
-- ARGV: channel, data, epoch to use if the channel has none, history size,
--       history ttl (ms), meta ttl (ms), bus channel
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', ARGV[3], 's', 0)
end
local top = redis.call('HINCRBY', KEYS[1], 's', 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[5])
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], '*', 'o', top, 'd', ARGV[2])
redis.call('XTRIM', KEYS[2], 'MINID', now - ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PUBLISH', ARGV[7], ARGV[1] .. '\n' .. top .. '\n' .. ARGV[2])
return top
