-- cancel.lua: withdraw trials that no worker has started (the sweep reached its target).
-- KEYS[1]     hqs:s:{id}:counts   HASH  state -> count (queued -1, cancelled +1)
-- KEYS[2..n]  hqs:s:{id}:t:{num}  HASH  trial records (state queued -> cancelled)
-- ARGV[1..n-1] the trials' numbers, in KEYS order
-- Returns the numbers of the trials cancelled; running or finished ones are left alone.
local cancelled = {}
for i = 2, #KEYS do
  if redis.call('HGET', KEYS[i], 'state') == 'queued' then
    redis.call('HSET', KEYS[i], 'state', 'cancelled')
    count(KEYS[1], 'queued', -1)
    count(KEYS[1], 'cancelled', 1)
    cancelled[#cancelled + 1] = tonumber(ARGV[i - 1])
  end
end
return cancelled
