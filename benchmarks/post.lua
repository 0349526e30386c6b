-- wrk script for bkvy benchmarks: POSTs BENCH_BODY (JSON) and prints one parseable result line.
--   BENCH_BODY='{"model":"m",...}' wrk -s benchmarks/post.lua -c64 -d10s http://127.0.0.1:PORT/path
-- Output: a line "BENCH_RESULT {json}" with requests, duration_us, p50/p90/p99/max latency in us, errors.

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"model":"m","messages":[{"role":"user","content":"hi"}]}'
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH")  -- a client key (bkvy-sk-...), sent as a bearer token when set
if auth and auth ~= "" then wrk.headers["Authorization"] = "Bearer " .. auth end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"mean_us":%.1f,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,"status_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.timeout, e.status))
end
