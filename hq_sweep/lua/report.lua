-- report.lua: record intermediate values, a batch at a time, and tell the worker which of
-- its trials the controller has decided to prune. Decisions are read, never waited for.
-- KEYS[1]  hqs:s:{id}:reports    LIST  report JSON for the controller's pruner (when fed)
-- ARGV[1]  key prefix (hqs:s:{id}) — per trial it touches hqs:s:{id}:t:{num} (read: state,
--          attempt, prune) and hqs:s:{id}:iv:{num} (HASH step -> value), found by number,
--          single-node Redis
-- ARGV[2]  '1' when the sweep prunes (the controller reads KEYS[1]), else '0'
-- Then per trial: number, attempt, k, then k triples: step, value (exact decimal text),
-- report JSON.
-- Returns one verdict per trial: -1 stale attempt (not running, or superseded), 1 prune,
-- 0 go on.
local verdicts = {}
local i = 3
while i <= #ARGV do
  local number, attempt, k = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local first = i + 3
  i = first + 3 * k
  local record = ARGV[1] .. ':t:' .. number
  local state = redis.call('HMGET', record, 'state', 'attempt', 'prune')
  if state[1] ~= 'running' or state[2] ~= attempt then
    verdicts[#verdicts + 1] = -1
  else
    local fields, feed = {}, {}
    for j = first, i - 1, 3 do
      fields[#fields + 1] = ARGV[j]
      fields[#fields + 1] = ARGV[j + 1]
      feed[#feed + 1] = ARGV[j + 2]
    end
    redis.call('HSET', ARGV[1] .. ':iv:' .. number, unpack(fields))
    if ARGV[2] == '1' then
      redis.call('RPUSH', KEYS[1], unpack(feed))
    end
    verdicts[#verdicts + 1] = (state[3] == '1') and 1 or 0
  end
end
return verdicts
