-- ARGV: quantity, limit, ends; '' leaves that one as it is.
local o = redis.call('HMGET', KEYS[1], 'q', 'held', 'sold', 'closed')
if not o[1] then return {'not_loaded'} end
if o[4] then return {'closed'} end
local taken = tonumber(o[2]) + tonumber(o[3])
if ARGV[1] ~= '' and tonumber(ARGV[1]) < taken then return {'below_taken', n(taken)} end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'q', ARGV[1]) end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'limit', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'ends', ARGV[3]) end
local q, held, sold = levels()
return {'ok', q, held, sold}
