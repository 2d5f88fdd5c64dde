-- Shared by every script of the benchmark (bench/loadgen.py puts it before the script):
-- a number per thread (`tid`, set before init), counts of answers by status and of the
-- messages they carried, and one JSON line for Python, printed by done().

local threads = {}
local thread_count = 0

function setup(thread)
   thread:set("tid", thread_count)
   thread_count = thread_count + 1
   table.insert(threads, thread)
end

statuses = {}
items = 0  -- messages answered as accepted (a batch counts its accepted items)
used = 0   -- requests made by this thread (the webhook script: its lines consumed)

function count(status, accepted)
   local key = tostring(status)
   statuses[key] = (statuses[key] or 0) + 1
   items = items + accepted
end

function done(summary, latency, requests)
   local all, accepted, most = {}, 0, 0
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses")) do
         all[status] = (all[status] or 0) + n
      end
      accepted = accepted + thread:get("items")
      most = math.max(most, thread:get("used"))
   end
   local parts = {}
   for status, n in pairs(all) do
      table.insert(parts, string.format('"%s":%d', status, n))
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,' ..
      '"write":%d,"status":%d,"timeout":%d},"latency_us":{"p50":%d,"p90":%d,"p99":%d,' ..
      '"max":%d},"statuses":{%s},"items":%d,"used":%d}\n',
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      table.concat(parts, ","), accepted, most))
end
