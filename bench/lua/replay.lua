-- Requests prepared by Python (signed webhooks), one per line of a file:
--   path <TAB> X-Twilio-Signature <TAB> form body
-- Thread `tid` of `threads` takes every `threads`-th line from byte `offset` on (the start
-- of a line), reading as it goes: an init that read the whole file would let the first
-- thread start before the others and before wrk starts its clock. Past the last line it
-- starts again from `offset` (Python sees that in `used` and says so).
-- args: file offset threads

function init(args)
   reader = io.open(args[1], "rb")
   offset, threads = tonumber(args[2]), tonumber(args[3])
   reader:seek("set", offset)
   headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
end

local function next_line()
   local mine
   for k = 0, threads - 1 do
      local line = reader:read("*l")
      if line == nil then
         reader:seek("set", offset)
         return next_line()
      end
      if k == tid then
         mine = line
      end
   end
   return mine
end

function request()
   used = used + 1
   local path, signature, body = next_line():match("^([^\t]*)\t([^\t]*)\t(.*)$")
   headers["X-Twilio-Signature"] = signature
   return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
   count(status, status == 200 and 1 or 0)
end
