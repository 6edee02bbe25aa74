#!/usr/bin/env python3
"""Build EmbeddingGemma-300M as a dynamically quantized int8 ONNX file.

Run by models/fetch.py inside models/.venv (pinned onnx, onnxruntime, numpy,
tokenizers):

    gemma_build.py SOURCE_DIR OUT_DIR

SOURCE_DIR is the unpacked sentence-transformers folder (model.safetensors,
config.json, tokenizer files, 1_Pooling, 2_Dense, 3_Dense); OUT_DIR receives
model.onnx and deja.json (fetch.py copies the tokenizer files beside them).

1. Checks the sentence-transformers pipeline is the one the graph assumes:
   Transformer, mean pooling over every token the mask keeps (prompt
   included), two bias-free linear Dense layers, Normalize; and that the
   tokenizer wraps a text in <bos> ... <eos> the way sentence-transformers
   calls it.
2. Writes the Gemma 3 bidirectional encoder as an ONNX graph with
   `onnx.helper` from the fp32 safetensors weights: inputs input_ids and
   attention_mask (int64, [batch, sequence]), output last_hidden_state
   (float, [batch, sequence, 768]). Mean pooling and both Dense layers are
   linear, so their product (768x768) is applied to every token inside the
   graph: the masked mean of its output, normalised, is sentence-transformers'
   sentence vector. No torch, no exporter.
3. Checks that graph against a forward pass written in plain numpy, and
   against numbers the model's authors published with it.
4. Stores the embedding table as int8 with one scale per row and quantizes the
   matrix products with onnxruntime's quantize_dynamic (int8 weights per
   output channel, activations quantized per call).
5. Checks the int8 model's sentence vectors against the fp32 graph's, with the
   similarity prompt Deja prepends.

Any check below its bound exits non-zero and leaves no model behind.
"""

import json
import logging
import math
import mmap
import pathlib
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic
from tokenizers import AddedToken, Tokenizer

NAME = "EmbeddingGemma-300M"
# The prompt Deja prepends to every text: the model card's prompt for
# sentence similarity ("STS" in config_sentence_transformers.json).
PROMPT_NAME = "STS"
PROMPT = "task: sentence similarity | query: "
# Tokens (prompt, <bos> and <eos> included) Deja should let the model read of
# one text: 256 holds a long support question with its prompt, keeps every
# sliding-window layer's window (±256) unrestricted, and bounds the cost.
WINDOW = 256

# Bounds on the cosine of each sentence's vector against the reference's.
FP32_VS_NUMPY = 0.9999
INT8_VS_FP32 = 0.98
INT8_VS_FP32_MEAN = 0.99
# Bound on the distance to the published numbers (printed to 4 decimals,
# computed by the authors with torch on their hardware).
PUBLISHED_TOLERANCE = 0.002

# Fixed parity sentences: support questions in English, Chinese, Japanese,
# Spanish and German, paraphrases and near-misses, short and long.
SENTENCES = [
    "What time does the store open on Saturdays?",
    "When do you open on the weekend?",
    "How do I reset my password?",
    "I forgot my password and cannot log in to my account.",
    "Cancel my subscription.",
    "Don't cancel my subscription, just pause it for two months.",
    "Why was I charged $12.99 twice on my credit card statement?",
    "My order #4821 arrived damaged; how do I return it?",
    "hi",
    "如何重置我的密码？",
    "我忘记密码了，登录不了账户。",
    "你们周末几点开门？",
    "请取消我的订阅。",
    "パスワードを忘れてしまいました。どうすればいいですか？",
    "注文した商品がまだ届いていません。",
    "¿Cómo puedo cambiar la dirección de envío de mi pedido?",
    "¿A qué hora abren los sábados?",
    "Wie kann ich mein Abonnement kündigen?",
    "Meine Rechnung ist doppelt abgebucht worden, was kann ich tun?",
    "Please explain, step by step and in detail, how the monthly invoice is calculated when a team adds "
    "three seats in the middle of a billing cycle, removes one seat a week later, and switches from "
    "annual to monthly billing before the renewal date, including any prorated credits.",
]

# Longer than a sliding-window layer's window (more than 257 tokens), so the
# fp32 graph's window mask is checked against the reference's too.
LONG_TEXT = " ".join(
    f"Ticket {i}: the customer reports that the mobile app logs them out every few minutes, that "
    f"the password reset email arrives late, and that the invoice for March lists {i} extra seats."
    for i in range(12)
)

