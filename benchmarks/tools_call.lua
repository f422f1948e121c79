-- wrk script: POST one MCP tools/call over and over, then print the figures as one JSON line.
-- By hand: wrk -t1 -c16 -d10s --latency -s benchmarks/tools_call.lua http://127.0.0.1:8080/mcp
-- `python -m benchmarks` passes its own request body after `--`, then the request's headers
-- as "Name: value" (they replace the defaults below), so Python and wrk always agree.

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2025-11-25"
wrk.body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"x":1}}}'

function init(args)
   if args[1] then wrk.body = args[1] end
   if args[2] then
      wrk.headers = {Host = wrk.headers["Host"]}  -- wrk sets Host before init(); keep it
      for i = 2, #args do
         local name, value = string.match(args[i], "^([^:]+):%s*(.*)$")
         wrk.headers[name] = value
      end
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p75":%d,"p90":%d,"p99":%d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(75), latency:percentile(90), latency:percentile(99)))
end
