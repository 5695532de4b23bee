#!/usr/bin/env python3
"""Generates the three model-scan benchmark inputs with the standard library only (no torch).

    python3 bench/model-scan/gen.py --out bench/out/model-scan [--legacy-mb 1024] [--zip-mb 2048]

(a) legacy.pkl   -- a plain (non-zip) protocol-4 pickle, ~1 GiB: an OrderedDict of 1 MiB BINBYTES
                    payloads ("layer.N" -> bytes), hand-assembled and streamed to disk. After the
                    last payload, one more value is `posix.system("echo planted-a")` (REDUCE), so a
                    scanner that stops early, or gives up on a big file, misses it.
(b) checkpoint.pt -- a PyTorch zip checkpoint, ~2 GiB, in torch.save's layout: `archive/data.pkl`
                    (a state dict of `torch._utils._rebuild_tensor_v2` calls whose storages are
                    persistent ids ('storage', torch.FloatStorage, key, 'cpu', numel)),
                    `archive/data/<key>` raw float32 storages, `archive/byteorder`,
                    `archive/version`; members stored (no compression). Benign.
(c) hf-folder/    -- a Hugging Face-style model folder of exactly 50 files: config/tokenizer JSON,
                    vocab, README, 8 safetensors shards + index, a pytorch_model.bin zip twin,
                    optimizer/scheduler/rng pickles, numpy arrays, a joblib pickle,
                    text files. Two files are planted: `training_args.bin`, a plain pickle calling
                    `posix.system`, and `rng_state_7.pth`, a legacy torch file whose fifth pickle
                    stream (the one torch.load reads as the storage-key list) calls `builtins.exec`.

Writes `<out>/inputs.json` with sizes and what each tool must report. Inputs are reused when
`inputs.json` matches the requested sizes (delete the folder to regenerate).
"""

import argparse
import io
import json
import os
import pickle
import struct
import sys
import zipfile

MIB = 1 << 20

# --- pickle opcodes (protocol 2-4), assembled by hand so payloads stream to disk -------------
PROTO = b"\x80"
FRAME = b"\x95"
STOP = b"."
MARK = b"("
EMPTY_TUPLE = b")"
EMPTY_DICT = b"}"
TUPLE = b"t"
TUPLE2 = b"\x86"
REDUCE = b"R"
SETITEMS = b"u"
SETITEM = b"s"
NONE = b"N"
NEWFALSE = b"\x89"
BININT = b"J"
MEMOIZE = b"\x94"
STACK_GLOBAL = b"\x93"
GLOBAL = b"c"
BINPERSID = b"Q"


def uni(s):
    b = s.encode("utf-8")
    if len(b) < 256:
        return b"\x8c" + bytes([len(b)]) + b  # SHORT_BINUNICODE
    return b"X" + struct.pack("<I", len(b)) + b  # BINUNICODE


def binint(n):
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if 0 <= n < 65536:
        return b"M" + struct.pack("<H", n)
    return BININT + struct.pack("<i", n)


def binbytes_header(n):
    if n < 256:
        return b"C" + bytes([n])  # SHORT_BINBYTES
    if n < (1 << 32):
        return b"B" + struct.pack("<I", n)  # BINBYTES
    return b"\x8e" + struct.pack("<Q", n)  # BINBYTES8


def stack_global(module, name):
    return uni(module) + uni(name) + STACK_GLOBAL


def payload_block(seed):
    """A deterministic 1 MiB block (not all zeros, so nothing compresses it away)."""
    import hashlib

    out = bytearray()
    h = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < MIB:
        out += h
        h = hashlib.sha256(h).digest()
    return bytes(out[:MIB])


