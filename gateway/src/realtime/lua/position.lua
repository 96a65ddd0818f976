-- A channel's position, and what a client missed since an offset.
-- KEYS[1] meta hash, KEYS[2] history stream
-- ARGV: epoch to use if the channel has none, meta ttl (ms), history ttl (ms),
--       client's epoch ('' when not recovering), client's offset
-- Returns { epoch, top, covered (0/1), offset1, data1, offset2, data2, ... }
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 's', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local top = tonumber(redis.call('HGET', KEYS[1], 's') or '0')
local out = { epoch, tostring(top), '0' }
if ARGV[4] == '' or ARGV[4] ~= epoch then
  return out
end
local since = tonumber(ARGV[5])
if since == nil or since > top then
  return out
end
if since == top then
  out[3] = '1'
  return out
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('XTRIM', KEYS[2], 'MINID', now - tonumber(ARGV[3]))
local want = top - since
local entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', want)
if #entries ~= want then
  return out
end
-- Newest first; the oldest must be the one right after the client's offset.
local oldest = entries[#entries][2]
local first
for i = 1, #oldest, 2 do
  if oldest[i] == 'o' then first = tonumber(oldest[i + 1]) end
end
if first ~= since + 1 then
  return out
end
out[3] = '1'
for i = #entries, 1, -1 do
  local f = entries[i][2]
  local o, d
  for j = 1, #f, 2 do
    if f[j] == 'o' then o = f[j + 1] elseif f[j] == 'd' then d = f[j + 1] end
  end
  table.insert(out, o)
  table.insert(out, d)
end
return out
