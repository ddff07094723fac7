-- bench/wrk/common.lua: what put.lua, get.lua and qget.lua share. The same load as cn_loadgen
-- (bench/cn_loadgen.c), driven by wrk 4.1.0 (Debian's `wrk`) instead:
--
--   wrk -t1 -c64 -d10s --timeout 10s -s bench/wrk/put.lua http://127.0.0.1:2379 -- \
--       keys=10000 prefix=/bench value_size=256 conns=64 [seed=N] [strict=1]
--
-- * Requests: PUT /v2/keys<prefix>/k<i> with the form body value=<value of key i> (the same
--   bytes cn_loadgen sends, see fill_value there), GET /v2/keys<prefix>/k<i>, or the same GET
--   with ?quorum=true; keep-alive HTTP/1.1, one request in flight per connection (wrk's closed
--   loop; nothing here pipelines).
-- * Keys: like cn_loadgen without --seq, every request picks i uniformly at random in
--   [0, keys), so all connections together cover the whole key set; each wrk thread has its
--   own generator, seeded from seed + thread number.
-- * conns= must be wrk's -c: it is needed to undo wrk's latency "correction" (below).
-- * reader=stats reads the histogram through wrk's stats object rather than LuaJIT's FFI
--   (slow; for the self-test, which checks both give the same figures).
-- * strict=1 also counts 1xx and 3xx answers as errors. Without it the errors are wrk's own:
--   answers >= 400 plus connect/read/write/timeout failures; strict needs a Lua response()
--   hook, which makes wrk hand every response's headers and body to Lua (slower).
--
-- done() prints, after wrk's own report, one JSON line with "loadgen":"wrk" (bench.py parses
-- it: parse_wrk_output in bench/benchlib.py): requests, count (2xx), errors, p50/p90/p99/p999,
-- max, min and mean in microseconds, ops_per_s (2xx per second of wrk's run).
--
-- Latencies. wrk keeps one counter per microsecond (up to --timeout) of the time from the first
-- byte of a request written to its response parsed, recorded for every response. Before done()
-- runs, wrk 4.1.0 "corrects" that histogram for coordinated omission (stats_correct in wrk.c):
-- with e = run time / (requests / connections), each sample n >= 2e adds fake samples at n-e,
-- n-2e, ... down to e. That suits an open-loop rate, not this closed loop, and would make its
-- p99 incomparable with cn_loadgen's, so done() undoes it exactly: for m > e the corrected
-- count C[m] = sum over k >= 0 of the original O[m + k e], hence O[m] = C[m] - C[m+e]; below
-- that C = O. The counters are read straight from wrk's histogram through LuaJIT's FFI
-- (latency_source "ffi"); without FFI they are read through wrk's stats object, slower
-- ("stats"). The check: the original counts must add up to the number of recorded responses
-- (requests - timeouts), else the stock, corrected figures are reported ("wrk-corrected").
-- wrk's own corrected percentiles are in the line too, under "wrk_corrected".

local cn = {}

local opts = {
   op = cn_op or "get",
   keys = 10000,
   prefix = "/bench",
   value_size = 256,
   conns = 0,
   seed = 0,
   strict = false,
   reader = "ffi",
}

-- main Lua state only: the threads, for done()
local threads = {}

local function parse_args(args)
   -- wrk hands over its URL as args[0], then what followed "--"; take every key=value
   for _, a in pairs(args) do
      local k, v = string.match(a, "^([%w_]+)=(.*)$")
      if k == "keys" then
         opts.keys = assert(tonumber(v), "keys=N")
      elseif k == "prefix" then
         opts.prefix = v
      elseif k == "value_size" then
         opts.value_size = assert(tonumber(v), "value_size=N")
      elseif k == "conns" then
         opts.conns = assert(tonumber(v), "conns=N")
      elseif k == "seed" then
         opts.seed = assert(tonumber(v), "seed=N")
      elseif k == "strict" then
         opts.strict = (v == "1" or v == "true")
      elseif k == "reader" then
         opts.reader = v  -- "stats": skip the FFI reader (for the self-test)
      elseif k == "op" then
         opts.op = v
      elseif k ~= nil then
         error("wrk script: unknown argument " .. a)
      end
   end
   assert(opts.op == "put" or opts.op == "get" or opts.op == "qget", "op must be put, get or qget")
   assert(opts.keys >= 1, "keys must be positive")
   -- as cn_loadgen: "/dir" without a trailing slash, "" for the root
   local p = string.gsub(opts.prefix, "/+$", "")
   if p ~= "" and string.sub(p, 1, 1) ~= "/" then
      p = "/" .. p
   end
   opts.prefix = p
end

-- The value cn_loadgen stores under key i: i as 10 digits, then 'a' + (i + j) % 26.
local alphabet
local function value_of(i, size)
   local digits = string.sub(string.format("%010d", i), 1, 10)
   if size <= 10 then
      return string.sub(digits, 1, size)
   end
   if alphabet == nil or #alphabet < size + 26 then
      local t = {}
      for j = 0, size + 26 do
         t[#t + 1] = string.char(97 + j % 26)
      end
      alphabet = table.concat(t)
   end
   local off = (i + 10) % 26 + 1
   return digits .. string.sub(alphabet, off, off + size - 11)
end
cn.value_of = value_of

local function format_request(i)
   local path = "/v2/keys" .. opts.prefix .. "/k" .. string.format("%d", i)
   if opts.op == "put" then
      return wrk.format("PUT", path, { ["Content-Type"] = "application/x-www-form-urlencoded" },
                        "value=" .. value_of(i, opts.value_size))
   elseif opts.op == "qget" then
      return wrk.format("GET", path .. "?quorum=true", {})
   end
   return wrk.format("GET", path, {})
end

-- ---------------------------------------------------------------- wrk hooks

function setup(thread)
   threads[#threads + 1] = thread
   thread:set("cn_thread_no", #threads)
end

local prebuilt  -- keys <= 100000: every request formatted once, in init
bad_status = 0   -- strict only: non-2xx answers seen by this thread (read by done())
status_counts = {}

function init(args)
   parse_args(args)
   math.randomseed(opts.seed + 7919 * (cn_thread_no or 1))
   -- globals, for request() and for done() through thread:get (the main state, where done()
   -- runs, never sees init's arguments)
   cn_keys = opts.keys
   cn_conns = opts.conns
   cn_op = opts.op
   cn_strict = opts.strict
   cn_value_size = opts.value_size
   cn_reader = opts.reader
   if opts.keys <= 100000 then
      prebuilt = {}
      for i = 0, opts.keys - 1 do
         prebuilt[i + 1] = format_request(i)
      end
   end
   if opts.strict then
      response = function(status, headers, body)
         if status < 200 or status > 299 then
            bad_status = bad_status + 1
            local k = tostring(status)
            status_counts[k] = (status_counts[k] or 0) + 1
         end
      end
   end
end

function request()
   local k = math.random(cn_keys)  -- 1..keys
   if prebuilt then
      return prebuilt[k]
   end
   return format_request(k - 1)
end

-- ---------------------------------------------------------------- done: percentiles

-- The corrected counters C[lo..hi] of wrk's latency histogram as a function m -> C[m], or nil.
local function ffi_counts(latency)
   local ok, ffi = pcall(require, "ffi")
   if not ok then
      return nil
   end
   -- wrk's stats (src/stats.h): uint64_t count, limit, min, max, data[]; the Lua object is a
   -- userdata holding a stats *.
   local ok2, s = pcall(function()
      return ffi.cast("uint64_t **", latency)[0]
   end)
   if not ok2 or s == nil then
      return nil
   end
   local limit, lo, hi = tonumber(s[1]), tonumber(s[2]), tonumber(s[3])
   if lo ~= latency.min or hi ~= latency.max or hi >= limit then
      return nil  -- not the layout we know
   end
   return function(m)
      if m > hi then
         return 0
      end
      return tonumber(s[4 + m])
   end
end

-- The same through wrk's own accessors: latency(i) is the i-th distinct value and its count,
-- each call a scan from min, so this is quadratic; only a fallback.
local function stats_counts(latency)
   local t = {}
   for i = 1, #latency do
      local v, c = latency(i)
      t[v] = c
   end
   return function(m)
      return t[m] or 0
   end
end

-- cn.percentiles(C, lo, hi, e) -> {n, sum, p50, p90, p99, p999, min, max} of the original
-- counts O[m] = C[m] - C[m+e] for m > e (e <= 0: no correction was applied).
function cn.percentiles(C, lo, hi, e)
   local function O(m)
      if e > 0 and m > e then
         return C(m) - C(m + e)
      end
      return C(m)
   end
   local n, sum, vmin, vmax, negative = 0, 0, nil, nil, false
   for m = lo, hi do
      local c = O(m)
      if c < 0 then
         negative = true
      elseif c > 0 then
         n = n + c
         sum = sum + c * m
         vmin = vmin or m
         vmax = m
      end
   end
   local r = { n = n, sum = sum, min = vmin or 0, max = vmax or 0, negative = negative }
   if n == 0 then
      r.p50, r.p90, r.p99, r.p999 = 0, 0, 0, 0
      return r
   end
   -- as cn_loadgen: the smallest value holding the ceil(q n)-th sample
   local qs = { { "p50", 0.50 }, { "p90", 0.90 }, { "p99", 0.99 }, { "p999", 0.999 } }
   local ranks = {}
   for i, q in ipairs(qs) do
      local rank = math.floor(q[2] * n + 0.999999)
      if rank < 1 then
         rank = 1
      end
      if rank > n then
         rank = n
      end
      ranks[i] = rank
   end
   local seen, qi = 0, 1
   for m = lo, hi do
      local c = O(m)
      if c > 0 then
         seen = seen + c
         while qi <= #qs and seen >= ranks[qi] do
            r[qs[qi][1]] = m
            qi = qi + 1
         end
         if qi > #qs then
            break
         end
      end
   end
   return r
end

local function json_value(v)
   if type(v) == "string" then
      return '"' .. string.gsub(v, '[%c"\\]', function(c)
         return string.format("\\u%04x", string.byte(c))
      end) .. '"'
   elseif type(v) == "boolean" then
      return tostring(v)
   elseif type(v) == "table" then
      local keys = {}
      for k in pairs(v) do
         keys[#keys + 1] = k
      end
      table.sort(keys)
      local parts = {}
      for _, k in ipairs(keys) do
         parts[#parts + 1] = json_value(tostring(k)) .. ":" .. json_value(v[k])
      end
      return "{" .. table.concat(parts, ",") .. "}"
   elseif v == math.floor(v) and math.abs(v) < 2 ^ 53 then
      return string.format("%.0f", v)
   end
   return string.format("%.3f", v)
end
cn.json_value = json_value

function done(summary, latency, requests)
   local first = threads[1]
   local conns = first and first:get("cn_conns") or 0
   local err = summary.errors
   local bad, by_status = 0, {}
   for _, t in ipairs(threads) do
      bad = bad + (t:get("bad_status") or 0)
      for k, c in pairs(t:get("status_counts") or {}) do
         by_status[k] = (by_status[k] or 0) + c
      end
   end
   local strict = first ~= nil and first:get("cn_strict") == true
   local non2xx = strict and bad or err.status
   local total = summary.requests
   local recorded = total - err.timeout  -- responses whose latency wrk recorded

   -- undo stats_correct: e = duration / (requests / connections), integer divisions as in wrk.c
   local e = 0
   if conns > 0 and math.floor(total / conns) > 0 then
      e = math.floor(summary.duration / math.floor(total / conns))
   end
   local source, r = "ffi", nil
   local C = nil
   if first == nil or first:get("cn_reader") ~= "stats" then
      C = ffi_counts(latency)
   end
   if C == nil then
      source, C = "stats", stats_counts(latency)
   end
   if latency.max >= latency.min then
      r = cn.percentiles(C, latency.min, latency.max, e)
   end
   if r == nil or r.negative or r.n ~= recorded then
      source = "wrk-corrected"
      r = {
         n = recorded, sum = latency.mean * recorded, min = latency.min, max = latency.max,
         p50 = latency:percentile(50), p90 = latency:percentile(90),
         p99 = latency:percentile(99), p999 = latency:percentile(99.9),
      }
      if recorded == 0 then
         r.min, r.max, r.sum = 0, 0, 0
      end
   end

   local ok = total - non2xx
   local secs = summary.duration / 1e6
   local errors = err.connect + err.read + err.write + err.timeout + non2xx
   local out = {
      loadgen = "wrk",
      op = first and first:get("cn_op") or opts.op,
      conns = conns,
      threads = #threads,
      keys = first and first:get("cn_keys") or opts.keys,
      value_size = first and first:get("cn_value_size") or opts.value_size,
      requests = total,
      count = ok,
      errors = errors,
      non2xx = non2xx,
      strict = strict,
      socket_errors = { connect = err.connect, read = err.read, write = err.write,
                        timeout = err.timeout },
      bad_status = by_status,
      elapsed_s = secs,
      ops_per_s = secs > 0 and ok / secs or 0,
      latency_source = source,
      correction_interval_us = e,
      samples = r.n,
      p50_us = r.p50, p90_us = r.p90, p99_us = r.p99, p999_us = r.p999,
      min_us = r.min, max_us = r.max,
      mean_us = r.n > 0 and r.sum / r.n or 0,
      wrk_corrected = {
         p50_us = latency:percentile(50), p99_us = latency:percentile(99),
         p999_us = latency:percentile(99.9),
      },
   }
   io.write(json_value(out), "\n")
   io.flush()
end

return cn
