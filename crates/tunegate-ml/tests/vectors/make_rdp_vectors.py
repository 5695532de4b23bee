#!/usr/bin/env python3
"""Generate rdp_vectors.json: reference epsilons from Google's dp-accounting RdpAccountant.

Run from this folder with a venv holding the pinned package:

    python3 -m venv /tmp/venv-dp
    /tmp/venv-dp/bin/pip install dp-accounting==0.6.0
    /tmp/venv-dp/bin/python make_rdp_vectors.py > rdp_vectors.json

The Rust test `crates/tunegate-ml/tests/rdp_vectors.rs` asserts agreement to 1e-3 relative on
every case. Only the default orders and Poisson-subsampled Gaussian events are used, i.e. what
`tunegate dp` computes. Test-time only: tunegate never runs Python.
"""
import json
import math
import sys
from importlib import metadata

from absl import logging
import dp_accounting
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant as rdp

PINNED = "0.6.0"
NOISES = [0.5, 0.8, 1.0, 1.1, 2.0, 4.0, 10.0]
RATES = [0.001, 0.004, 0.01, 0.05, 0.1, 0.5, 1.0]
STEPS = [1, 10, 100, 1000, 10000]
DELTAS = [1e-5, 1e-7]

# Extremes: huge noise (per-step RDP near f64 rounding), huge step counts, tiny delta.
EXTREME_CASES = [
    (1e4, 0.5, 10, 1e-300),
    (1e6, 0.5, 10, 1e-300),
    (1e6, 0.5, 10, 1e-10),
    (72789824.0, 0.5, 10, 1e-10),
    (72789824.0, 0.5, 10, 1e-300),
    (1.0, 0.01, 2**62, 1e-5),
    (1.0, 0.01, 1000, 1e-300),
    (0.3, 0.01, 100, 1e-5),
]

# (target epsilon, sample rate, steps, delta) for the noise-multiplier search.
NOISE_CASES = [
    (1.0, 0.01, 1000, 1e-5),
    (3.0, 0.01, 1000, 1e-5),
    (8.0, 0.01, 1000, 1e-5),
    (1.0, 0.004, 10000, 1e-7),
    (2.0, 0.1, 100, 1e-5),
    (0.5, 0.001, 10000, 1e-5),
    (10.0, 1.0, 1, 1e-5),
    (1.0, 1.0, 10, 1e-6),
    (4.0, 0.05, 3000, 1e-6),
    (0.1, 0.0005, 2000, 1e-5),
]


def event(noise, q, steps):
    return dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(noise)), steps
    )


def epsilon(noise, q, steps, delta):
    acc = rdp.RdpAccountant()  # default orders, add-or-remove-one neighbours
    acc.compose(event(noise, q, steps))
    eps, order = acc.get_epsilon_and_optimal_order(delta)
    return float(eps), float(order)


def main():
    logging.set_verbosity(logging.ERROR)  # orders dropped for non-convergence are expected
    version = metadata.version("dp-accounting")
    if version != PINNED:
        sys.exit(f"dp-accounting {version} installed, {PINNED} pinned")
    cases = []
    for noise in NOISES:
        for q in RATES:
            for steps in STEPS:
                for delta in DELTAS:
                    eps, order = epsilon(noise, q, steps, delta)
                    if not math.isfinite(eps):
                        continue
                    cases.append(dict(noise_multiplier=noise, sample_rate=q, steps=steps,
                                      delta=delta, epsilon=eps, order=order))
    for noise, q, steps, delta in EXTREME_CASES:
        eps, order = epsilon(noise, q, steps, delta)
        cases.append(dict(noise_multiplier=noise, sample_rate=q, steps=steps, delta=delta,
                          epsilon=eps, order=order))
    noise_cases = []
    for target, q, steps, delta in NOISE_CASES:
        noise = dp_accounting.calibrate_dp_mechanism(
            rdp.RdpAccountant, lambda s: event(s, q, steps), target, delta,
            dp_accounting.LowerEndpointAndGuess(0.0, 1.0), tol=1e-7)
        eps, _ = epsilon(noise, q, steps, delta)
        noise_cases.append(dict(target_epsilon=target, sample_rate=q, steps=steps, delta=delta,
                                noise_multiplier=float(noise), epsilon=eps))
    out = {
        "generator": "make_rdp_vectors.py",
        "package": "dp-accounting",
        "version": version,
        "accountant": "RdpAccountant(default orders, ADD_OR_REMOVE_ONE)",
        "calibration": "calibrate_dp_mechanism(tol=1e-7)",
        "epsilon_cases": cases,
        "noise_cases": noise_cases,
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
