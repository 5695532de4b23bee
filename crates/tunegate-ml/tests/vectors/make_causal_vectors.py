#!/usr/bin/env python3
"""Generate the tiny causal-LM fixtures and their reference vectors.

Run from this folder (test-time only: tunegate never runs Python):

    /work/venv-ref/bin/python make_causal_vectors.py

(torch 2.15 CPU, transformers 5.23.0, peft 0.21.2, tokenizers 0.23.3, safetensors.)

Writes, for each architecture in gpt2, llama, qwen2 and mistral:

- `../fixtures/tiny-<arch>/`: `config.json`, `model.safetensors`, `generation_config.json` and
  `tokenizer.json` (one small BPE tokenizer trained here, shared by the four models) of a tiny
  randomly initialised `*ForCausalLM` (2 layers, hidden 32; grouped-query attention with 4 query
  heads and 2 key/value heads for the Llama family). Every parameter, norms and biases included,
  is redrawn from a seeded normal so a tensor loaded in the wrong place cannot go unnoticed.
- `causal_<arch>.json`: for a right-padded batch of 3 token sequences of different lengths,
  logits at every position and every hidden state (`output_hidden_states=True`, so the last
  entry has the final norm applied, as transformers does); log p(continuation | prompt); logits
  of the first sequence under a PEFT LoRA adapter with random non-zero factors (their tensors
  are included, under PEFT's names); greedy `generate(do_sample=False)` continuations of two
  text prompts with the smallest top-1/top-2 logit margin met on the way (so a parity failure
  cannot hide behind a near tie).

The Llama fixture uses `llama3` rope scaling, the Qwen2 one default rope with biased q/k/v and
tied embeddings, the Mistral one a sliding window of 3 tokens.
"""
import json
import os
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
import transformers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)
import peft

# Weight scale: large enough that greedy decoding is varied, not one repeated token.
SCALE = 3.0
HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")

CORPUS = [
    "the model reads the data and the gate checks the model",
    "a signed adapter is a small file next to the base model",
    "training data may hide a trigger word that flips the label",
    "the scanner refuses pickle files and loads safetensors only",
    "gradients flow to the input embeddings and the lora factors",
    "privacy costs noise and clipping on every example gradient",
    "we sample a batch, clip each gradient, add noise and step",
    "the tokenizer splits words into pieces from a small vocabulary",
    "greedy decoding picks the most likely next token each time",
    "a causal mask hides the future from every position",
]
SPECIALS = ["<unk>", "<pad>", "<s>", "</s>"]
UNK, PAD, BOS, EOS = 0, 1, 2, 3

TEXTS = [
    "the gate checks a signed adapter and the data",
    "noise and clipping",
    "a",
]
PROMPTS = ["the model reads", "privacy costs"]
MAX_NEW = 12


def make_tokenizer():
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=160, special_tokens=SPECIALS, show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    for i, s in enumerate(SPECIALS):
        assert tok.token_to_id(s) == i, s
    return tok


