-- GET the list, pages 1 to 10 in turn, with a fixed filter.
-- args: path token query   (query: "" or e.g. "status=delivered")

function init(args)
   path, query = args[1], args[3]
   headers = {["Authorization"] = "Bearer " .. args[2]}
   if query ~= "" then
      query = query .. "&"
   end
end

function request()
   used = used + 1
   return wrk.format("GET", path .. "?" .. query .. "page=" .. ((used - 1) % 10 + 1), headers)
end

function response(status, headers, body)
   count(status, status == 200 and 1 or 0)
end
