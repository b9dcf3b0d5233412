-- Pipelined plaintext: each connection writes DEPTH requests at once and reads DEPTH responses.
-- The depth comes from the command line: wrk ... -s pipeline.lua URL -- 16
local batch

function init(args)
  local depth = tonumber(args[1]) or 16
  local one = wrk.format()
  local parts = {}
  for i = 1, depth do
    parts[i] = one
  end
  batch = table.concat(parts)
end

function request()
  return batch
end
