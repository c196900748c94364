-- enqueue.lua: write new trials' records and queue them, exactly once.
-- A controller that lost the reply (the server died) sends the same call again once the
-- server is back; the sweep's `next` counter says whether the first one was applied.
-- KEYS[1]     hqs:s:{id}:meta     HASH  field `next`: the number the next new trial gets
-- KEYS[2]     hqs:s:{id}:ready    LIST  trial numbers waiting for a worker (appended)
-- KEYS[3]     hqs:s:{id}:counts   HASH  state -> count (queued +n)
-- KEYS[4..n]  hqs:s:{id}:t:{num}  HASH  the new trials' records (written whole)
-- ARGV[1]     `next` before this call (absent counts as 0)
-- ARGV[2]     `next` after it
-- ARGV[3]     JSON [[number, {field: value, ...}], ...], in KEYS[4..n] order
-- Returns 1 applied, 0 applied before (a retry), -1 `next` holds something else (another
-- controller moved on): nothing is written then.
local current = redis.call('HGET', KEYS[1], 'next') or '0'
if current == ARGV[2] then
  return 0
end
if current ~= ARGV[1] then
  return -1
end
local trials = cjson.decode(ARGV[3])
for i, trial in ipairs(trials) do
  local fields = {}
  for name, value in pairs(trial[2]) do
    fields[#fields + 1] = name
    fields[#fields + 1] = value
  end
  redis.call('DEL', KEYS[i + 3])
  redis.call('HSET', KEYS[i + 3], unpack(fields))
  redis.call('RPUSH', KEYS[2], trial[1])
end
count(KEYS[3], 'queued', #trials)
redis.call('HSET', KEYS[1], 'next', ARGV[2])
return 1
