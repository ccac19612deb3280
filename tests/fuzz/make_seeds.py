#!/usr/bin/env python3
"""make_seeds.py — writes the seed corpora of the fuzz targets,
tests/fuzz/corpus/TARGET/, from the committed fixtures and a few hand-made
inputs (each small: libFuzzer mutates them, make check replays them).

Run from the top of the tree:  python3 tests/fuzz/make_seeds.py
Only the standard library is used; the output is deterministic.
"""
import json
import os
import random
import shutil
import struct

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(TOP, "tests", "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def fixture(rel):
    with open(os.path.join(TOP, rel), "rb") as f:
        return f.read()


def safetensors(tensors, meta=None, align=True):
    """tensors: list of (name, dtype, shape, bytes) laid out in the given order."""
    hdr, off, blob = {}, 0, b""
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, dtype, shape, data in tensors:
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data)
        blob += data
    js = json.dumps(hdr, separators=(",", ":")).encode()
    if align:
        js += b" " * ((8 - (len(js) + 8) % 8) % 8)
    return struct.pack("<Q", len(js)) + js + blob


def floats(n, rng, scale=0.02, const=None):
    vals = [const if const is not None else rng.gauss(0, scale) for _ in range(n)]
    return struct.pack("<%df" % n, *vals)


# ---------------------------------------------------------------- pipeline
put("pipeline", "simple.pipe", "a source value=${V} epochs=4 mode=${MODE}\nb sink\n")
put("pipeline", "full.pipe", """# every feature of the format
set N=3 L="two words"
a source epochs=${N} label="${L}" \\
   verbose=yes value=-2.5e3 count_file=-
b bump @in=a.out
c maybe-sink @in=b
d trainlog epochs=${N:-2} quality=0.5 sample='x y' # trailing comment
e sink
#override a.mode=negate
#override d.epochs=7
""")
put("pipeline", "errors.pipe", "a source epoch=4\n")
put("pipeline", "unknown.pipe", "a sorce\n")
put("pipeline", "quote.pipe", "a source label=\"open\n")
put("pipeline", "undefined.pipe", "a source value=${NOPE}\n")
put("pipeline", "include.pipe", "include other.pipe\ninclude /nonexistent/x.pipe\na source\n")
put("pipeline", "defaults.pipe", "a source label=${A:-${B:-c}} value=${V:-2}\nb sink @in=a\n")
put("pipeline", "crlf.pipe", "a source epochs=2\r\nb sink\r\n")
put("pipeline", "wires.pipe", "a source\nb bump\nc sink @in=a.nope\nd sink @nope=a\n")
put("pipeline", "doubling.pipe", "set A=xxxxxxxx\nset A=${A}${A}\nset A=${A}${A}\na source label=${A}\n")
put("pipeline", "escapes.pipe", "a source label=\"tab\\there\\nnew\" value=1\\.5\nb fail message='it''s'\n")

# ---------------------------------------------------------------- param
for i, text in enumerate(["5", "0", "101", "-9223372036854775808", "1e-3", "nan", "10.5", "0x1p-3",
                          "yes", "OFF", "double", "plai", "two words", "", "+7", " 12"]):
    put("param", "v%02d" % i, bytes([i % 9]) + text.encode())

# ---------------------------------------------------------------- safetensors
put("safetensors", "st_ref.safetensors", fixture("tests/fixtures/gpt2/st_ref.safetensors"))
put("safetensors", "empty.safetensors", safetensors([], None, align=False))
put("safetensors", "meta.safetensors", safetensors([], {"format": "pt", "k": "v"}))
put("safetensors", "unaligned.safetensors",
    safetensors([("x", "F32", [2], struct.pack("<2f", 1.5, -2)), ("y", "F64", [1], struct.pack("<d", 3))],
                {"a": "b"}, align=False))
put("safetensors", "zero.safetensors", safetensors([("e", "F32", [0, 3], b""), ("f", "BF16", [1], b"\x80\x3f")]))

