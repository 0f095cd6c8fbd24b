"""Compile the sources of one C extension in parallel (used by scripts/quickfix-wheel.sh).

QuickFIX's Python package is a single extension of 55 C++ sources, and
setuptools' ``build_ext -j`` only runs separate extensions in parallel. With
``PARALLEL_COMPILE_JOBS`` > 1 this replaces ``CCompiler.compile`` so that each
source is compiled in a thread pool, biggest first (the 5.8 MB SWIG wrapper is
the critical path). Loaded through PYTHONPATH, so the build must run with
``--no-build-isolation``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

_JOBS = int(os.environ.get("PARALLEL_COMPILE_JOBS", "0") or 0)


def _parallel_compile(
    self: Any,
    sources: list[str],
    output_dir: str | None = None,
    macros: Any = None,
    include_dirs: Any = None,
    debug: bool = False,
    extra_preargs: Any = None,
    extra_postargs: Any = None,
    depends: Any = None,
) -> list[str]:
    macros, objects, extra_postargs, pp_opts, build = self._setup_compile(
        output_dir, macros, include_dirs, sources, depends, extra_postargs
    )
    cc_args = self._get_cc_args(pp_opts, debug, extra_preargs)
    todo = sorted(
        (obj for obj in objects if obj in build),
        key=lambda obj: os.path.getsize(build[obj][0]),
        reverse=True,
    )

    def one(obj: str) -> None:
        src, ext = build[obj]
        self._compile(obj, src, ext, cc_args, extra_postargs, pp_opts)

    with ThreadPoolExecutor(max_workers=_JOBS) as pool:
        list(pool.map(one, todo))
    return list(objects)


if _JOBS > 1:
    # setuptools makes `distutils` an alias of its own copy: two class objects, patch both.
    import setuptools  # noqa: F401  # pylint: disable=unused-import
    import setuptools._distutils.ccompiler as _vendored

    try:
        import distutils.ccompiler as _aliased
    except ImportError:  # Python 3.12+ without the alias
        _aliased = _vendored
    for _cls in (_aliased.CCompiler, _vendored.CCompiler):
        _cls.compile = _parallel_compile
