-- Requests prepared by Python (signed webhooks), one per line of a file:
--   path <TAB> X-Twilio-Signature <TAB> form body
-- Thread `tid` of `threads` takes lines start+tid, start+tid+threads, ...; when it runs out
-- it starts its lines again (Python sees it in `used` and says so).
-- args: file start threads

function init(args)
   local file, start, threads = args[1], tonumber(args[2]), tonumber(args[3])
   requests = {}
   local i = 0
   for line in io.lines(file) do
      if i >= start and (i - start) % threads == tid then
         local path, signature, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
         requests[#requests + 1] = wrk.format("POST", path, {
            ["Content-Type"] = "application/x-www-form-urlencoded",
            ["X-Twilio-Signature"] = signature,
         }, body)
      end
      i = i + 1
   end
end

function request()
   used = used + 1
   return requests[(used - 1) % #requests + 1]
end

function response(status, headers, body)
   count(status, status == 200 and 1 or 0)
end
