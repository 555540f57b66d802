package ratelimit

import "github.com/redis/go-redis/v9"

// All scripts read the clock with TIME (microseconds since the epoch, exact in
// a Lua double until the year 2255), so pods never compare their own clocks.
// Every key a script touches is passed in KEYS and shares the pool's hash tag.
// redis.Script runs EVALSHA and falls back to EVAL on NOSCRIPT, which also
// re-caches the script, so a SCRIPT FLUSH or a restarted Redis costs one extra
// round trip.

// bucketPrelude reads the pool's bucket: one 64-byte string of eight
// little-endian doubles (capacities r, i, o; levels r, i, o; last change time
// in µs, 0 = never; change sequence number), see bucketState in bucket.go. A
// packed string instead of a hash keeps the hot path to the three cheapest
// calls (TIME, GET, SET) with no decimal formatting: each redis.call and each
// number printed costs about as much as the whole bucket arithmetic. Levels
// may be negative (debt from settled overage) and refill towards the capacity
// at capacity/60 per second.
const bucketPrelude = `
local function now_us()
  local t = redis.call('TIME')
  return t[1] * 1000000 + t[2]
end
local function read_bucket(key, now)
  local s = redis.call('GET', key)
  if not s then return nil end
  local c1, c2, c3, l1, l2, l3, t0, seq = struct.unpack('<dddddddd', s)
  if t0 > 0 and now > t0 then
    local dt = (now - t0) / 60000000
    l1 = l1 + dt * c1
    l2 = l2 + dt * c2
    l3 = l3 + dt * c3
    if l1 > c1 then l1 = c1 end
    if l2 > c2 then l2 = c2 end
    if l3 > c3 then l3 = c3 end
  end
  return c1, c2, c3, l1, l2, l3, seq
end
local function write_bucket(key, c1, c2, c3, l1, l2, l3, now, seq)
  redis.call('SET', key, struct.pack('<dddddddd', c1, c2, c3, l1, l2, l3, now, seq))
end
`

// reserveScript takes a cost from all three buckets or from none. It is the
// hot path, so it inlines what bucketPrelude does instead of defining
// closures on every call.
//
// KEYS: bucket. ARGV: requests, input, output.
// Reply when admitted: {1, now, seq, level1..3} (levels after the take);
// refused: {0, now, seq, level1..3, wait1..3} with waits in µs, ceiled, and
// status -1 instead of 0 when the cost exceeds a capacity (whose wait is -1);
// not configured: {-2, now}. Levels are truncated to integers by Redis.
const reserveScriptSource = `
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local s = redis.call('GET', KEYS[1])
if not s then return {-2, now} end
local c1, c2, c3, l1, l2, l3, t0, seq = struct.unpack('<dddddddd', s)
if t0 > 0 and now > t0 then
  local dt = (now - t0) / 60000000
  l1 = l1 + dt * c1
  l2 = l2 + dt * c2
  l3 = l3 + dt * c3
  if l1 > c1 then l1 = c1 end
  if l2 > c2 then l2 = c2 end
  if l3 > c3 then l3 = c3 end
end
local n1, n2, n3 = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if l1 >= n1 and l2 >= n2 and l3 >= n3 then
  seq = seq + 1
  l1, l2, l3 = l1 - n1, l2 - n2, l3 - n3
  redis.call('SET', KEYS[1], struct.pack('<dddddddd', c1, c2, c3, l1, l2, l3, now, seq))
  return {1, now, seq, l1, l2, l3}
end
local w1, w2, w3, status = 0, 0, 0, 0
if n1 > c1 then w1, status = -1, -1 elseif l1 < n1 then w1 = math.ceil((n1 - l1) * 60000000 / c1) end
if n2 > c2 then w2, status = -1, -1 elseif l2 < n2 then w2 = math.ceil((n2 - l2) * 60000000 / c2) end
if n3 > c3 then w3, status = -1, -1 elseif l3 < n3 then w3 = math.ceil((n3 - l3) * 60000000 / c3) end
return {status, now, seq, l1, l2, l3, w1, w2, w3}
`

