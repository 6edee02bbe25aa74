#!/usr/bin/env python3
"""Build all-MiniLM-L6-v2 as a dynamically quantized int8 ONNX file.

Run by models/fetch.py inside models/.venv (pinned onnx, onnxruntime, numpy):

    minilm_build.py SAFETENSORS CONFIG VOCAB OUT_DIR [BASELINE_ONNX]

1. Reads the fp32 weights from the safetensors file (parsed here: an 8-byte
   header length, a JSON header, raw little-endian tensors).
2. Writes the BERT encoder as an ONNX graph with `onnx.helper`: inputs
   input_ids, attention_mask, token_type_ids (int64, [batch, sequence]),
   output last_hidden_state (float, [batch, sequence, 384]); Deja mean-pools
   and normalises it. No torch, no exporter.
3. Checks that graph against a forward pass written in plain numpy.
4. Quantizes it with onnxruntime's quantize_dynamic: weights stored as int8,
   activations quantized per call, so the matrix products run as integer
   kernels (an int8-in-storage file that dequantizes its weights on every call
   is no faster than fp32).
5. Checks the int8 model's sentence vectors against the fp32 graph's, and,
   when given, against an independently exported baseline ONNX file.

Any check below its bound exits non-zero and leaves no model behind.
"""

import json
import logging
import math
import pathlib
import sys
import tempfile
import unicodedata

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

# Bounds on the cosine of each sentence's vector against the reference's.
FP32_VS_NUMPY = 0.9999
INT8_VS_FP32 = 0.98
INT8_VS_FP32_MEAN = 0.99
FP32_VS_BASELINE = 0.99

# Fixed parity sentences: short and long, several domains, punctuation,
# numbers and one text long enough to pad the others in its batch.
SENTENCES = [
    "What time does the store open on Saturdays?",
    "When do you open on the weekend?",
    "How do I reset my password?",
    "I forgot my password and cannot log in to my account.",
    "Cancel my subscription.",
    "Don't cancel my subscription, just pause it for two months.",
    "What is the baggage allowance for economy flights to Lisbon?",
    "Can I change my flight from March 3 to March 5 without a fee?",
    "Why was I charged $12.99 twice on my credit card statement?",
    "How much does international roaming cost per day in Canada?",
    "Is the 256GB model in stock at the downtown branch?",
    "My order #4821 arrived damaged; how do I return it?",
    "How do I export my workspace data to CSV?",
    "What's the difference between the Pro and Enterprise plans?",
    "Transfer 500 euros from savings to checking tomorrow.",
    "The quick brown fox jumps over the lazy dog.",
    "hi",
    "Please explain, step by step and in detail, how the monthly invoice is calculated when a team adds "
    "three seats in the middle of a billing cycle, removes one seat a week later, and switches from "
    "annual to monthly billing before the renewal date, including any prorated credits.",
]


def read_safetensors(path):
    data = pathlib.Path(path).read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    dtypes = {"F32": np.float32, "I64": np.int64}
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[8 + n + start : 8 + n + end]
        tensors[name] = np.frombuffer(raw, dtype=dtypes[info["dtype"]]).reshape(info["shape"]).copy()
    return tensors


# --- tokenizer (BERT uncased: the same rules as tokenizer.json, enough for the sentences above)


def wordpiece(vocab, text, max_len=256):
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    words, cur = [], ""
    for c in text:
        if c.isspace():
            words.append(cur)
            cur = ""
        elif unicodedata.category(c).startswith("P") or (c.isascii() and not c.isalnum()):
            words += [cur, c]
            cur = ""
        else:
            cur += c
    words.append(cur)
    ids = [vocab["[CLS]"]]
    for w in filter(None, words):
        pieces, start = [], 0
        while start < len(w):
            end = len(w)
            while end > start and (("##" if start else "") + w[start:end]) not in vocab:
                end -= 1
            if end == start:
                pieces = [vocab["[UNK]"]]
                break
            pieces.append(vocab[("##" if start else "") + w[start:end]])
            start = end
        ids += pieces
    return ids[: max_len - 1] + [vocab["[SEP]"]]


def batch(vocab, texts):
    seqs = [wordpiece(vocab, t) for t in texts]
    width = max(map(len, seqs))
    ids = np.zeros((len(seqs), width), np.int64)
    mask = np.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def sentence_vectors(hidden, mask):
    m = mask[:, :, None].astype(np.float32)
    v = (hidden * m).sum(1) / m.sum(1)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# --- the numpy reference forward pass


def layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def erf(x):
    # Abramowitz & Stegun 7.1.26: absolute error below 1.5e-7, far under fp32 parity.
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


