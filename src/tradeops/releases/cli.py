"""``tradeops release``: build and verify release artifacts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tradeops.cli.output import emit, fail
from tradeops.releases.artifact import FAULT_MODES, ArtifactError, build_artifact
from tradeops.releases.manifest import Manifest, ManifestError, verify_tree


def _cmd_build(args: argparse.Namespace) -> int:
    try:
        payload = Path(args.payload) if args.payload else None
        built = build_artifact(
            args.version, Path(args.output), fault_mode=args.fault_mode, payload=payload
        )
    except ArtifactError as exc:
        return fail(str(exc), 2)
    data = built.as_dict()
    human = (
        f"built {data['path']}\n"
        f"  version          {data['version']}\n"
        f"  files            {data['files']}\n"
        f"  size             {data['size_bytes']} bytes\n"
        f"  sha256           {data['sha256']}\n"
        f"  manifest digest  {data['manifest_digest']}"
    )
    emit(data, args.json, human)
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    root = Path(args.release_dir)
    try:
        manifest = Manifest.load(root)
        result = verify_tree(root, manifest, ignore=frozenset(args.link))
    except ManifestError as exc:
        return fail(str(exc), 2)
    data: dict[str, Any] = {
        "release_dir": str(root),
        "version": manifest.version,
        "manifest_digest": manifest.digest,
        "ok": result.ok,
        "missing": result.missing,
        "extra": result.extra,
        "mismatched": result.mismatched,
    }
    emit(data, args.json, f"{root}: {result.describe()}")
    return 0 if result.ok else 1


def register(subparsers: Any) -> None:
    """Add ``tradeops release``."""
    parser = subparsers.add_parser("release", help="build and verify release artifacts")
    sub = parser.add_subparsers(dest="release_command", metavar="ACTION", required=True)

    build = sub.add_parser("build", help="build a release artifact (tar.gz + MANIFEST)")
    build.add_argument("--version", required=True, help="release version, e.g. 1.4.2")
    build.add_argument("--output", default="build/releases", help="output directory")
    build.add_argument(
        "--fault-mode",
        default="none",
        choices=FAULT_MODES,
        help="bake a strategy fault mode into the release defaults (drills and demos)",
    )
    build.add_argument("--payload", help="directory of data files shipped under payload/")
    build.add_argument("--json", action="store_true", help="print JSON")
    build.set_defaults(handler=_cmd_build)

    verify = sub.add_parser("verify", help="verify an unpacked release against its MANIFEST")
    verify.add_argument("release_dir", help="directory holding MANIFEST")
    verify.add_argument(
        "--link",
        action="append",
        default=["log", "secrets", "etc"],
        help="name of a shared link staging added (default: log, secrets, etc)",
    )
    verify.add_argument("--json", action="store_true", help="print JSON")
    verify.set_defaults(handler=_cmd_verify)