def gen_legacy(path, mb):
    block = payload_block("legacy")
    with open(path, "wb") as f:
        f.write(PROTO + b"\x04")
        f.write(stack_global("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE)
        # SETITEMS in batches of 1000 like pickle does.
        for start in range(0, mb, 1000):
            f.write(MARK)
            for i in range(start, min(mb, start + 1000)):
                f.write(uni(f"layer.{i}.weight"))
                f.write(binbytes_header(MIB))
                # Vary the first 8 bytes per payload: no two payloads are equal.
                f.write(struct.pack("<Q", i) + block[8:])
            f.write(SETITEMS)
        # The planted call, after every payload.
        f.write(uni("zz.planted"))
        f.write(stack_global("posix", "system") + uni("echo planted-a") + b"\x85" + REDUCE)
        f.write(SETITEM + STOP)


def rebuild_tensor(key, numel, shape):
    """`torch._utils._rebuild_tensor_v2(storage, 0, shape, stride, False, OrderedDict())` with
    the storage as a persistent id, the way torch.save writes it (protocol 2, GLOBAL opcodes)."""
    out = io.BytesIO()
    w = out.write
    w(GLOBAL + b"torch._utils\n_rebuild_tensor_v2\n")
    w(MARK)
    # persistent id tuple ('storage', torch.FloatStorage, key, 'cpu', numel)
    w(MARK)
    w(b"X" + struct.pack("<I", 7) + b"storage")
    w(GLOBAL + b"torch\nFloatStorage\n")
    w(b"X" + struct.pack("<I", len(key)) + key.encode())
    w(b"X" + struct.pack("<I", 3) + b"cpu")
    w(binint(numel))
    w(TUPLE + BINPERSID)
    w(binint(0))
    w(MARK + b"".join(binint(d) for d in shape) + TUPLE)
    strides = []
    acc = 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    w(MARK + b"".join(binint(s) for s in reversed(strides)) + TUPLE)
    w(NEWFALSE)
    w(GLOBAL + b"collections\nOrderedDict\n" + EMPTY_TUPLE + REDUCE)
    w(TUPLE + REDUCE)
    return out.getvalue()


def state_dict_pickle(tensors):
    """tensors: list of (name, key, numel, shape). Returns data.pkl bytes (protocol 2)."""
    out = io.BytesIO()
    out.write(PROTO + b"\x02")
    out.write(GLOBAL + b"collections\nOrderedDict\n" + EMPTY_TUPLE + REDUCE)
    out.write(MARK)
    for name, key, numel, shape in tensors:
        out.write(b"X" + struct.pack("<I", len(name)) + name.encode())
        out.write(rebuild_tensor(key, numel, shape))
    out.write(SETITEMS + STOP)
    return out.getvalue()


def torch_zip(path, prefix, tensors, storage_bytes, block, extra_pickle=None):
    """Writes a torch.save-style zip: prefix/data.pkl, prefix/data/<key>, byteorder, version."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
        z.writestr(f"{prefix}/data.pkl", extra_pickle or state_dict_pickle(tensors))
        z.writestr(f"{prefix}/byteorder", b"little")
        for _, key, _, _ in tensors:
            n = storage_bytes[key]
            with z.open(f"{prefix}/data/{key}", "w", force_zip64=n >= (1 << 31)) as m:
                left = n
                while left > 0:
                    k = min(left, len(block))
                    m.write(block[:k])
                    left -= k
        z.writestr(f"{prefix}/version", b"3\n")


def gen_checkpoint(path, mb):
    # 32 tensors of mb/32 MiB each (float32).
    n = 32
    per = mb * MIB // n
    numel = per // 4
    rows = 1024
    tensors = [
        (f"model.layers.{i}.mlp.weight", str(i), numel, (rows, numel // rows)) for i in range(n)
    ]
    block = payload_block("ckpt") * 4
    torch_zip(path, "checkpoint", tensors, {str(i): per for i in range(n)}, block)


def legacy_torch(tensors_pickle, storage_keys, storage_len, tail_pickles=()):
    """A legacy (pre-1.6, non-zip) torch.save file: magic, protocol, sys_info, the tensors
    pickle, the storage-key list, then raw storages. `tail_pickles` replace nothing: they are
    inserted as extra streams before the key list (used to plant a call)."""
    out = io.BytesIO()
    out.write(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2))
    out.write(pickle.dumps(1001, protocol=2))
    out.write(
        pickle.dumps(
            {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}},
            protocol=2,
        )
    )
    out.write(tensors_pickle)
    for t in tail_pickles:
        out.write(t)
    out.write(pickle.dumps(list(storage_keys), protocol=2))
    for _ in storage_keys:
        out.write(struct.pack("<q", storage_len // 4))
        out.write(b"\x00" * storage_len)
    return out.getvalue()


def gen_hf_folder(folder):
    os.makedirs(folder, exist_ok=True)
    files = {}

    def put(name, data):
        p = os.path.join(folder, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        files[name] = len(data)

    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 1024,
        "num_hidden_layers": 8,
        "vocab_size": 32000,
        "torch_dtype": "float32",
    }
    put("config.json", json.dumps(cfg, indent=2).encode())
    put("generation_config.json", json.dumps({"bos_token_id": 1, "eos_token_id": 2}).encode())
    put(
        "tokenizer_config.json",
        json.dumps(
            {
                "bos_token": "<s>",
                "eos_token": "</s>",
                "chat_template": "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
            },
            indent=2,
        ).encode(),
    )
    put("special_tokens_map.json", json.dumps({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}).encode())
    vocab = {f"tok{i}": i for i in range(32000)}
    put("tokenizer.json", json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": vocab, "merges": []}}).encode())
    put("vocab.json", json.dumps(vocab).encode())
    put("merges.txt", ("#version: 0.2\n" + "".join(f"t{i} k{i}\n" for i in range(20000))).encode())
    put("README.md", b"---\nlicense: apache-2.0\n---\n# bench model\n\nA generated model folder.\n")
    put(".gitattributes", b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    put("LICENSE", b"Apache License 2.0 (placeholder)\n" * 100)

    # 8 safetensors shards of 8 tensors x 1 MiB, plus the index (float32).
    block = payload_block("hf")
    weight_map = {}
    for s in range(8):
        header = {}
        off = 0
        names = []
        for t in range(8):
            name = f"model.layers.{s}.w{t}"
            header[name] = {"dtype": "F32", "shape": [256, 1024], "data_offsets": [off, off + MIB]}
            off += MIB
            names.append(name)
        header["__metadata__"] = {"format": "pt"}
        h = json.dumps(header, separators=(",", ":")).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        shard = f"model-{s + 1:05d}-of-00008.safetensors"
        put(shard, struct.pack("<Q", len(h)) + h + block * 8)
        for n in names:
            weight_map[n] = shard
    put("model.safetensors.index.json", json.dumps({"metadata": {"total_size": 64 * MIB}, "weight_map": weight_map}).encode())

    # A pytorch_model.bin twin (zip layout), 16 x 1 MiB storages.
    tensors = [(f"model.layers.{i // 2}.w{i % 2}", str(i), MIB // 4, (256, 1024)) for i in range(16)]
    tmp = os.path.join(folder, "pytorch_model.bin")
    torch_zip(tmp, "pytorch_model", tensors, {str(i): MIB for i in range(16)}, block)
    files["pytorch_model.bin"] = os.path.getsize(tmp)

    # Trainer state in checkpoint-*/ subfolders, like a Trainer output dir pushed to the Hub.
    for c in range(4):
        d = f"checkpoint-{(c + 1) * 500}"
        put(f"{d}/trainer_state.json", json.dumps({"global_step": (c + 1) * 500, "log_history": [{"loss": 1.0 / (i + 1)} for i in range(200)]}).encode())
        put(f"{d}/scheduler.pt", pickle.dumps({"last_epoch": c, "base_lrs": [1e-4], "_step_count": c + 1}, protocol=2))
        opt_t = [(f"state.{i}.exp_avg", str(i), MIB // 8, (128, 1024)) for i in range(4)]
        p = os.path.join(folder, d, "optimizer.pt")
        torch_zip(p, "optimizer", opt_t, {str(i): MIB // 2 for i in range(4)}, block)
        files[f"{d}/optimizer.pt"] = os.path.getsize(p)
        tp = state_dict_pickle([("w", "0", 256, (16, 16))])
        put(f"{d}/rng_state_{c}.pth", legacy_torch(tp, ["0"], 1024))

    # The planted one: a legacy torch file whose extra stream calls builtins.exec.
    planted = PROTO + b"\x02" + GLOBAL + b"builtins\nexec\n" + uni("import os") + b"\x85" + REDUCE + STOP
    tp = state_dict_pickle([("w", "0", 256, (16, 16))])
    put("rng_state_7.pth", legacy_torch(tp, ["0"], 1024, tail_pickles=[planted]))

    # numpy arrays (.npy v1.0, float32) and a benign sklearn-like joblib pickle.
    for i in range(6):
        hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d,), }" % (MIB // 4)
        hdr = hdr + " " * ((64 - (10 + len(hdr) + 1) % 64) % 64) + "\n"
        put(f"embeddings/part{i}.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + block)
    put("head.joblib", pickle.dumps({"classes": list(range(100)), "coef": [[0.5] * 64 for _ in range(8)]}, protocol=4))
    # Second plant, the plain kind every scanner handles: a pickle whose dict value is
    # posix.system(...) (REDUCE), named like Trainer's training_args.bin.
    put(
        "training_args.bin",
        PROTO + b"\x04" + EMPTY_DICT + uni("learning_rate") + uni("1e-4") + SETITEM
        + uni("hook") + stack_global("posix", "system") + uni("echo planted-c") + b"\x85" + REDUCE + SETITEM + STOP,
    )
    for i in range(4):
        put(f"eval/results_{i}.json", json.dumps({"eval_loss": 1.0 + i, "perplexity": 2.7}).encode())
    put("added_tokens.json", json.dumps({"<pad>": 32000}).encode())

    names = sorted(files)
    if len(names) != 50:
        sys.exit(f"gen.py: hf-folder has {len(names)} files, expected 50: {names}")
    return files


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/out/model-scan")
    ap.add_argument("--legacy-mb", type=int, default=1024)
    ap.add_argument("--zip-mb", type=int, default=2048)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    meta_path = os.path.join(a.out, "inputs.json")
    want = {"legacy_mb": a.legacy_mb, "zip_mb": a.zip_mb, "generator": 1}
    try:
        with open(meta_path) as f:
            old = json.load(f)
        if all(old.get(k) == v for k, v in want.items()):
            print(f"gen.py: reusing inputs in {a.out}", file=sys.stderr)
            return
    except (OSError, ValueError):
        pass
    legacy = os.path.join(a.out, "legacy.pkl")
    ckpt = os.path.join(a.out, "checkpoint.pt")
    folder = os.path.join(a.out, "hf-folder")
    if os.path.isdir(folder):
        import shutil

        shutil.rmtree(folder)
    gen_legacy(legacy, a.legacy_mb)
    gen_checkpoint(ckpt, a.zip_mb)
    files = gen_hf_folder(folder)
    meta = dict(want)
    meta["inputs"] = {
        "a": {"path": legacy, "bytes": os.path.getsize(legacy), "planted": "posix.system (after the last payload)"},
        "b": {"path": ckpt, "bytes": os.path.getsize(ckpt), "planted": None},
        "c": {"path": folder, "files": len(files), "bytes": sum(files.values()), "planted": ["rng_state_7.pth: builtins.exec (stream 5 of a legacy torch file)", "training_args.bin: posix.system"]},
    }
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=2)
    print(json.dumps(meta["inputs"], indent=2), file=sys.stderr)


if __name__ == "__main__":
    main()