// usagePrelude records usage into a workload's per-second ring: field
// "<slot>:t" holds the second a slot belongs to, so a reused slot is zeroed
// before counting. The counts the controller's estimators difference between
// polls (requests, 429s, 529s, throttled calls, milliseconds waited) are also
// added to cumulative "tot:<field>" fields of the same hash. It also marks the
// pod and the workload as active.
const usagePrelude = `
local usage_fields = {'req', 'in', 'out', 'cr', 'rl', 'ov', 'th', 'wt'}
local usage_totals = {req = true, rl = true, ov = true, th = true, wt = true}
local function record_usage(ukey, pkey, wkey, now, ring, workload, pod, vals)
  local sec = math.floor(now / 1000000)
  local slot = sec % ring
  local stamp = slot .. ':t'
  if tonumber(redis.call('HGET', ukey, stamp)) ~= sec then
    redis.call('HSET', ukey, stamp, sec, slot .. ':req', 0, slot .. ':in', 0, slot .. ':out', 0,
      slot .. ':cr', 0, slot .. ':rl', 0, slot .. ':ov', 0, slot .. ':th', 0, slot .. ':wt', 0)
  end
  for k = 1, 8 do
    local v = tonumber(vals[k]) or 0
    if v ~= 0 then
      local f = usage_fields[k]
      redis.call('HINCRBY', ukey, slot .. ':' .. f, v)
      if usage_totals[f] then redis.call('HINCRBY', ukey, 'tot:' .. f, v) end
    end
  end
  redis.call('EXPIRE', ukey, ring)
  if pod ~= '' then
    redis.call('ZADD', pkey, sec, pod)
    redis.call('ZREMRANGEBYSCORE', pkey, '-inf', sec - ring)
    redis.call('EXPIRE', pkey, ring)
  end
  redis.call('ZADD', wkey, sec, workload)
  redis.call('ZREMRANGEBYSCORE', wkey, '-inf', sec - ring)
end
`

// settleScript replaces a reservation's estimate with the actual usage: it
// gives back reserved - actual per dimension (negative = debt) and, when a
// workload is named, records the actual usage in the same atomic step. A
// reservation whose lease (granted + lease, in Redis time) has passed changes
// nothing: it stays charged in full.
//
// KEYS: bucket, usage, pods, workloads. ARGV: granted (µs), lease (µs),
// reserved requests, input, output, actual requests, input, output, cache
// reads, workload ("" = do not record), pod, ring seconds.
// Reply: {1, now, seq, level1..3} when applied; {-1, now} when the lease
// expired (nothing applied); {-2, now} when no limits are configured.
const settleBody = `
local now = now_us()
if tonumber(ARGV[1]) + tonumber(ARGV[2]) < now then return {-1, now} end
local c1, c2, c3, l1, l2, l3, seq = read_bucket(KEYS[1], now)
if not c1 then return {-2, now} end
l1 = math.min(c1, l1 + tonumber(ARGV[3]) - tonumber(ARGV[6]))
l2 = math.min(c2, l2 + tonumber(ARGV[4]) - tonumber(ARGV[7]))
l3 = math.min(c3, l3 + tonumber(ARGV[5]) - tonumber(ARGV[8]))
seq = seq + 1
write_bucket(KEYS[1], c1, c2, c3, l1, l2, l3, now, seq)
if ARGV[10] ~= '' then
  record_usage(KEYS[2], KEYS[3], KEYS[4], now, tonumber(ARGV[12]), ARGV[10], ARGV[11],
    {ARGV[6], ARGV[7], ARGV[8], ARGV[9], 0, 0, 0, 0})
end
return {1, now, seq, l1, l2, l3}
`