# ---------------------------------------------------------------- gpt2
# A 1-layer GPT-2 (C=4, 2 heads, V=5, n_ctx=4) in both formats.
rng = random.Random(1)
L, C, NH, V, T, VP = 1, 4, 2, 5, 4, 8
hdr = [20240326, 3, T, V, L, NH, C, VP] + [0] * 248
llmc = struct.pack("<256i", *hdr)
llmc += floats(VP * C, rng) + floats(T * C, rng)
llmc += floats(L * C, rng, const=1.0) + floats(L * C, rng, const=0.0)            # ln1 w, b
llmc += floats(L * 3 * C * C, rng) + floats(L * 3 * C, rng)                       # qkv w, b
llmc += floats(L * C * C, rng) + floats(L * C, rng)                               # attproj
llmc += floats(L * C, rng, const=1.0) + floats(L * C, rng, const=0.0)            # ln2
llmc += floats(L * 4 * C * C, rng) + floats(L * 4 * C, rng)                       # fc
llmc += floats(L * C * 4 * C, rng) + floats(L * C, rng)                           # fcproj
llmc += floats(C, rng, const=1.0) + floats(C, rng, const=0.0)                    # lnf
put("gpt2", "tiny-llmc", b"\x00" + llmc)
tensors = [("wte.weight", [V, C]), ("wpe.weight", [T, C]), ("h.0.ln_1.weight", [C]), ("h.0.ln_1.bias", [C]),
           ("h.0.ln_2.weight", [C]), ("h.0.ln_2.bias", [C]),
           ("h.0.attn.c_attn.weight", [C, 3 * C]), ("h.0.attn.c_attn.bias", [3 * C]),
           ("h.0.attn.c_proj.weight", [C, C]), ("h.0.attn.c_proj.bias", [C]),
           ("h.0.mlp.c_fc.weight", [C, 4 * C]), ("h.0.mlp.c_fc.bias", [4 * C]),
           ("h.0.mlp.c_proj.weight", [4 * C, C]), ("h.0.mlp.c_proj.bias", [C]),
           ("ln_f.weight", [C]), ("ln_f.bias", [C])]
st = []
for name, shape in sorted(tensors):
    n = 1
    for d in shape:
        n *= d
    st.append((name, "F32", shape, floats(n, rng, const=1.0 if name.endswith("ln_1.weight") else None)))
meta = {"format": "pt", "n_layer": str(L), "n_head": str(NH), "n_embd": str(C), "n_positions": str(T),
        "vocab_size": str(V), "layer_norm_epsilon": "1e-05"}
put("gpt2", "tiny-safetensors", b"\x01" + safetensors(st, meta))
put("gpt2", "short-llmc", b"\x00" + llmc[:1100])

# ---------------------------------------------------------------- bpe_load
trained = fixture("tests/fixtures/bpe/trained/vocab.json") + b"\x00" + fixture("tests/fixtures/bpe/trained/merges.txt")
put("bpe_load", "trained", trained)


def byte_char(b):
    printable = lambda x: (33 <= x <= 126) or (0xA1 <= x <= 0xAC) or (0xAE <= x <= 0xFF)
    if printable(b):
        return chr(b)
    return chr(256 + sum(1 for i in range(b) if not printable(i)))


base = {byte_char(b): b for b in range(256)}
v = dict(base)
v.update({"bc": 256, "abc": 257, "<|endoftext|>": 258})
put("bpe_load", "unordered", json.dumps(v).encode() + b"\x00#version: 0.2\na bc\nb c\n")
v = dict(base)
v.update({"ab": 256, "abab": 257})
put("bpe_load", "ordered", json.dumps(v).encode() + b"\x00a b\nab ab\n")
put("bpe_load", "bytes-only", json.dumps(base).encode() + b"\x00")

# ---------------------------------------------------------------- tokenizer
for name in sorted(os.listdir(os.path.join(TOP, "tests/fixtures/bpe/corpus"))):
    if name.endswith(".txt"):
        put("tokenizer", name, fixture("tests/fixtures/bpe/corpus/" + name))
put("tokenizer", "invalid-utf8", b"ok \xff\xfe caf\xc3 \xe2\x82 \x00 tail\xf0\x9f\x98\x80!")
put("tokenizer", "special", "a<|endoftext|>b <|endoftext|><|endoftext|> <|endof")

# ---------------------------------------------------------------- cola
put("cola", "dev.tsv", fixture("tests/fixtures/cola-mini/in_domain_dev.tsv"))
put("cola", "train.tsv", fixture("tests/fixtures/cola-mini/in_domain_train.tsv"))
put("cola", "bad-label.tsv", "a\t1\t\tFine.\nb\t7\t\tBad label.\n")
put("cola", "columns.tsv", "a\t1\tFine.\n")

# ---------------------------------------------------------------- lora
cfg = fixture("tests/fixtures/lora/peft/adapter_config.json")
put("lora", "fixture.json", cfg)
j = json.loads(cfg)
j["target_modules"] = "(.*\\.)?(c_attn|c_proj|c_fc)"
j["use_rslora"] = True
j["lora_dropout"] = 0.1
put("lora", "regex.json", json.dumps(j, indent=1))
put("lora", "minimal.json", json.dumps({"peft_type": "LORA", "r": 4, "target_modules": ["c_attn"]}))
put("lora", "bad-r.json", json.dumps({"peft_type": "LORA", "r": 0, "target_modules": ["c_attn"]}))
