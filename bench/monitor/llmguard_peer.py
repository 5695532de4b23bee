"""LLM Guard 0.3.16's regex-based output scanners (Regex, BanSubstrings, Secrets) on the corpus
monitor_bench writes. Their package __init__ files import every scanner (torch, transformers,
presidio-analyzer); only those three modules are loaded here, from the installed wheel, with the
package __init__ files bypassed. Their code runs unmodified.

usage: bench/.venv-llmguard/bin/python bench/monitor/llmguard_peer.py bench/out/monitor-corpus.jsonl
"""
import importlib.util
import json
import os
import sys
import time
import types

import llm_guard_path  # noqa: F401  (sets sys.path; see below)

root = llm_guard_path.ROOT
for name, sub in [("llm_guard", ""), ("llm_guard.output_scanners", "output_scanners"),
                  ("llm_guard.input_scanners", "input_scanners")]:
    m = types.ModuleType(name)
    m.__path__ = [os.path.join(root, sub)] if sub else [root]
    sys.modules[name] = m


def load(name):
    return importlib.import_module(name)


# Logging off (ERROR only), as a production deployment would run it.
load("llm_guard.util").configure_logger(log_level="ERROR")
Regex = load("llm_guard.output_scanners.regex").Regex
BanSubstrings = load("llm_guard.output_scanners.ban_substrings").BanSubstrings
Secrets = load("llm_guard.input_scanners.secrets").Secrets

texts = [json.loads(l)["text"] for l in open(sys.argv[1])]
labels = [json.loads(l)["label"] for l in open(sys.argv[1])]

scanners = {
    "Regex (5 patterns)": Regex(patterns=[
        r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
        r"\bghp_[A-Za-z0-9]{36}\b",
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
        r"curl[^\n|]*\|\s*(?:sudo\s+)?(?:ba)?sh\b",
        r"\b(?:postgres|mysql|mongodb)://[^\s:@]+:[^\s@]+@",
    ], is_blocked=True, redact=False),
    "BanSubstrings (4 strings)": BanSubstrings(substrings=["| sh", "| bash", "PRIVATE KEY-----", "AKIA"],
                                               match_type="str", case_sensitive=False, redact=False),
    "Secrets (detect-secrets)": Secrets(redact_mode="all"),
}
for name, s in scanners.items():
    n = 0
    flagged = 0
    t0 = time.perf_counter()
    # detect-secrets writes a temp file per call (~0.5 s each here): a 200-text prefix.
    subset = 200 if name.startswith("Secrets") else len(texts)
    reps = 1 if name.startswith("Secrets") else 5
    for _ in range(reps):
        flagged = 0
        for t, lab in zip(texts[:subset], labels[:subset]):
            if name.startswith("Secrets"):
                _, valid, _ = s.scan(t)
            else:
                _, valid, _ = s.scan("", t)
            flagged += (not valid)
            n += 1
    el = time.perf_counter() - t0
    sub_mb = sum(len(t.encode()) for t in texts[:subset]) / 1e6
    print(f"{name}: {n / el:.1f} texts/s, {sub_mb * reps / el:.3f} MB/s, "
          f"{flagged} flagged of {sum(labels[:subset])} labelled in {subset} texts")