def reference_forward(w, cfg, inputs):
    ids, mask, types = inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]
    heads, eps = cfg["num_attention_heads"], cfg["layer_norm_eps"]
    seq = ids.shape[1]
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][np.arange(seq)][None]
        + w["embeddings.token_type_embeddings.weight"][types]
    )
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    bias = (1.0 - mask[:, None, None, :].astype(np.float32)) * np.finfo(np.float32).min
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."

        def dense(h, name):
            return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        def split(h):
            b, s, d = h.shape
            return h.reshape(b, s, heads, d // heads).transpose(0, 2, 1, 3)

        q, k, v = (split(dense(x, f"attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(q.shape[-1]) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        ctx = (scores / scores.sum(-1, keepdims=True)) @ v
        ctx = ctx.transpose(0, 2, 1, 3).reshape(x.shape)
        x = layer_norm(
            dense(ctx, "attention.output.dense") + x,
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
            eps,
        )
        h = dense(x, "intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
        x = layer_norm(
            dense(h, "output.dense") + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps
        )
    return x.astype(np.float32)


# --- the ONNX graph


class Graph:
    def __init__(self):
        self.nodes, self.inits = [], []

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type, inputs, out, **attrs):
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def build_graph(w, cfg):
    g = Graph()
    hidden, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    f32 = lambda v: np.array(v, np.float32)  # noqa: E731
    i64 = lambda v: np.array(v, np.int64)  # noqa: E731
    one, half, sqrt2 = g.const("one", f32(1.0)), g.const("half", f32(0.5)), g.const("sqrt2", f32(math.sqrt(2.0)))
    g.const("scale", f32(1.0 / math.sqrt(hidden // heads)))
    g.const("heads_shape", i64([0, 0, heads, hidden // heads]))
    g.const("hidden_shape", i64([0, 0, hidden]))

    # Embeddings: word + position (0..sequence) + token type, then LayerNorm.
    # Positions 0..sequence are the first rows of the table: a Slice, not a
    # Range and a Gather (which ONNX Runtime 1.31's optimizer rewrites wrongly).
    g.op("Shape", ["input_ids"], "seq_len", start=1, end=2)
    word = g.op("Gather", [g.const("word_embeddings", w["embeddings.word_embeddings.weight"]), "input_ids"], "word")
    pos_table = g.const("position_embeddings", w["embeddings.position_embeddings.weight"])
    pos = g.op("Slice", [pos_table, g.const("zero64", i64([0])), "seq_len", g.const("axis0", i64([0]))], "pos")
    typ = g.op(
        "Gather", [g.const("token_type_embeddings", w["embeddings.token_type_embeddings.weight"]), "token_type_ids"], "typ"
    )
    g.op("Add", [word, pos], "emb_wp")
    g.op("Add", ["emb_wp", typ], "emb_sum")
    x = g.op(
        "LayerNormalization",
        ["emb_sum", g.const("emb_ln_g", w["embeddings.LayerNorm.weight"]), g.const("emb_ln_b", w["embeddings.LayerNorm.bias"])],
        "emb",
        axis=-1,
        epsilon=eps,
    )

    # Padding positions get the most negative float added to their scores.
    g.op("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    g.op("Sub", [one, "mask_f"], "mask_inv")
    g.op("Mul", ["mask_inv", g.const("neg_inf", f32(np.finfo(np.float32).min))], "mask_neg")
    g.op("Unsqueeze", ["mask_neg", g.const("axes12", i64([1, 2]))], "mask_bias")

    for i in range(cfg["num_hidden_layers"]):
        p, n = f"encoder.layer.{i}.", f"l{i}_"

        def dense(inp, name, out):
            wt = g.const(n + name + "_w", w[p + name + ".weight"].T)  # [in, out] for MatMul
            mm = g.op("MatMul", [inp, wt], out + "_mm")
            return g.op("Add", [mm, g.const(n + name + "_b", w[p + name + ".bias"])], out)

        def layer_norm_node(inp, name, out):
            return g.op(
                "LayerNormalization",
                [inp, g.const(n + name + "_g", w[p + name + ".weight"]), g.const(n + name + "_beta", w[p + name + ".bias"])],
                out,
                axis=-1,
                epsilon=eps,
            )

        proj = {}
        for h in ("query", "key", "value"):
            d = dense(x, f"attention.self.{h}", n + h)
            r = g.op("Reshape", [d, "heads_shape"], n + h + "_heads")
            perm = [0, 2, 3, 1] if h == "key" else [0, 2, 1, 3]
            proj[h] = g.op("Transpose", [r], n + h + "_t", perm=perm)
        g.op("MatMul", [proj["query"], proj["key"]], n + "scores_raw")
        g.op("Mul", [n + "scores_raw", "scale"], n + "scores_scaled")
        g.op("Add", [n + "scores_scaled", "mask_bias"], n + "scores")
        g.op("Softmax", [n + "scores"], n + "probs", axis=-1)
        g.op("MatMul", [n + "probs", proj["value"]], n + "ctx_heads")
        g.op("Transpose", [n + "ctx_heads"], n + "ctx_t", perm=[0, 2, 1, 3])
        g.op("Reshape", [n + "ctx_t", "hidden_shape"], n + "ctx")
        attn = dense(n + "ctx", "attention.output.dense", n + "attn_out")
        g.op("Add", [attn, x], n + "attn_res")
        x = layer_norm_node(n + "attn_res", "attention.output.LayerNorm", n + "attn_ln")
        inter = dense(x, "intermediate.dense", n + "inter")
        # Exact GELU, 0.5·h·(1 + erf(h/√2)), the pattern ONNX Runtime fuses.
        g.op("Div", [inter, sqrt2], n + "gelu_div")
        g.op("Erf", [n + "gelu_div"], n + "gelu_erf")
        g.op("Add", [n + "gelu_erf", one], n + "gelu_add")
        g.op("Mul", [inter, n + "gelu_add"], n + "gelu_mul")
        g.op("Mul", [n + "gelu_mul", half], n + "gelu")
        out = dense(n + "gelu", "output.dense", n + "ffn_out")
        g.op("Add", [out, x], n + "ffn_res")
        x = layer_norm_node(n + "ffn_res", "output.LayerNorm", n + "out")

    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="last_hidden_state"))
    dims = ["batch", "sequence"]
    inputs = [helper.make_tensor_value_info(name, TensorProto.INT64, dims) for name in ("input_ids", "attention_mask", "token_type_ids")]
    output = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, dims + [hidden])
    graph = helper.make_graph(g.nodes, "all-MiniLM-L6-v2", inputs, [output], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="deja-models")
    model.ir_version = 8  # readable by every ONNX Runtime since 1.10
    onnx.checker.check_model(model, full_check=True)
    return model


# --- checks


def run_onnx(path, inputs):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    return session.run(["last_hidden_state"], {k: v for k, v in inputs.items() if k in names})[0]


def vectors_of(fn, vocab, alone=False):
    # Two batches of different widths, so padding is exercised in both; or
    # one sentence per pass, as Deja runs the int8 model (its activation
    # scales are per call, so batching would move a sentence's vector).
    halves = [[s] for s in SENTENCES] if alone else [SENTENCES[: len(SENTENCES) // 2], SENTENCES[len(SENTENCES) // 2 :]]
    out = []
    for texts in halves:
        inputs = batch(vocab, texts)
        out.append(sentence_vectors(fn(inputs), inputs["attention_mask"]))
    return np.concatenate(out)


def quantize(fp32, int8):
    """int8 weights, one scale per output channel; activations quantized per
    call (uint8). Only products with a constant weight are quantized (not the
    attention scores), and layer 0's feed-forward output projection stays
    fp32: of the 36 weight products it is the one whose int8 error moves the
    sentence vectors most (on the parity sentences in two batches, mean cosine to fp32
    0.9932 with it quantized, 0.9943 without; keeping any other one fp32
    gains at most 0.0005)."""
    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's pre-processing advice
    quantize_dynamic(
        fp32,
        int8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=False,
        nodes_to_exclude=["l0_ffn_out_mm"],
        extra_options={"MatMulConstBOnly": True},
    )


def check(label, got, want, bound, mean_bound=None):
    cos = (got * want).sum(1)
    worst, mean = float(cos.min()), float(cos.mean())
    print(f"build: {label}: cosine min {worst:.5f} (bound {bound}), mean {mean:.5f}", file=sys.stderr)
    if worst < bound:
        sys.exit(f"build: {label} below {bound}: {SENTENCES[int(cos.argmin())]!r}")
    if mean_bound is not None and mean < mean_bound:
        sys.exit(f"build: {label}: mean cosine {mean:.5f} below {mean_bound}")


def main():
    safetensors, config, vocab_file, out_dir = (pathlib.Path(a) for a in sys.argv[1:5])
    baseline = pathlib.Path(sys.argv[5]) if len(sys.argv) > 5 else None
    cfg = json.loads(config.read_text())
    vocab = {t: i for i, t in enumerate(vocab_file.read_text(encoding="utf-8").splitlines())}
    weights = read_safetensors(safetensors)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = pathlib.Path(tmp) / "fp32.onnx"
        int8 = pathlib.Path(tmp) / "int8.onnx"
        onnx.save(build_graph(weights, cfg), fp32)
        want = vectors_of(lambda x: reference_forward(weights, cfg, x), vocab)
        got = vectors_of(lambda x: run_onnx(fp32, x), vocab)
        check("fp32 graph vs numpy reference", got, want, FP32_VS_NUMPY)
        if baseline is not None:
            check("fp32 graph vs baseline export", vectors_of(lambda x: run_onnx(baseline, x), vocab), got, FP32_VS_BASELINE)
        quantize(fp32, int8)
        int8_vectors = vectors_of(lambda x: run_onnx(int8, x), vocab, alone=True)
        check("int8 vs fp32 graph", int8_vectors, got, INT8_VS_FP32, INT8_VS_FP32_MEAN)
        out_dir.mkdir(parents=True, exist_ok=True)
        part = out_dir / "model.onnx.part"
        part.write_bytes(int8.read_bytes())
        part.replace(out_dir / "model.onnx")  # atomic: a half-written file is never used


if __name__ == "__main__":
    main()
