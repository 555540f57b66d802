package ratelimit

import "github.com/redis/go-redis/v9"

// All scripts read the clock with TIME (microseconds since the epoch, exact in
// a Lua double until the year 2255), so pods never compare their own clocks.
// Every key a script touches is passed in KEYS and shares the pool's hash tag.
// redis.Script runs EVALSHA and falls back to EVAL on NOSCRIPT, which also
// re-caches the script, so a SCRIPT FLUSH or a restarted Redis costs one extra
// round trip.

// bucketPrelude reads and writes the pool's bucket: one string of eleven
// little-endian doubles (capacities r, i, o; levels r, i, o; last change time
// in µs, 0 = never; change sequence number; output held by unsettled calls;
// output rule, 0 = produced, 1 = reserved; when the first hold expires, µs,
// 0 = none) followed by the hold ring, see bucketState in bucket.go, and then
// the reserve table (see reserveOf). A packed string instead of a hash keeps
// the hot path to the three cheapest calls (TIME, GET, SETRANGE) with no
// decimal formatting. Levels may be negative (debt
// from settled overage) and refill towards the capacity at capacity/60 per
// second.
//
// Output is not taken from the level at admission: a call's max_tokens is
// held outside it (available = level - held) and the output actually produced
// is charged when the call settles, which is when the API (charging output as
// it is generated) has charged it too. The level refills underneath the holds
// only up to the capacity, so the pool never believes it has more output than
// the API: the API's level is at least ours minus what in-flight calls may
// still produce. Under the older reserved rule (the API takes max_tokens at
// the start and refunds the rest at the end) the output level may refill up
// to capacity + held, exactly as the API's does.
//
// Holds live in a ring of HOLD_SLOTS slots of HOLD_US each, keyed by when
// their lease ends; a settlement releases its hold from its slot, and a slot
// whose leases have all ended is swept: what it still holds is charged in
// full (an unsettled call may have produced all of it) and released. No
// per-call state is kept, so a pod that dies leaves nothing behind.
const bucketPrelude = `
local function now_us()
  local t = redis.call('TIME')
  return t[1] * 1000000 + t[2]
end
local HOLD_US, HOLD_SLOTS = 60000000, 16
local HEADER = '<ddddddddddd'
local BUCKET_SIZE = 88 + HOLD_SLOTS * 16
local function output_cap(b)
  if b.rule == 1 then return b.c3 + b.held end
  return b.c3
end
local function sweep(b)
  local parts, nexp = {}, 0
  for i = 0, HOLD_SLOTS - 1 do
    local stamp, amount = struct.unpack('<dd', b.ring, i * 16 + 1)
    if amount > 0 then
      local ends = (stamp + 1) * HOLD_US
      if ends <= b.now then
        b.l3, b.held, amount = b.l3 - amount, b.held - amount, 0
      elseif nexp == 0 or ends < nexp then
        nexp = ends
      end
    end
    parts[i + 1] = struct.pack('<dd', stamp, amount)
  end
  b.ring, b.nexp = table.concat(parts), nexp
  if b.held < 0 then b.held = 0 end
end
local function load_bucket(key, now)
  local s = redis.call('GET', key)
  if not s then return nil end
  local c1, c2, c3, l1, l2, l3, t, seq, held, rule, nexp, ring
  if #s == 64 then
    c1, c2, c3, l1, l2, l3, t, seq = struct.unpack('<dddddddd', s)
    held, rule, nexp, ring = 0, 0, 0, string.rep('\0', HOLD_SLOTS * 16)
  else
    c1, c2, c3, l1, l2, l3, t, seq, held, rule, nexp = struct.unpack(HEADER, s)
    ring = string.sub(s, 89, BUCKET_SIZE)
  end
  -- TIME may step back (a failover to another host, a clock step): time never
  -- runs backwards here, so no interval is refilled twice.
  if now < t then now = t end
  if t > 0 and now > t then
    local dt = (now - t) / 60000000
    l1 = math.min(c1, l1 + dt * c1)
    l2 = math.min(c2, l2 + dt * c2)
    local cap3 = c3
    if rule == 1 then cap3 = c3 + held end
    l3 = math.min(cap3, l3 + dt * c3)
  end
  local b = {c1 = c1, c2 = c2, c3 = c3, l1 = l1, l2 = l2, l3 = l3, seq = seq, held = held,
    rule = rule, nexp = nexp, ring = ring, now = now, t = t, s = s}
  if nexp > 0 and now >= nexp then sweep(b) end
  return b
end
-- store_bucket rewrites the header and the ring in place: the reserve table
-- after them is the pool config's, written only by writePoolConfigBody.
local function pack_bucket(b)
  return struct.pack(HEADER, b.c1, b.c2, b.c3, b.l1, b.l2, b.l3, b.now, b.seq,
    b.held, b.rule, b.nexp) .. b.ring
end
local function store_bucket(key, b)
  redis.call('SETRANGE', key, 0, pack_bucket(b))
end
-- reserveOf returns what a call of workload w must leave in each bucket for
-- higher-priority workloads. The reserve table follows the ring: text, one
-- entry "\n<workload> <requests> <input> <output>" (integers, bucket units)
-- per workload with a reserve. Workload names hold no space or newline, so
-- a plain find of "\n<w> " matches w's entry and no other.
local function reserve_of(b, w)
  if w == '' or #b.s <= BUCKET_SIZE then return 0, 0, 0 end
  local at = string.find(b.s, '\n' .. w .. ' ', BUCKET_SIZE + 1, true)
  if not at then return 0, 0, 0 end
  local r1, r2, r3 = string.match(b.s, '^(%d+) (%d+) (%d+)', at + #w + 2)
  return tonumber(r1) or 0, tonumber(r2) or 0, tonumber(r3) or 0
end
local function hold_slot(b, expires)
  local period = math.floor(expires / HOLD_US)
  local off = (period % HOLD_SLOTS) * 16 + 1
  local stamp, amount = struct.unpack('<dd', b.ring, off)
  return period, off, stamp, amount
end
local function put_slot(b, off, period, amount)
  b.ring = string.sub(b.ring, 1, off - 1) .. struct.pack('<dd', period, amount) .. string.sub(b.ring, off + 16)
end
local function hold(b, expires, n)
  if n <= 0 then return end
  local period, off, stamp, amount = hold_slot(b, expires)
  if stamp ~= period then
    -- A slot of an older period: its leases ended (a sweep already charged it).
    if amount > 0 then b.l3, b.held = b.l3 - amount, b.held - amount end
    amount = 0
  end
  put_slot(b, off, period, amount + n)
  b.held = b.held + n
  local ends = (period + 1) * HOLD_US
  if b.nexp == 0 or ends < b.nexp then b.nexp = ends end
end
local function release(b, expires, n)
  local period, off, stamp, amount = hold_slot(b, expires)
  if stamp ~= period or amount <= 0 or n <= 0 then return end
  local r = math.min(amount, n)
  put_slot(b, off, period, amount - r)
  b.held = math.max(0, b.held - r)
end
-- An admission leaves a margin of a quarter second of refill in each bucket
-- (less for a call that would not fit otherwise). The API admits a call some
-- milliseconds after the pool did, and calls do not arrive in the order they
-- were admitted: without the margin, two calls admitted one refill apart can
-- reach the API closer together than that, and the second finds its bucket a
-- fraction short. In steady state the margin costs no throughput (the level
-- hovers at the margin instead of at zero); it only makes a burst from a full
-- bucket 0.4% smaller.
local MARGIN = 0.25 / 60
local function margin(capacity, n, reserve)
  if n <= 0 then return 0 end
  local m = capacity * MARGIN
  if m > capacity - reserve - n then m = math.max(0, capacity - reserve - n) end
  return m
end
-- A reserve never makes a call impossible: a call larger than capacity -
-- reserve may take what the reserve protects, but only from a full bucket.
local function clamp_reserve(reserve, capacity, n)
  if reserve > capacity - n then return math.max(0, capacity - n) end
  return reserve
end
local MAX_WAIT_US = 3600000000
local function wait_us(need, level, capacity)
  if level >= need then return 0 end
  return math.min(MAX_WAIT_US, math.ceil((need - level) * 60000000 / capacity))
end
`