# Published with the model (README.md and notebook.ipynb in the same folder):
# (prompt, texts, expected values).
PUBLISHED_SIMILARITIES = [
    ("", ("The chef prepared a delicious meal for the guests.", "A tasty dinner was cooked by the chef for the visitors."), 0.8002148),
    ("", ("She is an expert in machine learning.", "He has a deep interest in artificial intelligence."), 0.45417833),
    ("", ("The weather in Tokyo is sunny today.", "I need to buy groceries for the week."), 0.22262995),
    (PROMPT, ("apple", "banana"), 0.75102395),
    (PROMPT, ("apple", "car"), 0.6684626),
]
# The first and last three components of "apple"'s vector, without prompt.
PUBLISHED_APPLE = ([-0.18476306, 0.00167681, 0.03773484], [-0.07996225, -0.02348064, 0.00976741])
PUBLISHED_RETRIEVAL = (
    "task: search result | query: Which planet is known as the Red Planet?",
    [
        "title: none | text: Venus is often called Earth's twin because of its similar size and proximity.",
        "title: none | text: Mars, known for its reddish appearance, is often referred to as the Red Planet.",
        "title: none | text: Jupiter, the largest planet in our solar system, has a prominent red spot.",
        "title: none | text: Saturn, famous for its rings, is sometimes mistaken for the Red Planet.",
    ],
    [0.3011, 0.6359, 0.4930, 0.4889],
)


def read_safetensors(path):
    """Tensors as read-only arrays over a memory map: the 1.2 GB file is not
    copied. The format: an 8-byte header length, a JSON header, raw
    little-endian tensors."""
    with open(path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            sys.exit(f"build: {path}: {name} is {info['dtype']}, expected F32")
        start, end = info["data_offsets"]
        count = (end - start) // 4
        tensors[name] = np.frombuffer(data, np.float32, count, 8 + n + start).reshape(info["shape"])
    return tensors


# --- the sentence-transformers pipeline and the tokenizer


def check_pipeline(src):
    """The graph folds pooling and the Dense layers into one linear map; that
    holds only for this exact pipeline, so anything else is refused."""
    modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((src / "modules.json").read_text())]
    pooling = json.loads((src / "1_Pooling/config.json").read_text())
    dense = [json.loads((src / f"{d}/config.json").read_text()) for d in ("2_Dense", "3_Dense")]
    prompts = json.loads((src / "config_sentence_transformers.json").read_text())["prompts"]
    problems = []
    if modules != ["Transformer", "Pooling", "Dense", "Dense", "Normalize"]:
        problems.append(f"modules {modules}")
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
    if modes != ["pooling_mode_mean_tokens"] or not pooling.get("include_prompt", True):
        problems.append(f"pooling {pooling}")
    for d in dense:
        if d["bias"] or not d["activation_function"].endswith("Identity"):
            problems.append(f"dense {d}")
    if prompts.get(PROMPT_NAME) != PROMPT:
        problems.append(f"prompt {PROMPT_NAME!r} is {prompts.get(PROMPT_NAME)!r}")
    if problems:
        sys.exit("build: unexpected sentence-transformers pipeline: " + "; ".join(problems))


def load_tokenizer(src, max_length):
    """The tokenizer as fastembed sets it up for a user-defined model (its
    load_tokenizer): padding to the longest text with config.json's
    pad_token_id, truncation to max_length, special_tokens_map.json's tokens
    added as special tokens."""
    cfg = json.loads((src / "config.json").read_text())
    tcfg = json.loads((src / "tokenizer_config.json").read_text())
    specials = json.loads((src / "special_tokens_map.json").read_text())
    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    pad = tcfg["pad_token"] if isinstance(tcfg["pad_token"], str) else tcfg["pad_token"]["content"]
    pad_id = cfg.get("pad_token_id")
    tok.enable_padding(pad_id=pad_id if pad_id is not None else tok.token_to_id(pad) or 0, pad_token=pad)
    tok.enable_truncation(min(max_length, int(tcfg["model_max_length"])))
    for value in specials.values():
        if isinstance(value, str):
            tok.add_special_tokens([AddedToken(value, special=True, normalized=True)])
        else:
            keys = ("single_word", "lstrip", "rstrip", "normalized")
            tok.add_special_tokens([AddedToken(value["content"], special=True, **{k: value[k] for k in keys})])
    return tok


