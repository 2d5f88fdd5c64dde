-- One batch of `size` distinct messages per request, each item with its own key.
-- args: path token run size

function init(args)
   path, run, size = args[1], args[3], tonumber(args[4])
   headers = {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. args[2],
   }
   prefix = run .. "-" .. tid .. "-"
end

function request()
   used = used + 1
   local items = {}
   for i = 1, size do
      local key = prefix .. used .. "-" .. i
      items[i] = string.format(
         '{"channel":"sms","to":"+1202555%04d","body":"benchmark message %s",' ..
         '"idempotency_key":"%s"}', (used * size + i) % 10000, key, key)
   end
   return wrk.format("POST", path, headers, '{"messages":[' .. table.concat(items, ",") .. "]}")
end

function response(status, headers, body)
   local accepted = 0
   if status == 202 then
      -- Items recorded now (201) or before (200); refused items say 422.
      local _, n = string.gsub(body, '"status"%s*:%s*20[01]', "")
      accepted = n
   end
   count(status, accepted)
end
