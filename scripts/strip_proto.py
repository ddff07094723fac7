#!/usr/bin/env python3
"""Copies one of etcd 3.4's .proto files with what protoc-c cannot read taken out.

etcd's files import gogoproto (Go code-generation hints) and google/api/annotations (the
grpc-gateway's HTTP routes). Neither changes the wire format: gogoproto options only shape Go
structs, and the http options only tell the gateway generator which URL maps to which method
(cairn's gateway carries its own route table). This removes those two imports, every
`option (gogoproto.*)` line, `[(gogoproto.*) = ...]` field options and the
`option (google.api.http) = { ... };` blocks, and leaves everything else byte for byte.

usage: strip_proto.py IN OUT
"""
import re
import sys


def strip(text: str) -> str:
    text = re.sub(r'^\s*import\s+"(gogoproto/gogo|google/api/annotations)\.proto";[^\n]*\n', "",
                  text, flags=re.M)
    text = re.sub(r'^\s*option\s+\(gogoproto\.[^;]*;[^\n]*\n', "", text, flags=re.M)
    # Field options: drop gogoproto entries; drop the brackets when nothing is left.
    def field_opts(m):
        opts = [o.strip() for o in m.group(1).split(",")]
        keep = [o for o in opts if not o.startswith("(gogoproto.")]
        return " [" + ", ".join(keep) + "]" if keep else ""
    text = re.sub(r'\s*\[([^\]]*\(gogoproto\.[^\]]*)\]', field_opts, text)
    # option (google.api.http) = { ... }; with nested braces of one level at most.
    out, i = [], 0
    pat = re.compile(r'[ \t]*option\s*\(google\.api\.http\)\s*=\s*\{')
    while True:
        m = pat.search(text, i)
        if not m:
            out.append(text[i:])
            break
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while depth and j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        if depth:
            sys.exit("strip_proto: unterminated google.api.http block")
        j = text.index(";", j) + 1
        if j < len(text) and text[j] == "\n":
            j += 1
        i = j
    text = "".join(out)
    if "gogoproto" in text or "google.api" in text:
        sys.exit("strip_proto: an option was left that protoc-c cannot read")
    return text


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        f.write(strip(text))


if __name__ == "__main__":
    main()
