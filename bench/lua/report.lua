-- Appended to every wrk script: print one machine-readable line with the run's summary.
-- wrk's latency correction can add counts below the recorded minimum, where its percentile walk
-- (which starts at the minimum) never looks; a high percentile then comes back as 0.  So find the
-- largest percentile that still resolves (binary search) and scale the wanted ones into it: the
-- result is the percentile of the latencies the walk can see.
local function percentiles(latency, wanted)
  local top = 100
  if latency:percentile(100) == 0 then
    local lo, hi = 0, 100
    for _ = 1, 40 do
      local mid = (lo + hi) / 2
      if latency:percentile(mid) ~= 0 then lo = mid else hi = mid end
    end
    top = lo
  end
  local out = {}
  for k, p in ipairs(wanted) do
    out[k] = latency:percentile(p * top / 100)
  end
  return out
end

function done(summary, latency, requests)
  local e = summary.errors
  local p = percentiles(latency, {50, 90, 99})
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, p[1], p[2], p[3], latency.max, latency.mean))
end
