-- create_sweep.lua: register a new sweep under an id nobody holds yet.
-- KEYS[1]  hqs:s:{id}        HASH  sweep meta (spec, spec_hash, state, created, next)
-- KEYS[2]  hqs:sweeps        ZSET  sweep id -> created (unix seconds)
-- ARGV[1]  sweep id   ARGV[2] spec JSON   ARGV[3] spec hash   ARGV[4] created (unix seconds)
-- ARGV[5]  base dir (where relative paths in the spec resolve)
-- Returns 1 when created, 0 when the id was already taken (the caller picks another).
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'spec', ARGV[2], 'spec_hash', ARGV[3], 'state', 'running',
           'created', ARGV[4], 'next', 0, 'base_dir', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return 1
