-- finish.lua: record how trial attempts ended, each at most once (fenced by attempt).
-- KEYS[1]     hqs:s:{id}:counts   HASH  state -> count (running -1, final state +1)
-- KEYS[2]     hqs:s:{id}:results  LIST  outcome JSON pushed for the controller to tell Optuna
-- KEYS[3]     hqs:s:{id}:leases   ZSET  trial number -> lease deadline (entry removed)
-- KEYS[4]     hqs:s:{id}:reasons  HASH  failure kind -> count (for `hq-sweep status`)
-- KEYS[5]     hqs:s:{id}:cost     HASH  running totals: trial_s, gpu_s (duration x gpus),
--                                       rss_peak_mb, gpu_mem_peak_mb (the largest of any trial)
-- KEYS[6..n]  hqs:s:{id}:t:{num}  HASH  trial records (every finishing field set, params and
--                                       distributions too when given; lease removed)
-- ARGV[1]  JSON, one entry per trial in KEYS order, every item a string except fields:
--          [[number, attempt, fields, outcome JSON, failure kind], ...]
--          fields: the record's finishing fields as one object of text values
--          (`TrialRecord.finish_fields`: state, ended_at, values, ...), each HSET as it is,
--          so a new field needs no change here; failure kind '' when there is none.
--          One argument rather than several per trial: argument handling was most of the cost.
-- A trial flagged `cancel` (by stop_sweep.lua: `hq-sweep cancel`) ends as cancelled, with the
-- flag's reason and no values, whatever the attempt reports: its result does not count.
-- Returns one flag per trial: 1 recorded, 0 rejected (not running, a stale attempt, or no
-- final state among the fields).
-- Totals kept as trials finish, so `hq-sweep status` shows them without reading every record.
local function add_cost(fields)
  local d = tonumber(fields.duration)
  if d then
    count_float(KEYS[5], 'trial_s', d)
    local g = tonumber(fields.gpus)
    if g and g > 0 then count_float(KEYS[5], 'gpu_s', d * g) end
  end
  for _, name in ipairs({'rss_peak_mb', 'gpu_mem_peak_mb'}) do
    local v = tonumber(fields[name])
    if v and v > (tonumber(redis.call('HGET', KEYS[5], name)) or 0) then
      redis.call('HSET', KEYS[5], name, fields[name])
    end
  end
end

local recorded = {}
for i, entry in ipairs(cjson.decode(ARGV[1])) do
  local key = KEYS[i + 5]
  local number, attempt, fields, outcome, kind = entry[1], entry[2], entry[3], entry[4], entry[5]
  local state = fields.state
  local ok = 0
  if (state == 'complete' or state == 'pruned' or state == 'failed' or state == 'cancelled')
     and redis.call('HGET', key, 'state') == 'running'
     and redis.call('HGET', key, 'attempt') == attempt then
    local cancel = redis.call('HGET', key, 'cancel')
    if cancel then
      if state ~= 'cancelled' or not fields.reason then fields.reason = cancel end
      state, kind = 'cancelled', ''
      fields.state, fields.values = state, nil
      local told = cjson.decode(outcome)
      told.s, told.v, told.r = state, cjson.null, fields.reason
      outcome = cjson.encode(told)
    end
    local flat = {}
    for field, value in pairs(fields) do
      flat[#flat + 1] = field
      flat[#flat + 1] = value
    end
    redis.call('HSET', key, unpack(flat))
    redis.call('HDEL', key, 'lease')
    redis.call('ZREM', KEYS[3], number)
    count(KEYS[1], 'running', -1)
    count(KEYS[1], state, 1)
    if kind ~= '' then count(KEYS[4], kind, 1) end
    redis.call('RPUSH', KEYS[2], outcome)
    add_cost(fields)
    ok = 1
  end
  recorded[#recorded + 1] = ok
end
return recorded
