-- wrk script: the cn_loadgen --op get load (see common.lua beside this file for the arguments).
cn_op = "get"
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")