// reserveScript takes a cost from all three buckets or from none: requests
// and input from their levels, output as a hold (see bucketPrelude). A call of
// a workload with a reserve (see reserve_of) must leave it in every bucket:
// it is admitted only if level - reserve (output: level - held - reserve)
// covers the cost and the margin, and its waits count until then.
//
// KEYS: bucket. ARGV: requests, input, output, lease (µs), workload ("" =
// none, no reserve).
// Reply when admitted: {1, now, seq, level1..3} (levels after the take; the
// output level is what is available: level - held); refused: {0, now, seq,
// level1..3, wait1..3} with waits in µs, ceiled, capped at an hour, and status
// -1 instead of 0 when the cost exceeds a capacity (whose wait is -1); not
// configured: {-2, now}. Levels are truncated to integers by Redis.
const reserveBody = `
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local b = load_bucket(KEYS[1], now)
if not b then return {-2, now} end
local n1, n2, n3 = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local r1, r2, r3 = 0, 0, 0
if #b.s > BUCKET_SIZE then
  r1, r2, r3 = reserve_of(b, ARGV[5])
  r1, r2, r3 = clamp_reserve(r1, b.c1, n1), clamp_reserve(r2, b.c2, n2), clamp_reserve(r3, b.c3, n3)
end
local a3 = b.l3 - b.held
local m1, m2, m3 = margin(b.c1, n1, r1), margin(b.c2, n2, r2), margin(b.c3, n3, r3)
if b.l1 - r1 - m1 >= n1 and b.l2 - r2 - m2 >= n2 and a3 - r3 - m3 >= n3 then
  b.l1, b.l2 = b.l1 - n1, b.l2 - n2
  hold(b, b.now + tonumber(ARGV[4]), n3)
  b.seq = b.seq + 1
  store_bucket(KEYS[1], b)
  return {1, b.now, b.seq, b.l1, b.l2, b.l3 - b.held}
end
local w1, w2, w3, status = 0, 0, 0, 0
if n1 > b.c1 then w1, status = -1, -1 else w1 = wait_us(n1 + r1 + m1, b.l1, b.c1) end
if n2 > b.c2 then w2, status = -1, -1 else w2 = wait_us(n2 + r2 + m2, b.l2, b.c2) end
if n3 > b.c3 then w3, status = -1, -1 else w3 = wait_us(n3 + r3 + m3, a3, b.c3) end
return {status, b.now, b.seq, b.l1, b.l2, a3, w1, w2, w3}
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

// settleScript replaces a reservation's estimate with the actual usage:
// requests and input get reserved - actual back (negative = debt), the
// output hold is released and the actual output charged, and, when a
// workload is named, the usage is recorded in the same atomic step. A
// reservation whose lease (granted + lease, in Redis time) has passed
// changes nothing: it stays charged in full (its hold is charged when its
// slot is swept).
//
// The API's rate-limit headers of the call, when known, pull the levels down
// (never up): the remaining it reported when it admitted the call, plus its
// refill since, less what this call then produced, less the rounding of token
// counts to the nearest thousand. So any drift between the pool and the API
// (estimates below the real charge, usage the pool does not see) closes on
// the next settlement.
//
// KEYS: bucket, usage, pods, workloads, settled marker of this reservation
// (kept two minutes). ARGV: granted (µs), lease (µs),
// reserved requests, input, output, actual requests, input, output, cache
// reads, workload ("" = do not record), pod, ring seconds, upstream remaining
// requests, input, output (-1 = unknown), upstream limits (0 = unknown), µs
// since the request was sent.
// Reply: {1, now, seq, level1..3} when applied; {-1, now} when the lease
// expired (nothing applied); {-2, now} when no limits are configured; {-3,
// now} when this reservation was already settled (nothing applied).
const settleBody = `
local SETTLED_TTL_MS = 120000
local now = now_us()
local granted, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
if granted + lease < now then return {-1, now} end
local b = load_bucket(KEYS[1], now)
if not b then return {-2, now} end
-- A client may send this script again when the reply of the first run was lost
-- (go-redis retries after a timeout): the reservation's own key makes the
-- second run change nothing, so a settlement can never give back twice.
if not redis.call('SET', KEYS[5], 1, 'NX', 'PX', SETTLED_TTL_MS) then return {-3, now} end
local r1, r2, r3 = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local a1, a2, a3 = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
b.l1 = math.min(b.c1, b.l1 + r1 - a1)
b.l2 = math.min(b.c2, b.l2 + r2 - a2)
release(b, granted + lease, r3)
b.l3 = math.min(output_cap(b), b.l3 - a3)
local age = tonumber(ARGV[19]) / 60000000
local function api_level(i, capacity, margin)
  local rem, limit = tonumber(ARGV[12 + i]), tonumber(ARGV[15 + i])
  if rem < 0 then return nil end
  if limit <= 0 then limit = capacity end
  return math.min(limit, rem + age * limit) - margin
