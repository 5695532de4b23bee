#!/usr/bin/env python3
"""Writes small seed corpora for the model-parser and lint fuzz targets into fuzz/corpus/.

Stdlib only; nothing here is loaded back with pickle. Seeds are a few hundred bytes each and
are not committed (fuzz/.gitignore ignores corpus/).
"""
import io
import json
import os
import pickle
import struct
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


class Reduce:
    """A class whose pickle calls os.system (written, never loaded)."""

    def __reduce__(self):
        return (os.system, ("true",))


state = {"layer.weight": [1.0, 2.0], "step": 3, "name": "m", "t": (1, None, True)}
for proto in range(0, 6):
    put("pickle_decoder", f"dict_p{proto}.pkl", pickle.dumps(state, protocol=proto))
    put("pickle_decoder", f"reduce_p{proto}.pkl", pickle.dumps(Reduce(), protocol=proto))
put("pickle_decoder", "two_streams.pkl", pickle.dumps(1) + pickle.dumps([2, 3]))

npy_header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"
npy_obj = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"


def npy(header, payload, major=1):
    h = header.encode() + b" " * ((64 - (len(header) + 11) % 64) % 64) + b"\n"
    if major == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + payload
    return b"\x93NUMPY\x02\x00" + struct.pack("<I", len(h)) + h + payload


# The npy target prepends the magic itself.
put("npy_parser", "f4.npy", npy(npy_header, b"\x00" * 8)[6:])
put("npy_parser", "object.npy", npy(npy_obj, pickle.dumps([Reduce()], protocol=3))[6:])
put("npy_parser", "v2.npy", npy(npy_header, b"\x00" * 8, major=2)[6:])

buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr("archive/data.pkl", pickle.dumps(state, protocol=2))
    z.writestr("archive/version", "3\n")
    z.writestr("archive/data/0", b"\x00" * 16)
put("zip_reader", "torch_like.pt", buf.getvalue())
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("arr.npy", npy(npy_obj, pickle.dumps([Reduce()], protocol=3)))
    z.writestr("../evil.txt", "x" * 2000)
put("zip_reader", "npz_deflated.npz", buf.getvalue())


def safetensors(header):
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h


put("safetensors_header", "ok.safetensors",
    safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                 "__metadata__": {"format": "pt"}}) + b"\x00" * 8)
put("safetensors_header", "overlap.safetensors",
    safetensors({"a": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 8]},
                 "b": {"dtype": "BF16", "shape": [4], "data_offsets": [4, 12]}}) + b"\x00" * 12)

fixtures = os.path.join(HERE, "..", "..", "crates", "tunegate", "tests", "fixtures", "lint", "pipeline")
for dirpath, _, files in os.walk(fixtures):
    for f in files:
        with open(os.path.join(dirpath, f), "rb") as fh:
            put("lint_tokenizer", f, fh.read())
put("lint_tokenizer", "fstrings.py",
    b"s = f\"{d[\"k\"]} {{x}} {f'{y!r}'}\"\nt = rb'''\\'''\nimport torch as t\nt.load(p, weights_only=False)\n")

# Hostile seeds: a deflate bomb, huge length fields, deep nesting, truncation.
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("archive/data.pkl", b"\x00" * (64 << 20))
put("zip_reader", "bomb.zip", buf.getvalue())
put("pickle_decoder", "huge_len.pkl", b"\x80\x04\x8d" + struct.pack("<Q", 1 << 62) + b"abc")
put("pickle_decoder", "deep_marks.pkl", b"\x80\x02" + b"(" * 20000 + b"." )
put("pickle_decoder", "deep_lists.pkl", b"\x80\x02" + b"]" * 20000 + b"a" * 19999 + b".")
put("pickle_decoder", "truncated.pkl", pickle.dumps(state, protocol=4)[:-7])
put("npy_parser", "huge_header.npy", b"\x02\x00" + struct.pack("<I", 0xFFFFFFFF) + b"{'descr'")
put("safetensors_header", "huge_len.safetensors", struct.pack("<Q", (1 << 64) - 1) + b"{}")
put("lint_tokenizer", "deep.py", b"f(" * 50000 + b"x" + b")" * 50000)
put("lint_tokenizer", "deep.ipynb", b"[" * 5000 + b"]" * 5000)
