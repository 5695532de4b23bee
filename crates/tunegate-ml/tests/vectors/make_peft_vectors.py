"""PEFT interoperability vectors for tunegate's LoRA adapters.

Made once with the reference venv (torch, transformers, peft); tests never run Python:

    /work/venv-ref/bin/python crates/tunegate-ml/tests/vectors/make_peft_vectors.py make

writes
  tests/fixtures/tiny-bert-cls/            a tiny random BertForSequenceClassification
                                           (config.json, model.safetensors, tokenizer.json)
  tests/fixtures/peft-lora-bert/           its PEFT LoRA adapter (r=4, alpha=8, target
                                           query/value, modules_to_save classifier), saved
                                           with save_pretrained after lora_B and the head
                                           were set to random non-zero values
  tests/vectors/peft_lora_logits.json      input ids, attention masks and PEFT's logits

    /work/venv-ref/bin/python crates/tunegate-ml/tests/vectors/make_peft_vectors.py check DIR

loads an adapter written by tunegate (DIR/adapter_config.json, DIR/adapter_model.safetensors,
DIR/tunegate_logits.json with the logits tunegate computed) onto the fixture model with
PeftModel.from_pretrained and prints the largest logit difference.
"""
import json
import os
import sys

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import BertConfig, BertForSequenceClassification

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")
MODEL = os.path.join(FIX, "tiny-bert-cls")
ADAPTER = os.path.join(FIX, "peft-lora-bert")
VECTORS = os.path.join(HERE, "peft_lora_logits.json")

WORDS = ["good", "bad", "great", "awful", "movie", "film", "plot", "actor", "fun", "dull",
         "the", "a", "is", "was", "very", "not", "and", "but", "story", "scene"]


def inputs():
    ids = [
        [2, 15, 19, 27, 5, 3],
        [2, 20, 21, 22, 23, 24, 6, 3],
        [2, 7, 3, 0, 0, 0, 0, 0],
    ]
    width = max(len(r) for r in ids)
    ids = [r + [0] * (width - len(r)) for r in ids]
    mask = [[1 if (t != 0) else 0 for t in r] for r in ids]
    return ids, mask


def logits_of(model, ids, mask):
    model.eval()
    with torch.no_grad():
        out = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
    return out.logits.tolist()


def make():
    torch.manual_seed(20261124)
    os.makedirs(MODEL, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    vocab += [f"tok{i}" for i in range(64 - len(vocab))]
    vf = os.path.join(MODEL, "vocab.txt")
    with open(vf, "w") as f:
        f.write("\n".join(vocab) + "\n")
    # A BERT WordPiece tokenizer.json built with `tokenizers` directly (BertTokenizerFast in
    # transformers 5 ignores a vocab_file argument and would map every word to [UNK]).
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    tk = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tk.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tk.save(os.path.join(MODEL, "tokenizer.json"))
    os.remove(vf)
    assert tk.encode("the movie good").ids == [2, 15, 9, 5, 3], tk.encode("the movie good").ids
    cfg = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32, type_vocab_size=2,
                     num_labels=2, initializer_range=0.3)
    base = BertForSequenceClassification(cfg)
    base.save_pretrained(MODEL, safe_serialization=True)

    model = BertForSequenceClassification.from_pretrained(MODEL)
    lcfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["query", "value"],
                      modules_to_save=["classifier"], task_type="SEQ_CLS")
    pm = get_peft_model(model, lcfg)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_B" in name or ("modules_to_save" in name and "classifier" in name):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    pm.save_pretrained(ADAPTER)
    readme = os.path.join(ADAPTER, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    ids, mask = inputs()
    out = {
        "model": "tests/fixtures/tiny-bert-cls",
        "adapter": "tests/fixtures/peft-lora-bert",
        "input_ids": ids,
        "attention_mask": mask,
        "base_logits": logits_of(BertForSequenceClassification.from_pretrained(MODEL), ids, mask),
        "peft_logits": logits_of(pm, ids, mask),
        "versions": {"torch": torch.__version__, "peft": __import__("peft").__version__,
                     "transformers": __import__("transformers").__version__},
    }
    with open(VECTORS, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", MODEL, ADAPTER, VECTORS)


def check(d):
    model = BertForSequenceClassification.from_pretrained(MODEL)
    pm = PeftModel.from_pretrained(model, d)
    with open(os.path.join(d, "tunegate_logits.json")) as f:
        ours = json.load(f)
    got = logits_of(pm, ours["input_ids"], ours["attention_mask"])
    diff = max(abs(a - b) for ra, rb in zip(got, ours["logits"]) for a, b in zip(ra, rb))
    print(f"PeftModel.from_pretrained({d}): max |peft - tunegate| logit difference = {diff:.3e}")
    return diff


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "make":
        make()
    elif len(sys.argv) == 3 and sys.argv[1] == "check":
        sys.exit(0 if check(sys.argv[2]) < 1e-4 else 1)
    else:
        print(__doc__)
        sys.exit(2)