end
local u1, u2, u3 = api_level(1, b.c1, 0), api_level(2, b.c2, 500), api_level(3, b.c3, 500)
if u1 then b.l1 = math.min(b.l1, u1) end
if u2 then b.l2 = math.min(b.l2, u2) end
if u3 then
  if b.rule == 1 then
    b.l3 = math.min(b.l3, u3 + r3 - a3 + b.held)
  else
    b.l3 = math.min(b.l3, u3 - a3)
  end
end
b.seq = b.seq + 1
store_bucket(KEYS[1], b)
if ARGV[10] ~= '' then
  record_usage(KEYS[2], KEYS[3], KEYS[4], now, tonumber(ARGV[12]), ARGV[10], ARGV[11],
    {ARGV[6], ARGV[7], ARGV[8], ARGV[9], 0, 0, 0, 0})
end
return {1, b.now, b.seq, b.l1, b.l2, b.l3 - b.held}
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

// replacePrelude helps scripts that replace whole hashes keep working, all or
// nothing, while Redis Cluster migrates the pool's slot: there a script may
// touch a key only while it exists on this node, so a script that deleted a
// hash and wrote it again was aborted halfway (new limits, no allocations).
// touch_all reads every key first, so a script that cannot run fails before
// its first write; replace_hash writes the new fields before it removes the
// stale ones, so the hash never stops existing in between.
const replacePrelude = `
local function touch_all()
  for i = 1, #KEYS do redis.call('EXISTS', KEYS[i]) end
end
local function replace_hash(key, pairs, from)
  local keep = {}
  if #pairs >= from + 1 then
    local args = {}
    for i = from, #pairs, 2 do
      keep[pairs[i]] = true
      args[#args + 1] = pairs[i]
      args[#args + 1] = pairs[i + 1]
    end
    redis.call('HSET', key, unpack(args))
  end
  local stale = {}
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if not keep[f] then stale[#stale + 1] = f end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
end
`

