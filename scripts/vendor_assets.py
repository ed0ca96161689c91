#!/usr/bin/env python3
"""Copy the console's front-end libraries from `node_modules/` into the package.

    npm ci && python scripts/vendor_assets.py

The destination, `src/steward/server/web/static/vendor/`, is generated and not kept in git;
`package.json` and `package-lock.json` pin what goes there. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
DESTINATION = ROOT / "src" / "steward" / "server" / "web" / "static" / "vendor"

# package -> (files or folders under the package, copied to vendor/<target>/ by base name)
ASSETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bootstrap": (
        "bootstrap",
        (
            "dist/css/bootstrap.min.css",
            "dist/css/bootstrap.min.css.map",
            "dist/js/bootstrap.bundle.min.js",
            "dist/js/bootstrap.bundle.min.js.map",
            "LICENSE",
        ),
    ),
    "bootstrap-icons": (
        "bootstrap-icons",
        ("font/bootstrap-icons.min.css", "font/fonts", "LICENSE"),
    ),
    "htmx.org": ("htmx", ("dist/htmx.min.js", "LICENSE")),
    "chart.js": (
        "chart.js",
        ("dist/chart.umd.min.js", "dist/chart.umd.min.js.map", "LICENSE.md"),
    ),
    "@xterm/xterm": ("xterm", ("lib/xterm.js", "css/xterm.css", "LICENSE")),
    "@xterm/addon-fit": ("xterm", ("lib/addon-fit.js",)),
    "@xterm/addon-web-links": ("xterm", ("lib/addon-web-links.js",)),
    "asciinema-player": (
        "asciinema-player",
        ("dist/bundle/asciinema-player.min.js", "dist/bundle/asciinema-player.css", "LICENSE"),
    ),
    "codemirror": (
        "codemirror",
        (
            "lib/codemirror.js",
            "lib/codemirror.css",
            "mode/shell",
            "mode/python",
            "mode/javascript",
            "mode/xml",
            "mode/yaml",
            "mode/properties",
            "mode/powershell",
            "mode/nginx",
            "mode/sql",
            "mode/markdown",
            "mode/css",
            "addon/search",
            "addon/dialog",
            "LICENSE",
        ),
    ),
}


def vendor(node_modules: Path, destination: Path) -> list[str]:
    """Replace `destination` with fresh copies; returns `package@version` lines."""
    missing = [name for name in ASSETS if not (node_modules / name / "package.json").is_file()]
    if missing:
        raise SystemExit(f"missing in {node_modules}: {', '.join(missing)} (run `npm ci` first)")
    if destination.exists():
        shutil.rmtree(destination)
    versions = []
    for package, (target, files) in ASSETS.items():
        source_root = node_modules / package
        target_dir = destination / target
        target_dir.mkdir(parents=True, exist_ok=True)
        for relative in files:
            source = source_root / relative
            if source.is_dir():
                shutil.copytree(source, target_dir / source.name)
            elif source.is_file():
                shutil.copy2(source, target_dir / source.name)
            else:
                raise SystemExit(f"{package}: {relative} not found (has the package changed?)")
        version = json.loads((source_root / "package.json").read_text())["version"]
        versions.append(f"{package}@{version}")
    (destination / "VERSIONS.txt").write_text("\n".join(versions) + "\n")
    return versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node-modules", type=Path, default=NODE_MODULES)
    parser.add_argument("--destination", type=Path, default=DESTINATION)
    args = parser.parse_args(argv)
    for line in vendor(args.node_modules, args.destination):
        print(f"vendored {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
