-- report.lua: record intermediate values, a batch at a time, and hand the worker the latest
-- decision flagged on each of its trials (the controller's, or a cancel). Decisions are read,
-- never waited for.
-- KEYS[1]  hqs:s:{id}:reports    LIST  report JSON for the controller's pruner (when fed)
-- ARGV[1]  key prefix (hqs:s:{id}) — per trial it touches hqs:s:{id}:t:{num} (read: state,
--          attempt, decision) and hqs:s:{id}:iv:{num} (HASH step -> value), found by number,
--          single-node Redis
-- ARGV[2]  '1' when the sweep prunes (the controller reads KEYS[1]), else '0'
-- ARGV[3]  JSON, one entry per trial, every item a string:
--          [[number, attempt, [step, value, step, value, ...], [report JSON, ...]], ...]
--          values are exact decimal text; the report JSON list is empty unless ARGV[2] is '1'.
--          One argument rather than three per report: argument handling, not Redis, was
--          most of what a report cost.
-- ARGV[4]  the cancel decision (Decision JSON), answered instead of any other for a trial
--          flagged `cancel` (stop_sweep.lua: `hq-sweep cancel`; the field holds the reason)
-- Returns one entry per trial: -1 stale attempt (not running, or superseded), else the
-- trial's flagged decision (Decision JSON), or '' when there is none.
local verdicts = {}
for _, entry in ipairs(cjson.decode(ARGV[3])) do
  local number, attempt, fields, feed = entry[1], entry[2], entry[3], entry[4]
  local state = redis.call('HMGET', ARGV[1] .. ':t:' .. number, 'state', 'attempt', 'decision',
                           'cancel')
  if state[1] ~= 'running' or state[2] ~= attempt then
    verdicts[#verdicts + 1] = -1
  else
    redis.call('HSET', ARGV[1] .. ':iv:' .. number, unpack(fields))
    if ARGV[2] == '1' then
      redis.call('RPUSH', KEYS[1], unpack(feed))
    end
    if state[4] then
      verdicts[#verdicts + 1] = ARGV[4]
    else
      verdicts[#verdicts + 1] = state[3] or ''
    end
  end
end
return verdicts