// writePoolConfigBody replaces the pool's limits, output rule and
// allocations atomically and stamps them with Redis time (milliseconds). The
// readable limits hash is what ReadPoolConfig returns; the bucket keeps a
// copy of the capacities and the rule for the hot path. Changing limits keeps
// the levels (clamped to the new capacity) and the holds of calls in flight;
// a bucket never used starts full.
//
// A bucket that does not exist is created full, or, when ARGV[5] is "1" (the
// writer configured this pool before, so Redis lost it), empty and refilling
// from now: the API may have no room left, and a full bucket would let the
// pool's first burst meet an empty API.
//
// The reserves travel in the bucket, after the ring (see reserve_of), so that
// admission reads them with the levels: one key, one GET. The bucket is
// rewritten whole here, so a reserve left out of the new config stops
// applying with this write.
//
// KEYS: limits, alloc, bucket. ARGV: rpm, itpm, otpm, output rule
// ("produced" or "reserved"), start empty ("1" or "0"), reserve table (text,
// built by encodeReserves), then workload/JSON pairs. Reply: now.
const writePoolConfigBody = `
local now = now_us()
touch_all()
local c1, c2, c3 = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'rpm', ARGV[1], 'itpm', ARGV[2], 'otpm', ARGV[3], 'output_rule', ARGV[4],
  'updated_ms', math.floor(now / 1000))
replace_hash(KEYS[2], ARGV, 7)
local b = load_bucket(KEYS[3], now)
if not b and ARGV[5] == '1' then
  b = {l1 = 0, l2 = 0, l3 = 0, seq = 0, held = 0, nexp = 0, ring = string.rep('\0', HOLD_SLOTS * 16), now = now}
elseif not b or (b.seq == 0 and b.t == 0) then
  -- Never used: full, and following the capacity until the first admission.
  b = {l1 = c1, l2 = c2, l3 = c3, seq = 0, held = 0, nexp = 0, ring = string.rep('\0', HOLD_SLOTS * 16)}
  b.now = 0
end
b.c1, b.c2, b.c3 = c1, c2, c3
b.rule = 0
if ARGV[4] == 'reserved' then b.rule = 1 end
b.l1, b.l2, b.l3 = math.min(b.l1, c1), math.min(b.l2, c2), math.min(b.l3, output_cap(b))
redis.call('SET', KEYS[3], pack_bucket(b) .. ARGV[6])
return now
`

// writeUpstreamBody replaces the last upstream observation, stamps it with
// Redis time (milliseconds) and lets it expire when no longer refreshed.
//
// KEYS: upstream. ARGV: ttl (ms), then field/value pairs. Reply: now.
const writeUpstreamBody = `
local now = now_us()
touch_all()
local fields = {'at_ms', math.floor(now / 1000)}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
replace_hash(KEYS[1], fields, 1)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return now
`

var (
	reserveScript         = redis.NewScript(bucketPrelude + reserveBody)
	settleScript          = redis.NewScript(bucketPrelude + usagePrelude + settleBody)
	recordUsageScript     = redis.NewScript(bucketPrelude + usagePrelude + recordUsageBody)
	readUsageScript       = redis.NewScript(bucketPrelude + usagePrelude + readUsageBody)
	writePoolConfigScript = redis.NewScript(bucketPrelude + replacePrelude + writePoolConfigBody)
	writeUpstreamScript   = redis.NewScript(bucketPrelude + replacePrelude + writeUpstreamBody)
)
