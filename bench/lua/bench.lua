-- bench.lua: request generator for `python -m bench.run`; done() prints one BENCH_JSON line.
--
-- Arguments after `--` are key=value pairs:
--   mode=rotate  tokens=FILE          cycle through every token of FILE (Authorization: Bearer)
--   mode=walk    tokens=FILE stride=T stopdir=DIR
--                                     each token once: thread k takes lines k, k+T, k+2T, ...;
--                                     when its share is used up it creates DIR/done-k and stops
--   mode=static  method=M auth=VALUE  the same request every time (Authorization: VALUE)
--   deny=1                            also send X-Bench-Deny: 1 (the Floor A app then answers 401)

local threads = {}
local thread_count = 0

function setup(thread)
   thread:set("id", thread_count)
   thread_count = thread_count + 1
   table.insert(threads, thread)
end

local opts = {}
local requests = {}
local pos = 0
local count = 0
exhausted = 0
overrun = 0

local function parse(args)
   for _, arg in ipairs(args) do
      local key, value = arg:match("^([^=]+)=(.*)$")
      if key == nil then
         error("bench.lua: expected key=value, got " .. arg)
      end
      opts[key] = value
   end
end

local function headers_with(auth)
   local headers = {}
   for name, value in pairs(wrk.headers) do
      headers[name] = value
   end
   if auth then
      headers["Authorization"] = auth
   end
   if opts.deny == "1" then
      headers["X-Bench-Deny"] = "1"
   end
   return headers
end

local function read_tokens(path, mine, stride)
   local list = {}
   local index = 0
   for line in io.lines(path) do
      if line ~= "" then
         if index % stride == mine then
            list[#list + 1] = line
         end
         index = index + 1
      end
   end
   if #list == 0 then
      error("bench.lua: no tokens for thread " .. mine .. " in " .. path)
   end
   return list
end

function init(args)
   parse(args)
   wrk.method = opts.method or "GET"
   if opts.mode == "rotate" then
      for _, token in ipairs(read_tokens(opts.tokens, 0, 1)) do
         requests[#requests + 1] = wrk.format(nil, nil, headers_with("Bearer " .. token))
      end
      count = #requests
      pos = (id * 37) % count -- threads start at different tokens
   elseif opts.mode == "walk" then
      requests = read_tokens(opts.tokens, id, tonumber(opts.stride))
      count = #requests
   elseif opts.mode == "static" then
      requests[1] = wrk.format(nil, nil, headers_with(opts.auth))
      count = 1
   else
      error("bench.lua: unknown mode " .. tostring(opts.mode))
   end
end

local function finish()
   exhausted = 1
   local marker = io.open(opts.stopdir .. "/done-" .. id, "w")
   if marker then
      marker:close()
   end
   wrk.thread:stop()
end

function request()
   if opts.mode == "walk" then
      pos = pos + 1
      if pos > count then
         -- Share used up: the few requests sent before the thread stops repeat the last token.
         overrun = overrun + 1
         if exhausted == 0 then
            finish()
         end
         return wrk.format(nil, nil, headers_with("Bearer " .. requests[count]))
      end
      return wrk.format(nil, nil, headers_with("Bearer " .. requests[pos]))
   end
   pos = pos % count + 1
   return requests[pos]
end

function done(summary, latency, _)
   local exhausted_threads, overrun_requests = 0, 0
   for _, thread in ipairs(threads) do
      exhausted_threads = exhausted_threads + (thread:get("exhausted") or 0)
      overrun_requests = overrun_requests + (thread:get("overrun") or 0)
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"min":%.1f,"mean":%.1f,"max":%.1f,"p50":%.1f,"p90":%.1f,"p99":%.1f,"p999":%.1f},' ..
      '"threads":%d,"exhausted_threads":%d,"overrun_requests":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.max,
      latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0),
      latency:percentile(99.9),
      thread_count, exhausted_threads, overrun_requests))
end
