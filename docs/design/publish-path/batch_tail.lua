
-- Prototype (measurement only): N events per call. KEYS: epoch, seq, previous, last, stream.
-- ARGV: channel, length, ttl, last ttl, seen epoch, seen sequence, then head/tail pairs.
local n = (#ARGV - 6) / 2
local epoch = redis.call('GET', KEYS[1])
local hadCounter = redis.call('EXISTS', KEYS[2]) == 1
local top = redis.call('INCRBY', KEYS[2], n)
if not epoch then
  epoch = newEpoch(nil, '0', '0')
  top = redis.call('INCRBY', KEYS[2], n)
end
local previous = redis.call('GET', KEYS[4]) or ''
local ids, receivers = {}, {}
for i = 1, n do
  local id = epoch .. '-' .. digits(top - n + i)
  local payload = ARGV[5 + 2 * i] .. ', "id": "' .. id .. '"' .. ARGV[6 + 2 * i]
  redis.call('XADD', KEYS[5], 'MAXLEN', MAXLEN_MODE ARGV[2], id, 'p', payload, 'prev', previous)
  receivers[i] = redis.call('PUBLISH', ARGV[1], payload)
  ids[i] = id
  previous = id
end
redis.call('EXPIRE', KEYS[5], ARGV[3])
redis.call('SET', KEYS[4], previous, 'EX', ARGV[4])
return {ids, receivers}
