#!/usr/bin/python3
"""Golden tests for cairn-cloudinit (spec/cloud-config.md).

Each directory under cases/ is one run:
  args        arguments, one per line; {case} {root} {log} {tmp} are replaced
              (default: --from-file {case}/user-data --root {root} --systemctl-log {log})
  env         optional KEY=VALUE lines added to a clean environment
  huge        optional byte count: {tmp}/big is made as "#cloud-config\n" plus that many 'a's
  user-data   the input, when args use it
  pre/        optional tree copied into the root before the run
  exit        expected exit status
  stdout      expected stdout, exactly (missing = empty)
  log         expected --systemctl-log contents, exactly (missing = empty or absent)
  stderr      optional: substrings that must each appear in stderr, one per line
  tree        expected root after the run: "d MODE path", "f MODE path", "l path -> target"
  expected/   contents of every "f" entry of tree

Run: run_golden.py BINARY CASES_DIR [--update] [case...]. --update rewrites exit, stdout, log,
tree and expected/ from the actual run (review the diff by hand before committing it).
"""
import os
import shutil
import stat
import subprocess
import sys
import tempfile


def snapshot(root):
    entries, contents = [], {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                entries.append("l %s -> %s" % (rel, os.readlink(full)))
            elif stat.S_ISDIR(st.st_mode):
                entries.append("d %04o %s" % (stat.S_IMODE(st.st_mode), rel))
            else:
                entries.append("f %04o %s" % (stat.S_IMODE(st.st_mode), rel))
                with open(full, "rb") as f:
                    contents[rel] = f.read()
    return sorted(entries), contents


def read(path, default=None, mode="rb"):
    try:
        with open(path, mode) as f:
            return f.read()
    except FileNotFoundError:
        return default


def run_case(binary, case, update):
    name = os.path.basename(case)
    tmp = tempfile.mkdtemp(prefix="ci-golden-")
    try:
        root = os.path.join(tmp, "root")
        log = os.path.join(tmp, "systemctl.log")
        if os.path.isdir(os.path.join(case, "pre")):
            shutil.copytree(os.path.join(case, "pre"), root, symlinks=True)
        else:
            os.mkdir(root)
        huge = read(os.path.join(case, "huge"), None, "r")
        if huge is not None:
            with open(os.path.join(tmp, "big"), "wb") as f:
                f.write(b"#cloud-config\n" + b"a" * int(huge))
        args = read(os.path.join(case, "args"), None, "r")
        if args is None:
            args = "--from-file\n{case}/user-data\n--root\n{root}\n--systemctl-log\n{log}\n"
        argv = [a.format(case=case, root=root, log=log, tmp=tmp)
                for a in args.splitlines() if a != ""]
        env = {"PATH": "/nonexistent"}  # nothing may be executed
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        for line in (read(os.path.join(case, "env"), "", "r")).splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                env[k] = v
        p = subprocess.run([binary] + argv, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        actual_log = read(log, b"")
        entries, contents = snapshot(root)
        if update:
            with open(os.path.join(case, "exit"), "w") as f:
                f.write("%d\n" % p.returncode)
            for fname, data in (("stdout", p.stdout), ("log", actual_log)):
                path = os.path.join(case, fname)
                if data:
                    with open(path, "wb") as f:
                        f.write(data)
                elif os.path.exists(path):
                    os.unlink(path)
            with open(os.path.join(case, "tree"), "w") as f:
                f.write("".join(e + "\n" for e in entries))
            exp = os.path.join(case, "expected")
            shutil.rmtree(exp, ignore_errors=True)
            for rel, data in contents.items():
                os.makedirs(os.path.dirname(os.path.join(exp, rel)), exist_ok=True)
                with open(os.path.join(exp, rel), "wb") as f:
                    f.write(data)
            return []
        errors = []
        want_exit = int(read(os.path.join(case, "exit"), "0", "r").strip())
        if p.returncode != want_exit:
            errors.append("exit %d, want %d" % (p.returncode, want_exit))
        want_out = read(os.path.join(case, "stdout"), b"")
        if p.stdout != want_out:
            errors.append("stdout %r, want %r" % (p.stdout, want_out))
        want_log = read(os.path.join(case, "log"), b"")
        if actual_log != want_log:
            errors.append("log %r, want %r" % (actual_log, want_log))
        for bad in (b"AddressSanitizer", b"LeakSanitizer", b"runtime error:"):
            if bad in p.stderr:
                errors.append("sanitizer report in stderr")
        for sub in read(os.path.join(case, "stderr"), "", "r").splitlines():
            if sub and sub.encode() not in p.stderr:
                errors.append("stderr lacks %r" % sub)
        want_tree = read(os.path.join(case, "tree"), "", "r").splitlines()
        if entries != want_tree:
            missing = sorted(set(want_tree) - set(entries))
            extra = sorted(set(entries) - set(want_tree))
            errors.append("tree differs: missing %s extra %s" % (missing, extra))
        for rel, data in contents.items():
            want = read(os.path.join(case, "expected", rel))
            if want is not None and want != data:
                errors.append("%s: %r, want %r" % (rel, data, want))
        # Nothing may be written outside the root.
        outside = sorted(set(os.listdir(tmp)) - {"root", "systemctl.log", "big"})
        if outside:
            errors.append("written outside the root: %s" % outside)
        if errors:
            errors.append("stderr was: %s" % p.stderr.decode(errors="replace"))
        return ["%s: %s" % (name, e) for e in errors]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    argv = sys.argv[1:]
    update = "--update" in argv
    argv = [a for a in argv if a != "--update"]
    binary, cases_dir, only = os.path.abspath(argv[0]), os.path.abspath(argv[1]), argv[2:]
    cases = sorted(d for d in os.listdir(cases_dir)
                   if os.path.isdir(os.path.join(cases_dir, d)) and (not only or d in only))
    failures = []
    for c in cases:
        failures += run_case(binary, os.path.join(cases_dir, c), update)
    for f in failures:
        print("FAIL " + f)
    print("%d cases, %d failures" % (len(cases), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
