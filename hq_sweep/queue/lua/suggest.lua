-- suggest.lua: the controller answers define-by-run suggests, a batch at a time: for each,
-- if the asking attempt still owns its running trial, record what the study sampled (the
-- trial's whole params and distributions, as the controller's study holds them: it is their
-- one writer) and hand the answer to that attempt; otherwise hand it a stale answer.
-- KEYS     none (the keys are found by number, single-node Redis)
-- ARGV[1]  key prefix (hqs:s:{id}) — per entry it touches hqs:s:{id}:t:{num} (read: state,
--          attempt; written: params, distributions) and hqs:s:{id}:sug:{num}:{attempt}
--          (LIST: RPUSH the answer, PEXPIRE)
-- ARGV[2]  answer list lifetime (ms)
-- ARGV[3]  JSON, one entry per answer, every item a string:
--          [[number, attempt, params JSON or '', distributions JSON or '', answer JSON,
--            stale answer JSON], ...]
--          params/distributions are '' when nothing is to be recorded (the study refused the
--          distribution); they are written as the exact text given.
-- Returns one entry per answer: 1 recorded and answered, 0 stale (the stale answer was sent).
local replies = {}
for _, entry in ipairs(cjson.decode(ARGV[3])) do
  local number, attempt, params, dists = entry[1], entry[2], entry[3], entry[4]
  local key = ARGV[1] .. ':t:' .. number
  local state = redis.call('HMGET', key, 'state', 'attempt')
  local list = ARGV[1] .. ':sug:' .. number .. ':' .. attempt
  if state[1] == 'running' and state[2] == attempt then
    if params ~= '' then
      redis.call('HSET', key, 'params', params, 'distributions', dists)
    end
    redis.call('RPUSH', list, entry[5])
    replies[#replies + 1] = 1
  else
    redis.call('RPUSH', list, entry[6])
    replies[#replies + 1] = 0
  end
  redis.call('PEXPIRE', list, tonumber(ARGV[2]))
end
return replies