def check_tokenizer(src, tok, cfg):
    """sentence-transformers tokenizes prompt + text with special tokens:
    <bos> first, <eos> last, also when truncated. transformers rebuilds the
    post-processor from tokenizer_config.json's add_bos_token/add_eos_token,
    fastembed takes tokenizer.json's as it is: both must agree."""
    tcfg = json.loads((src / "tokenizer_config.json").read_text())
    if not (tcfg.get("add_bos_token") and tcfg.get("add_eos_token")):
        sys.exit("build: tokenizer_config.json does not add both <bos> and <eos>; tokenizer.json does")
    bos, eos = cfg["bos_token_id"], cfg["eos_token_id"]
    for text, limit in ((PROMPT + "When do you open?", None), (LONG_TEXT, 64)):
        if limit:
            tok.enable_truncation(limit)
        ids = tok.encode(text).ids
        if ids[0] != bos or ids[-1] != eos or bos in ids[1:] or eos in ids[:-1]:
            sys.exit(f"build: tokenizer does not wrap {text[:40]!r} in <bos> ... <eos>: {ids[:4]} ... {ids[-4:]}")
    tok.enable_truncation(int(cfg["max_position_embeddings"]))


def batch(tok, texts):
    enc = tok.encode_batch(texts)
    return {
        "input_ids": np.array([e.ids for e in enc], np.int64),
        "attention_mask": np.array([e.attention_mask for e in enc], np.int64),
    }


def sentence_vectors(hidden, mask):
    """What fastembed does with the graph's output: masked mean, L2 norm."""
    m = mask[:, :, None].astype(np.float32)
    v = (hidden * m).sum(1) / m.sum(1)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# --- the numpy reference forward pass (sentence-transformers' order: encoder,
# mean pooling, Dense, Dense, normalise)


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * (1.0 + w)


