-- wrk script: POST /v1/calls with a unique Idempotency-Key per request,
-- so every request is a real placement (Redis begin + vendor + finish).
-- thread_ids and wrk_thread_id are globals on purpose: thread:set() writes
-- a global of the thread's own Lua state, which a local would shadow.
local counter = 0
thread_ids = 0

function setup(thread)
  thread:set("wrk_thread_id", thread_ids)
  thread_ids = thread_ids + 1
end

function init(args)
  counter = 0
end

request = function()
  counter = counter + 1
  local headers = {
    ["Authorization"] = "Bearer demo-acme-key",
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("bench-%d-%d-%d", os.time(), wrk_thread_id, counter),
  }
  return wrk.format("POST", "/v1/calls", headers,
    '{"to":"+919876543210","agent":"agent.017","reference":"bench"}')
end

-- One summary line per run, parsed by calls.sh.
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
                 + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f requests=%d errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests, errors, summary.errors.status))
end
