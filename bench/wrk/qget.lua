-- wrk script: the cn_loadgen --op qget load (see common.lua beside this file for the arguments).
cn_op = "qget"
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "common.lua")
