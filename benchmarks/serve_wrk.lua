-- wrk script for benchmarks/serve.py: sends precomputed raw HTTP requests, each once.
--
--   [SERVE_BENCH_RATE=R] wrk -t T -c C -d 600s -s serve_wrk.lua URL -- REQUESTS_FILE COUNT T
--
-- REQUESTS_FILE holds records "<length>\n<raw request>"; thread t of T sends records
-- t, t+T, t+2T, ... in order. Once a thread has COUNT/T answers it says "done" on stdout
-- and stops (serve.py then ends wrk with SIGINT); requests past COUNT are spare distinct
-- ones for the connections still busy at that moment, so no request is ever sent twice.
-- With SERVE_BENCH_RATE (requests a second, all threads together) each thread paces them
-- to that rate as long as it has a connection free, so the latency is the one at that
-- rate, not at the most the server can take. done() prints one line "RESULT {json}" with wrk's figures and what every thread sent,
-- how many answers it had and how many were not 200.

local threads = {}
local ffi = require("ffi")
ffi.cdef([[
  typedef struct { long tv_sec; long tv_nsec; } wrk_timespec;
  int clock_gettime(int clock, wrk_timespec *now);
]])
local clock = ffi.new("wrk_timespec")

local function now_ms()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  local nthreads = #threads > 0 and #threads or tonumber(args[3] or "1")
  local file = assert(io.open(args[1], "rb"))
  local data = file:read("*a")
  file:close()
  mine = {}
  local pos, n = 1, 0
  while pos <= #data do
    local eol = data:find("\n", pos, true)
    local length = tonumber(data:sub(pos, eol - 1))
    if n % nthreads == tid then
      table.insert(mine, data:sub(eol + 1, eol + length))
    end
    n = n + 1
    pos = eol + length + 1
  end
  wanted = math.ceil(tonumber(args[2]) / nthreads)
  interval = RATE and 1000 * nthreads / RATE or 0
  -- wrk calls thread 0's request() once before it starts, to check what it returns,
  -- and never sends that one: so thread 0 counts from -1.
  sent = tid == 0 and -1 or 0
  answered, not_ok, said = 0, 0, false
end

-- wrk goes through a timer for every request once a script has delay(): only when pacing.
RATE = tonumber(os.getenv("SERVE_BENCH_RATE") or "")
if RATE then
  function delay()
    local now = now_ms()
    local slot = math.max(next_slot or now, now)
    next_slot = slot + interval
    return math.floor(slot - now + 0.5)
  end
end

function request()
  sent = sent + 1
  return mine[math.max(1, math.min(sent, #mine))]
end

function response(status, headers, body)
  answered = answered + 1
  if status ~= 200 then
    not_ok = not_ok + 1
  end
  if answered >= wanted and not said then
    said = true
    io.write("done\n")
    io.stdout:flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local sent_total, answered_total, not_ok_total = 0, 0, 0
  local each = {}
  for _, thread in ipairs(threads) do
    sent_total = sent_total + thread:get("sent")
    answered_total = answered_total + thread:get("answered")
    not_ok_total = not_ok_total + thread:get("not_ok")
    table.insert(each, string.format("[%d,%d]", thread:get("tid"), thread:get("sent")))
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"duration_us": %d, "requests": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"sent": %d, "answered": %d, "not_ok": %d, "socket_errors": %d, "sent_by_thread": [%s]}\n',
    summary.duration, summary.requests, latency:percentile(50), latency:percentile(99),
    sent_total, answered_total, not_ok_total,
    e.connect + e.read + e.write + e.timeout, table.concat(each, ",")))
end
