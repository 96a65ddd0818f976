-- ARGV: hold, buyer who must own it ('' for anyone), offer id
local rec = redis.call('HGET', KEYS[3], ARGV[1])
if not rec then return {'not_found'} end
local buyer, q, exp, st = parse_hold(rec)
if ARGV[2] ~= '' and ARGV[2] ~= buyer then return {'not_owner'} end
if st == 'c' then return {'not_active', 'c'} end
if st == 'h' then
  give_back(ARGV[1], buyer, q, exp, 'r', ARGV[3])
  rec = pack_hold(buyer, q, exp, 'r')
end
local lq, held, sold = levels()
return {'ok', ARGV[1], rec, lq, held, sold}