// recordUsageBody records a usage sample (or a zero heartbeat) outside a
// settlement, e.g. a 429 or 529 seen upstream.
//
// KEYS: usage, pods, workloads. ARGV: ring seconds, workload, pod, requests,
// input, output, cache reads, 429s, 529s, throttled calls, milliseconds
// waited. Reply: now.
const recordUsageBody = `
local now = now_us()
record_usage(KEYS[1], KEYS[2], KEYS[3], now, tonumber(ARGV[1]), ARGV[2], ARGV[3],
  {ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]})
return now
`

// readUsageBody sums a workload's ring over the last window seconds (the
// current, partial second included) and counts pods seen in that window.
//
// KEYS: usage, pods. ARGV: window seconds, ring seconds.
// Reply: {now, requests, input, output, cache reads, 429s, 529s, throttled,
// waited ms, pods}.
const readUsageBody = `
local now = now_us()
local sec = math.floor(now / 1000000)
local window, ring = tonumber(ARGV[1]), tonumber(ARGV[2])
local fields = {}
for s = sec - window + 1, sec do
  local slot = s % ring
  fields[#fields + 1] = slot .. ':t'
  for k = 1, 8 do fields[#fields + 1] = slot .. ':' .. usage_fields[k] end
end
local vals = redis.call('HMGET', KEYS[1], unpack(fields))
local sums = {0, 0, 0, 0, 0, 0, 0, 0}
local i = 1
for s = sec - window + 1, sec do
  if tonumber(vals[i]) == s then
    for k = 1, 8 do sums[k] = sums[k] + (tonumber(vals[i + k]) or 0) end
  end
  i = i + 9
end
local pods = redis.call('ZCOUNT', KEYS[2], sec - window + 1, '+inf')
return {now, sums[1], sums[2], sums[3], sums[4], sums[5], sums[6], sums[7], sums[8], pods}
`

// writePoolConfigBody replaces the pool's limits and allocations atomically
// and stamps them with Redis time (milliseconds). The readable limits hash is
// what ReadPoolConfig returns; the bucket keeps a copy of the capacities for
// the hot path. Changing limits keeps the levels (clamped to the new
// capacity); a bucket never used starts full.
//
// KEYS: limits, alloc, bucket. ARGV: rpm, itpm, otpm, then workload/JSON
// pairs. Reply: now.
const writePoolConfigBody = `
local now = now_us()
local c1, c2, c3 = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'rpm', ARGV[1], 'itpm', ARGV[2], 'otpm', ARGV[3], 'updated_ms', math.floor(now / 1000))
redis.call('DEL', KEYS[2])
if #ARGV > 3 then redis.call('HSET', KEYS[2], unpack(ARGV, 4)) end
local _, _, _, l1, l2, l3, seq = read_bucket(KEYS[3], now)
local t = now
if not l1 or seq == 0 then
  l1, l2, l3, t, seq = c1, c2, c3, 0, 0
end
write_bucket(KEYS[3], c1, c2, c3, math.min(l1, c1), math.min(l2, c2), math.min(l3, c3), t, seq)
return now
`

// writeUpstreamBody replaces the last upstream observation, stamps it with
// Redis time (milliseconds) and lets it expire when no longer refreshed.
//
// KEYS: upstream. ARGV: ttl (ms), then field/value pairs. Reply: now.
const writeUpstreamBody = `
local now = now_us()
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'at_ms', math.floor(now / 1000), unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return now
`

var (
	reserveScript         = redis.NewScript(reserveScriptSource)
	settleScript          = redis.NewScript(bucketPrelude + usagePrelude + settleBody)
	recordUsageScript     = redis.NewScript(bucketPrelude + usagePrelude + recordUsageBody)
	readUsageScript       = redis.NewScript(bucketPrelude + usagePrelude + readUsageBody)
	writePoolConfigScript = redis.NewScript(bucketPrelude + writePoolConfigBody)
	writeUpstreamScript   = redis.NewScript(bucketPrelude + writeUpstreamBody)
)