def rope(x, theta, positions):
    """Rotary embedding on the last axis of x [batch, sequence, heads, dim]:
    the first and second halves rotate together (rotate-half convention)."""
    dim = x.shape[-1]
    inv = (1.0 / theta ** (np.arange(0, dim, 2).astype(np.float32) / dim)).astype(np.float32)
    angles = positions.astype(np.float32)[:, None] * inv[None]
    cos, sin = np.cos(angles)[:, None], np.sin(angles)[:, None]
    x1, x2 = x[..., : dim // 2], x[..., dim // 2 :]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def reference_encoder(w, cfg, inputs):
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    b, s = ids.shape
    nh, nkv, hd, eps = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"], cfg["rms_norm_eps"]
    x = w["embed_tokens.weight"][ids] * np.float32(math.sqrt(cfg["hidden_size"]))
    positions = np.arange(s)
    keys = mask.astype(bool)[:, None, None, :]
    # Sliding layers see keys at most sliding_window // 2 positions away on
    # either side (transformers: exclusive bound sliding_window // 2 + 1).
    near = np.abs(positions[:, None] - positions[None, :]) <= cfg["sliding_window"] // 2
    for i, kind in enumerate(cfg["layer_types"]):
        p = f"layers.{i}."
        local = kind == "sliding_attention"
        theta = cfg["rope_local_base_freq"] if local else cfg["rope_theta"]
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(b, s, nh, hd)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(b, s, nkv, hd)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(b, s, nkv, hd)
        q = rope(rms_norm(q, w[p + "self_attn.q_norm.weight"], eps), theta, positions).transpose(0, 2, 1, 3)
        k = rope(rms_norm(k, w[p + "self_attn.k_norm.weight"], eps), theta, positions).transpose(0, 2, 1, 3)
        k, v = np.repeat(k, nh // nkv, 1), np.repeat(v.transpose(0, 2, 1, 3), nh // nkv, 1)
        scores = q @ k.transpose(0, 1, 3, 2) * np.float32(cfg["query_pre_attn_scalar"] ** -0.5)
        allowed = keys & near if local else keys
        scores = np.where(allowed, scores, np.finfo(np.float32).min)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        ctx = ((scores / scores.sum(-1, keepdims=True)) @ v).transpose(0, 2, 1, 3).reshape(b, s, nh * hd)
        attn = ctx @ w[p + "self_attn.o_proj.weight"].T
        x = x + rms_norm(attn, w[p + "post_attention_layernorm.weight"], eps)
        h = rms_norm(x, w[p + "pre_feedforward_layernorm.weight"], eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        gate = 0.5 * gate * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (gate + 0.044715 * gate**3)))
        ffn = (gate * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
        x = x + rms_norm(ffn, w[p + "post_feedforward_layernorm.weight"], eps)
    return rms_norm(x, w["norm.weight"], eps).astype(np.float32)


def reference_vectors(w, cfg, dense, inputs):
    m = inputs["attention_mask"][:, :, None].astype(np.float32)
    pooled = (reference_encoder(w, cfg, inputs) * m).sum(1) / m.sum(1)
    for d in dense:
        pooled = pooled @ d.T
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


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


def rope_tables(theta, dim, positions):
    """cos and sin for every position, shaped [position, 1, dim] to broadcast
    over [batch, sequence, heads, dim]; angles in fp32 as transformers does."""
    inv = (1.0 / theta ** (np.arange(0, dim, 2).astype(np.float32) / dim)).astype(np.float32)
    angles = np.arange(positions, dtype=np.float32)[:, None] * inv[None]
    angles = np.concatenate([angles, angles], -1)[:, None, :]
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def int8_rows(table):
    """Symmetric int8 with one scale per row: a token's vector keeps its own
    resolution whatever the other 262,143 rows hold."""
    scale = np.abs(table).max(1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    return np.clip(np.rint(table / scale), -127, 127).astype(np.int8), scale.astype(np.float32)


def build_graph(w, cfg, dense, int8_embedding):
    g = Graph()
    hidden, eps = cfg["hidden_size"], cfg["rms_norm_eps"]
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    f32 = lambda v: np.array(v, np.float32)  # noqa: E731
    i64 = lambda v: np.array(v, np.int64)  # noqa: E731
    one, two = g.const("one", f32(1.0)), g.const("two", f32(2.0))
    g.const("eps", f32(eps))
    g.const("zero", f32(0.0))
    g.const("neg", f32(np.finfo(np.float32).min))
    g.const("scale", f32(cfg["query_pre_attn_scalar"] ** -0.5))
    g.const("q_heads", i64([0, 0, nh, hd]))
    g.const("kv_heads", i64([0, 0, nkv, hd]))
    g.const("q_groups", i64([0, 0, nkv, nh // nkv, hd]))
    g.const("hidden_shape", i64([0, 0, nh * hd]))
    g.const("halves", i64([hd // 2, hd // 2]))
    g.const("zero64", i64([0]))
    g.const("axis0", i64([0]))

    def rms(inp, weight, out):
        # The pattern ONNX Runtime fuses into SimplifiedLayerNormalization.
        g.op("Pow", [inp, two], out + "_sq")
        g.op("ReduceMean", [out + "_sq"], out + "_ms", axes=[-1], keepdims=1)
        g.op("Add", [out + "_ms", "eps"], out + "_mse")
        g.op("Sqrt", [out + "_mse"], out + "_rms")
        g.op("Div", [inp, out + "_rms"], out + "_n")
        return g.op("Mul", [out + "_n", g.const(out + "_w", (1.0 + weight).astype(np.float32))], out)

    # Embeddings, scaled by sqrt(hidden) (folded into the table: the same one
    # fp32 product per element).
    table = w["embed_tokens.weight"] * np.float32(math.sqrt(hidden))
    if int8_embedding:
        q8, scale = int8_rows(table)
        g.op("Gather", [g.const("embed_q", q8), "input_ids"], "embed_i8")
        g.op("Cast", ["embed_i8"], "embed_f", to=TensorProto.FLOAT)
        g.op("Gather", [g.const("embed_scale", scale), "input_ids"], "embed_s")
        x = g.op("Mul", ["embed_f", "embed_s"], "embed")
    else:
        x = g.op("Gather", [g.const("embed", table), "input_ids"], "embed_out")
    del table

    # Positions 0..sequence are the first rows of constant tables: Slice, not
    # Range and Gather (which ONNX Runtime 1.31's optimizer rewrites wrongly).
    g.op("Shape", ["input_ids"], "seq_len", start=1, end=2)
    positions = cfg["max_position_embeddings"]

    def first_rows(name, array):
        return g.op("Slice", [g.const(name + "_table", array), "zero64", "seq_len", "axis0"], name)

    rope = {}
    for kind, theta in (("local", cfg["rope_local_base_freq"]), ("global", cfg["rope_theta"])):
        cos, sin = rope_tables(theta, hd, positions)
        rope[kind] = (first_rows(f"cos_{kind}", cos), first_rows(f"sin_{kind}", sin))

    # Masks: a key is allowed when it is not padding and, in sliding layers,
    # at most sliding_window // 2 positions from the query on either side.
    # One Where per mask (not a sum of biases): a fully masked padding row
    # stays finite instead of turning into NaN that fastembed's pooling would
    # multiply by zero and keep.
    g.op("Cast", ["attention_mask"], "mask_b", to=TensorProto.BOOL)
    g.op("Unsqueeze", ["mask_b", g.const("axes12", i64([1, 2]))], "keys_ok")
    pos = first_rows("pos", np.arange(positions, dtype=np.int64))
    g.op("Unsqueeze", [pos, g.const("axis1", i64([1]))], "pos_q")
    g.op("Unsqueeze", [pos, "axis0"], "pos_k")
    g.op("Sub", ["pos_q", "pos_k"], "pos_d")
    g.op("Abs", ["pos_d"], "pos_abs")
    g.op("LessOrEqual", ["pos_abs", g.const("half_window", i64(cfg["sliding_window"] // 2))], "near")
    g.op("And", ["keys_ok", "near"], "local_ok")
    bias = {
        "global": g.op("Where", ["keys_ok", "zero", "neg"], "bias_global"),
        "local": g.op("Where", ["local_ok", "zero", "neg"], "bias_local"),
    }
    # For grouped-query attention the query heads go [batch, kv, group, seq,
    # dim] and keys and values [batch, kv, 1, ...]: MatMul broadcasts the group.
    g.op("Unsqueeze", [bias["global"], "axis1"], "bias_global5")
    g.op("Unsqueeze", [bias["local"], "axis1"], "bias_local5")

    for i, kind in enumerate(cfg["layer_types"]):
        p, n = f"layers.{i}.", f"l{i}_"
        local = "local" if kind == "sliding_attention" else "global"
        cos, sin = rope[local]

        def proj(inp, name, out):
            return g.op("MatMul", [inp, g.const(n + name + "_w", w[p + name + ".weight"].T)], out)

        def rotate(inp, out):
            g.nodes.append(helper.make_node("Split", [inp, "halves"], [out + "_x1", out + "_x2"], name=out + "_split", axis=-1))
            g.op("Neg", [out + "_x2"], out + "_nx2")
            g.op("Concat", [out + "_nx2", out + "_x1"], out + "_rot", axis=-1)
            g.op("Mul", [inp, cos], out + "_c")
            g.op("Mul", [out + "_rot", sin], out + "_s")
            return g.op("Add", [out + "_c", out + "_s"], out)

        h = rms(x, w[p + "input_layernorm.weight"], n + "in_norm")
        q = g.op("Reshape", [proj(h, "self_attn.q_proj", n + "q"), "q_heads"], n + "q_h")
        k = g.op("Reshape", [proj(h, "self_attn.k_proj", n + "k"), "kv_heads"], n + "k_h")
        v = g.op("Reshape", [proj(h, "self_attn.v_proj", n + "v"), "kv_heads"], n + "v_h")
        q = rotate(rms(q, w[p + "self_attn.q_norm.weight"], n + "q_norm"), n + "q_rope")
        k = rotate(rms(k, w[p + "self_attn.k_norm.weight"], n + "k_norm"), n + "k_rope")
        g.op("Reshape", [q, "q_groups"], n + "q_g")
        g.op("Transpose", [n + "q_g"], n + "q_t", perm=[0, 2, 3, 1, 4])  # [b, kv, group, s, d]
        g.op("Transpose", [k], n + "k_t4", perm=[0, 2, 3, 1])  # [b, kv, d, s]
        g.op("Unsqueeze", [n + "k_t4", "axis1"], n + "k_t")
        g.op("Transpose", [v], n + "v_t4", perm=[0, 2, 1, 3])  # [b, kv, s, d]
        g.op("Unsqueeze", [n + "v_t4", "axis1"], n + "v_t")
        g.op("MatMul", [n + "q_t", n + "k_t"], n + "scores_raw")
        g.op("Mul", [n + "scores_raw", "scale"], n + "scores_scaled")
        g.op("Add", [n + "scores_scaled", f"bias_{local}5"], n + "scores")
        g.op("Softmax", [n + "scores"], n + "probs", axis=-1)
        g.op("MatMul", [n + "probs", n + "v_t"], n + "ctx_g")
        g.op("Transpose", [n + "ctx_g"], n + "ctx_t", perm=[0, 3, 1, 2, 4])  # [b, s, kv, group, d]
        g.op("Reshape", [n + "ctx_t", "hidden_shape"], n + "ctx")
        attn = proj(n + "ctx", "self_attn.o_proj", n + "attn")
        attn = rms(attn, w[p + "post_attention_layernorm.weight"], n + "attn_norm")
        x = g.op("Add", [x, attn], n + "attn_res")

        h = rms(x, w[p + "pre_feedforward_layernorm.weight"], n + "ff_norm")
        gate = proj(h, "mlp.gate_proj", n + "gate")
        # GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
        g.op("Pow", [gate, g.const(n + "three", f32(3.0))], n + "gelu_cube")
        g.op("Mul", [n + "gelu_cube", g.const(n + "gelu_c", f32(0.044715))], n + "gelu_cube_c")
        g.op("Add", [gate, n + "gelu_cube_c"], n + "gelu_inner")
        g.op("Mul", [n + "gelu_inner", g.const(n + "gelu_k", f32(math.sqrt(2.0 / math.pi)))], n + "gelu_arg")
        g.op("Tanh", [n + "gelu_arg"], n + "gelu_tanh")
        g.op("Add", [n + "gelu_tanh", one], n + "gelu_1p")
        g.op("Mul", [gate, n + "gelu_1p"], n + "gelu_x")
        g.op("Mul", [n + "gelu_x", g.const(n + "half", f32(0.5))], n + "gelu")
        g.op("Mul", [n + "gelu", proj(h, "mlp.up_proj", n + "up")], n + "gated")
        ffn = proj(n + "gated", "mlp.down_proj", n + "down")
        ffn = rms(ffn, w[p + "post_feedforward_layernorm.weight"], n + "down_norm")
        x = g.op("Add", [x, ffn], n + "out")

    x = rms(x, w["norm.weight"], "final_norm")
    # 2_Dense then 3_Dense, as one 768x768 product (computed in float64).
    folded = dense[1].astype(np.float64) @ dense[0].astype(np.float64)
    g.op("MatMul", [x, g.const("dense_w", folded.T.astype(np.float32))], "last_hidden_state")

    dims = ["batch", "sequence"]
    inputs = [helper.make_tensor_value_info(name, TensorProto.INT64, dims) for name in ("input_ids", "attention_mask")]
    output = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, dims + [hidden])
    graph = helper.make_graph(g.nodes, NAME, inputs, [output], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="deja-models")
    model.ir_version = 8  # readable by every ONNX Runtime since 1.10
    onnx.checker.check_model(model)
    return model


# --- checks


def session(path, threads=1):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_vectors(sess, tok, texts, alone=False):
    # Batches of different widths, so padding is exercised; or one text per
    # pass, as Deja runs the int8 model (its activation scales are per call,
    # so batching would move a text's vector).
    groups = [[t] for t in texts] if alone else [texts[i : i + 8] for i in range(0, len(texts), 8)]
    out = []
    for group in groups:
        inputs = batch(tok, group)
        out.append(sentence_vectors(sess.run(["last_hidden_state"], inputs)[0], inputs["attention_mask"]))
    return np.concatenate(out)


def check(label, got, want, texts, bound, mean_bound=None):
    cos = (got * want).sum(1)
    worst, mean = float(cos.min()), float(cos.mean())
    print(f"build: {label}: cosine min {worst:.5f} (bound {bound}), mean {mean:.5f}", file=sys.stderr)
    if worst < bound:
        sys.exit(f"build: {label} below {bound}: {texts[int(cos.argmin())][:80]!r}")
    if mean_bound is not None and mean < mean_bound:
        sys.exit(f"build: {label}: mean cosine {mean:.5f} below {mean_bound}")


def check_published(sess, tok):
    """The authors' own numbers, computed with sentence-transformers: an
    independent check of the architecture the graph and the numpy reference
    share."""
    got, want = [], []
    for prompt, (a, b), value in PUBLISHED_SIMILARITIES:
        va, vb = onnx_vectors(sess, tok, [prompt + a, prompt + b])
        got.append(float(va @ vb))
        want.append(value)
    apple = onnx_vectors(sess, tok, ["apple"])[0]
    got += [*apple[:3], *apple[-3:]]
    want += [*PUBLISHED_APPLE[0], *PUBLISHED_APPLE[1]]
    query, docs, sims = PUBLISHED_RETRIEVAL
    vectors = onnx_vectors(sess, tok, [query, *docs])
    got += list(vectors[1:] @ vectors[0])
    want += sims
    diff = np.abs(np.array(got) - np.array(want))
    print(f"build: fp32 graph vs published values: {len(got)} values, largest difference {diff.max():.5f} (bound {PUBLISHED_TOLERANCE})", file=sys.stderr)
    if diff.max() > PUBLISHED_TOLERANCE:
        sys.exit(f"build: fp32 graph differs from the published values: got {np.round(got, 4)}, want {want}")


def quantize(src, dst):
    """int8 weights, one scale per output channel; activations quantized per
    call (uint8). Only products with a constant weight are quantized (not the
    attention scores); the embedding table is int8 already. All 169 are
    quantized: on the parity sentences the int8 model's lowest cosine to fp32
    is 0.993, so none has to stay fp32 (MiniLM's build keeps one)."""
    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's pre-processing advice
    quantize_dynamic(
        src,
        dst,
        op_types_to_quantize=["MatMul"],
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=False,
        extra_options={"MatMulConstBOnly": True},
    )


def main():
    src, out_dir = (pathlib.Path(a) for a in sys.argv[1:3])
    check_pipeline(src)
    cfg = json.loads((src / "config.json").read_text())
    tok = load_tokenizer(src, cfg["max_position_embeddings"])
    check_tokenizer(src, tok, cfg)
    weights = read_safetensors(src / "model.safetensors")
    dense = [read_safetensors(src / f"{d}/model.safetensors")["linear.weight"] for d in ("2_Dense", "3_Dense")]
    texts = [PROMPT + s for s in SENTENCES]
    with tempfile.TemporaryDirectory() as tmp:
        fp32, emb8, int8 = (pathlib.Path(tmp) / n for n in ("fp32.onnx", "emb8.onnx", "int8.onnx"))
        onnx.save(build_graph(weights, cfg, dense, int8_embedding=False), fp32)
        sess = session(fp32)
        groups = [texts[:10], texts[10:], [PROMPT + LONG_TEXT, texts[8]]]
        want = np.concatenate([reference_vectors(weights, cfg, dense, batch(tok, grp)) for grp in groups])
        got = np.concatenate([onnx_vectors(sess, tok, grp) for grp in groups])
        check("fp32 graph vs numpy reference", got, want, [t for grp in groups for t in grp], FP32_VS_NUMPY)
        check_published(sess, tok)
        fp32_alone = onnx_vectors(sess, tok, texts, alone=True)
        del sess
        onnx.save(build_graph(weights, cfg, dense, int8_embedding=True), emb8)
        check("int8 embedding table vs fp32 graph", onnx_vectors(session(emb8), tok, texts, alone=True), fp32_alone, texts, INT8_VS_FP32)
        quantize(emb8, int8)
        sess = session(int8)
        int8_alone = onnx_vectors(sess, tok, texts, alone=True)
        check("int8 vs fp32 graph", int8_alone, fp32_alone, texts, INT8_VS_FP32, INT8_VS_FP32_MEAN)
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = PROMPT + "When do you open?"
        described = {
            "name": NAME,
            "file": "model.onnx",
            "inputs": ["input_ids", "attention_mask"],
            "output": "last_hidden_state",
            "pooling": "mean over attention_mask, then L2 normalise",
            "dims": cfg["hidden_size"],
            "prompt": PROMPT,
            "window": WINDOW,
            "max_tokens": cfg["max_position_embeddings"],
            "unknown_token": json.loads((src / "special_tokens_map.json").read_text())["unk_token"]["content"],
            "terms": "https://ai.google.dev/gemma/terms",
            # What the built file gives for one text, for a loader to compare
            # against (same ONNX Runtime release: equal to about 1e-6).
            "probe": {
                "text": probe,
                "input_ids": tok.encode(probe).ids,
                "vector_head": [round(float(v), 6) for v in onnx_vectors(sess, tok, [probe])[0][:8]],
            },
        }
        (out_dir / "deja.json").write_text(json.dumps(described, indent=2, ensure_ascii=False) + "\n")
        part = out_dir / "model.onnx.part"
        part.write_bytes(int8.read_bytes())
        part.replace(out_dir / "model.onnx")  # atomic: a half-written file is never used


if __name__ == "__main__":
    main()
