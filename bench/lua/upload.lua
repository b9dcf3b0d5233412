-- A chunked upload (Transfer-Encoding: chunked, no Content-Length) of MB megabytes in 1 MiB chunks.
-- wrk.format() would add a Content-Length, so the request is written out here.
-- The size comes from the command line: wrk ... -s upload.lua URL -- 100
local req

function init(args)
  local megabytes = tonumber(args[1]) or 100
  local chunk = string.rep("u", 1024 * 1024)
  local framed = string.format("%x\r\n", #chunk) .. chunk .. "\r\n"
  local parts = {
    "POST " .. wrk.path .. " HTTP/1.1\r\n" ..
    "Host: " .. wrk.host .. ":" .. wrk.port .. "\r\n" ..
    "Content-Type: application/octet-stream\r\n" ..
    "Transfer-Encoding: chunked\r\n\r\n"
  }
  for i = 1, megabytes do
    parts[#parts + 1] = framed
  end
  parts[#parts + 1] = "0\r\n\r\n"
  req = table.concat(parts)
end

function request()
  return req
end
