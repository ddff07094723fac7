-- wrk script: the cn_loadgen --op put load (see common.lua beside this file for the arguments).
cn_op = "put"
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")