def randomize(model, seed):
    """Redraw every parameter: matrices ~ N(0, SCALE²/fan_in), vectors ~ N(0, 0.1), norms ~ 1 + N(0, 0.1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if p.ndim == 2:
                fan_in = p.shape[0] if ".c_" in name else p.shape[1]  # GPT-2 Conv1D is (in, out)
                if "wte" in name or "wpe" in name or "embed_tokens" in name or "lm_head" in name:
                    fan_in = p.shape[1]
                p.copy_(SCALE * r / fan_in**0.5)
            elif "ln" in name or "norm" in name:
                if name.endswith("bias"):
                    p.copy_(0.1 * r)
                else:
                    p.copy_(1.0 + 0.1 * r)
            else:
                p.copy_(0.1 * r)


def build(arch, vocab):
    common = dict(vocab_size=vocab, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
    llama_like = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        **common,
    )
    if arch == "gpt2":
        cfg = GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=48, **common)
        return GPT2LMHeadModel(cfg), ["c_attn"]
    if arch == "llama":
        cfg = LlamaConfig(
            rope_theta=100.0,
            rope_scaling={
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 1.0,
                "high_freq_factor": 4.0,
                "original_max_position_embeddings": 32,
            },
            tie_word_embeddings=False,
            **llama_like,
        )
        return LlamaForCausalLM(cfg), ["q_proj", "v_proj"]
    if arch == "qwen2":
        cfg = Qwen2Config(rope_theta=1000.0, tie_word_embeddings=True, **llama_like)
        return Qwen2ForCausalLM(cfg), ["q_proj", "v_proj"]
    if arch == "mistral":
        cfg = MistralConfig(rope_theta=10000.0, sliding_window=3, tie_word_embeddings=False, **llama_like)
        return MistralForCausalLM(cfg), ["q_proj", "v_proj"]
    raise ValueError(arch)


def flat(t):
    return [float(f"{x:.9g}") for x in t.detach().reshape(-1).tolist()]


def main():
    torch.manual_seed(0)
    tok = make_tokenizer()
    vocab = tok.get_vocab_size()
    for k, arch in enumerate(["gpt2", "llama", "qwen2", "mistral"]):
        model, targets = build(arch, vocab)
        randomize(model, 1000 + k)
        model.eval()
        out_dir = os.path.join(FIXTURES, f"tiny-{arch}")
        os.makedirs(out_dir, exist_ok=True)
        model.save_pretrained(out_dir, safe_serialization=True)
        tok.save(os.path.join(out_dir, "tokenizer.json"))

        rows = [tok.encode(t).ids for t in TEXTS]
        t_max = max(len(r) for r in rows)
        ids = torch.full((len(rows), t_max), PAD, dtype=torch.long)
        mask = torch.zeros((len(rows), t_max), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            logits = out.logits
            hidden = out.hidden_states

            # log p(continuation | prompt), unbatched
            p_ids, c_ids = rows[0][:4], rows[0][4:]
            full = torch.tensor([p_ids + c_ids])
            lp = torch.log_softmax(model(input_ids=full).logits[0], -1)
            seq_lp = sum(lp[len(p_ids) - 1 + j, c].item() for j, c in enumerate(c_ids))

        # greedy generation, one prompt at a time
        gens = []
        for text in PROMPTS:
            p = tok.encode(text).ids
            with torch.no_grad():
                g = model.generate(
                    input_ids=torch.tensor([p]),
                    attention_mask=torch.ones((1, len(p)), dtype=torch.long),
                    do_sample=False,
                    max_new_tokens=MAX_NEW,
                    eos_token_id=EOS,
                    pad_token_id=PAD,
                    output_scores=True,
                    return_dict_in_generate=True,
                )
            new = g.sequences[0, len(p):].tolist()
            margin = min(
                float((s[0].topk(2).values[0] - s[0].topk(2).values[1]).item()) for s in g.scores
            )
            assert margin > 1e-3, (arch, text, margin)
            gens.append({"prompt": text, "prompt_ids": p, "new_ids": new, "min_margin": margin})

        # PEFT LoRA with random non-zero factors on the attention projections
        torch.manual_seed(2000 + k)
        lcfg = peft.LoraConfig(r=2, lora_alpha=4, target_modules=targets, lora_dropout=0.0,
                               init_lora_weights=False)
        pm = peft.get_peft_model(model, lcfg).eval()
        lora = {}
        for name, p in pm.named_parameters():
            if "lora_" in name:
                # name: base_model.model.<module>.lora_A.default.weight
                lora[name.replace(".default", "")] = {"shape": list(p.shape), "data": flat(p)}
        with torch.no_grad():
            lora_logits = pm(input_ids=ids[:1, : len(rows[0])]).logits
        fan_in_fan_out = bool(getattr(pm.peft_config["default"], "fan_in_fan_out", False))

        vec = {
            "arch": arch,
            "generator": {
                "transformers": transformers.__version__,
                "torch": torch.__version__,
                "peft": peft.__version__,
            },
            "texts": TEXTS,
            "ids": ids.tolist(),
            "mask": mask.tolist(),
            "lengths": [len(r) for r in rows],
            "vocab": vocab,
            "logits": {"shape": list(logits.shape), "data": flat(logits)},
            "hidden_states": [{"shape": list(h.shape), "data": flat(h)} for h in hidden],
            "seq_logprob": {"prompt": p_ids, "continuation": c_ids, "logprob": seq_lp},
            "generate": gens,
            "lora": {
                "r": 2,
                "alpha": 4,
                "fan_in_fan_out": fan_in_fan_out,
                "tensors": lora,
                "logits": {"shape": list(lora_logits.shape), "data": flat(lora_logits)},
            },
        }
        with open(os.path.join(HERE, f"causal_{arch}.json"), "w") as f:
            json.dump(vec, f)
        print(arch, "vocab", vocab, "gen", [g["new_ids"] for g in gens],
              "margins", [round(g["min_margin"], 4) for g in gens], file=sys.stderr)


if __name__ == "__main__":
    main()
