-- One send per request, each distinct: its own Idempotency-Key and body.
-- args: path token run mode   (mode: sync, or async for Prefer: respond-async)

function init(args)
   path, run, mode = args[1], args[3], args[4]
   headers = {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. args[2],
   }
   if mode == "async" then
      headers["Prefer"] = "respond-async"
   end
   prefix = run .. "-" .. tid .. "-"
end

function request()
   used = used + 1
   local key = prefix .. used
   headers["Idempotency-Key"] = key
   local body = string.format(
      '{"channel":"sms","to":"+1202555%04d","body":"benchmark message %s"}',
      (used * 7 + tid) % 10000, key)
   return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
   local accepted = 0
   if (mode == "async" and status == 202) or (mode ~= "async" and status == 201) then
      accepted = 1
   end
   count(status, accepted)
end
