#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Builds cffi bindings of the installed headers the way vaccel-python's build does, then
uses them against libvaccel.so.

vaccel-python runs the preprocessor over `#include "vaccel.h"`, keeps the lines that come
from vAccel's own headers, drops `extern` lines, `static inline` function bodies and
deprecated declarations, and turns every line naming an atomic type or a `pthread_mutex_t`
into `...;` (an opaque stretch of a struct, legal only inside one). A header that breaks any
of these steps breaks the Python bindings, so this script repeats them, compiles the module
and calls the library through it.

Usage: cffi_check.py INCLUDE_DIR LIB_DIR WORK_DIR (VACCEL_PLUGINS=noop in the environment).
"""

import importlib
import os
import re
import subprocess
import sys

import cffi

MODULE = "_vaccel_cffi_check"
UMBRELLA = '#include "vaccel.h"\n'
# Upstream's layout (x86_64, glibc): the size a Python caller allocates for a session.
UPSTREAM_SESSION_SIZE = 4264

LINEMARKER = re.compile(r'^# \d+ "(.*?)"')
OPAQUE = re.compile(r"\b(_Atomic|atomic_\w+|pthread_mutex_t)\b")
EXTERN = re.compile(r"\bextern\b")
STATIC_INLINE = re.compile(r"\bstatic\s+inline\b")
ATTRIBUTE = re.compile(r"__attribute__\s*\(\(")


def preprocess(include_dir):
    cc = os.environ.get("CC", "cc")
    proc = subprocess.run(
        [cc, "-I", include_dir, "-E", "-"],
        input=UMBRELLA,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout


def skip_block(src, start):
    """The index just past the brace block opening at or after `start` (and any `;`)."""
    open_at = src.find("{", start)
    if open_at < 0:
        return start
    depth, i = 0, open_at
    while i < len(src):
        if src[i] == "{":
            depth += 1
        elif src[i] == "}":
            depth -= 1
            if depth == 0:
                i += 1
                break
        i += 1
    while i < len(src) and src[i] == ";":
        i += 1
    return i


def rewrite(src, pattern, span):
    """`src` with each match of `pattern` and what follows it replaced: `span(src, match)`
    gives the replacement and the index where the text resumes."""
    out, i = [], 0
    while m := pattern.search(src, i):
        replacement, end = span(src, m)
        out += [src[i : m.start()], replacement]
        i = end
    return "".join(out) + src[i:]


def drop_static_inline(src):
    return rewrite(src, STATIC_INLINE, lambda s, m: ("", skip_block(s, m.end())))


def drop_deprecated_attributes(src):
    """Removes `__attribute__((deprecated...))`, keeping the declaration it decorates."""

    def span(s, m):
        depth, j = 2, m.end()
        while j < len(s) and depth:
            depth += {"(": 1, ")": -1}.get(s[j], 0)
            j += 1
        attribute = s[m.start() : j]
        return ("" if "deprecated" in attribute else attribute), j

    return rewrite(src, ATTRIBUTE, span)


def from_vaccel_header(path, include_dir):
    """Whether a line marker's file is one vaccel-python keeps: one whose installed path names
    vaccel (`<prefix>/include/vaccel.h`, `<prefix>/include/vaccel/...`), where the prefix
    itself (e.g. /usr/local) does not."""
    rel = os.path.relpath(os.path.realpath(path), include_dir)
    return not rel.startswith("..") and "vaccel" in rel


def sanitize(preprocessed, include_dir):
    include_dir = os.path.realpath(include_dir)
    src = drop_static_inline(drop_deprecated_attributes(preprocessed))
    kept, ours = [], False
    for line in src.splitlines():
        if line.startswith("#"):
            m = LINEMARKER.match(line)
            if m:
                ours = from_vaccel_header(m.group(1), include_dir)
            continue
        if not ours or EXTERN.search(line):
            continue
        if OPAQUE.search(line):
            indent = line[: len(line) - len(line.lstrip())]
            kept.append(indent + "...;")
            continue
        kept.append(line)
    return "\n".join(kept)


def expect(what, got, want):
    if got != want:
        sys.exit(f"cffi check: {what}: got {got}, want {want}")


def main():
    # The compiler runs in the work directory: every path absolute.
    include_dir, lib_dir, work_dir = (os.path.abspath(p) for p in sys.argv[1:4])
    cdef = sanitize(preprocess(include_dir), include_dir)
    with open(os.path.join(work_dir, "cdef.h"), "w", encoding="utf-8") as f:
        f.write(cdef)

    builder = cffi.FFI()
    builder.cdef(cdef)
    builder.set_source(
        MODULE,
        UMBRELLA,
        include_dirs=[include_dir],
        library_dirs=[lib_dir],
        libraries=["vaccel"],
        extra_link_args=[f"-Wl,-rpath,{lib_dir}"],
    )
    builder.compile(tmpdir=work_dir, verbose=False)

    sys.path.insert(0, work_dir)
    module = importlib.import_module(MODULE)
    ffi, lib = module.ffi, module.lib

    expect("sizeof(struct vaccel_session)", ffi.sizeof("struct vaccel_session"),
           UPSTREAM_SESSION_SIZE)
    sess = ffi.new("struct vaccel_session *")
    expect("vaccel_session_init", lib.vaccel_session_init(sess, 0), 0)
    if sess.id <= 0:
        sys.exit(f"cffi check: session id {sess.id} after vaccel_session_init")
    expect("vaccel_noop", lib.vaccel_noop(sess), 0)
    expect("vaccel_session_release", lib.vaccel_session_release(sess), 0)
    print(f"cffi: {len(cdef.splitlines())} cdef lines; session {ffi.sizeof(sess[0])} bytes; "
          "init, noop, release: ok")


if __name__ == "__main__":
    main()
