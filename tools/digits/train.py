#!/usr/bin/env python3
"""Train, quantise and export the compute sector's example model.

An MLP 64 -> 32 (ReLU) -> 10 on scikit-learn's bundled 8x8 digits (no
download), quantised to int8 weights, int32 biases and fixed-point
requantisation, written in the formats of crates/depin-sector-compute:

  models/digits-mlp.dpmd          the model (DPMD)
  models/digits-test-inputs.dpmx  held-out inputs, int8, one image per row
  models/digits-test-labels.dpmx  their labels, int8, one per row
  models/digits-expected.json     what this script measured

The quantised forward pass below is integer-exact and mirrors
`Layer::activate` in model.rs (round half to even, saturate to int8), so the
Rust test must reproduce the accuracy printed here to the sample.

Run once from the repository root, then commit the outputs:

  pip install scikit-learn
  python3 tools/digits/train.py
"""

import json
import math
import os
import struct

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "depin-sector-compute", "models")
SEED = 7
HIDDEN = 32
# Pixels are 0..=16; x7 maps them to 0..=112, inside int8.
INPUT_SCALE = 7


def dpmx(matrix, element):
    """A DPMX matrix: magic, version 1, element type, reserved, rows, cols, data LE."""
    rows, cols = matrix.shape
    code, dtype = {"int8": (1, "<i1"), "int32": (2, "<i4")}[element]
    info = np.iinfo(dtype)
    assert matrix.min() >= info.min and matrix.max() <= info.max
    header = b"DPMX" + struct.pack("<BBHII", 1, code, 0, rows, cols)
    return header + np.ascontiguousarray(matrix, dtype=dtype).tobytes()


def requant_params(scale):
    """multiplier < 2^31 and shift such that multiplier / 2^shift ~ scale."""
    assert 0 < scale < 1
    shift = 30 - math.floor(math.log2(scale))
    multiplier = round(scale * 2**shift)
    if multiplier >= 2**31:
        shift -= 1
        multiplier = round(scale * 2**shift)
    assert 2**29 <= multiplier < 2**31 and 0 <= shift <= 62
    return multiplier, shift


def requant(x, multiplier, shift):
    """round_half_even(x * multiplier / 2^shift), saturated to int8, exactly
    on Python integers (int64 could overflow in the product)."""
    out = np.empty(x.shape, dtype=np.int64)
    flat = out.reshape(-1)
    for i, v in enumerate(x.reshape(-1).tolist()):
        num = v * multiplier
        q, r = divmod(num, 1 << shift)  # floor division, r in [0, 2^shift)
        half = 1 << (shift - 1)
        if r > half or (r == half and q % 2 == 1):
            q += 1
        flat[i] = min(127, max(-128, q))
    return out


def layer_forward(x, w, b, relu, multiplier, shift):
    pre = x.astype(np.int64) @ w.astype(np.int64) + b.astype(np.int64)
    if relu:
        pre = np.maximum(pre, 0)
    return requant(pre, multiplier, shift)


def main():
    digits = load_digits()
    x = digits.data.astype(np.int64)  # 0..=16
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=360, random_state=SEED, stratify=y
    )

    # Train in float on pixels / 16.
    mlp = MLPClassifier(
        hidden_layer_sizes=(HIDDEN,), activation="relu", max_iter=2000, random_state=SEED
    )
    mlp.fit(x_train / 16.0, y_train)
    float_accuracy = mlp.score(x_test / 16.0, y_test)
    w1, w2 = mlp.coefs_
    b1, b2 = mlp.intercepts_

    # Input: float value = x_q * s_in with x_q = pixel * INPUT_SCALE.
    s_in = 1.0 / (16.0 * INPUT_SCALE)
    xq_train = x_train * INPUT_SCALE
    xq_test = x_test * INPUT_SCALE

    # Layer 1: symmetric per-tensor int8 weights; the bias in the
    # accumulator's scale; the hidden activation scaled so the largest
    # training activation maps to 127.
    s_w1 = np.abs(w1).max() / 127.0
    w1q = np.round(w1 / s_w1).astype(np.int64)
    b1q = np.round(b1 / (s_in * s_w1)).astype(np.int64)
    acc1 = np.maximum(xq_train @ w1q + b1q, 0)
    s_h = acc1.max() * s_in * s_w1 / 127.0
    m1, sh1 = requant_params(s_in * s_w1 / s_h)

    h_train = layer_forward(xq_train, w1q, b1q, True, m1, sh1)

    # Layer 2: the logits scaled so the largest training magnitude maps to 127.
    s_w2 = np.abs(w2).max() / 127.0
    w2q = np.round(w2 / s_w2).astype(np.int64)
    b2q = np.round(b2 / (s_h * s_w2)).astype(np.int64)
    acc2 = h_train @ w2q + b2q
    s_o = np.abs(acc2).max() * s_h * s_w2 / 127.0
    m2, sh2 = requant_params(s_h * s_w2 / s_o)

    def predict(xq):
        h = layer_forward(xq, w1q, b1q, True, m1, sh1)
        out = layer_forward(h, w2q, b2q, False, m2, sh2)
        return np.argmax(out, axis=1)  # first maximum on ties, as in Rust

    correct = int((predict(xq_test) == y_test).sum())
    accuracy = correct / len(y_test)

    model = b"DPMD" + struct.pack("<BBH", 1, 2, 0)
    for w, b, relu, m, sh in [(w1q, b1q, True, m1, sh1), (w2q, b2q, False, m2, sh2)]:
        model += struct.pack("<BBHI", 1 if relu else 0, sh, 0, m)
        model += dpmx(w, "int8") + dpmx(b.reshape(1, -1), "int32")

    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "digits-mlp.dpmd"), "wb") as f:
        f.write(model)
    with open(os.path.join(OUT, "digits-test-inputs.dpmx"), "wb") as f:
        f.write(dpmx(xq_test, "int8"))
    with open(os.path.join(OUT, "digits-test-labels.dpmx"), "wb") as f:
        f.write(dpmx(y_test.reshape(-1, 1), "int8"))
    expected = {
        "samples": len(y_test),
        "correct": correct,
        "accuracy": round(accuracy, 4),
        "float_accuracy": round(float_accuracy, 4),
    }
    with open(os.path.join(OUT, "digits-expected.json"), "w") as f:
        json.dump(expected, f, indent=2)
        f.write("\n")
    print(f"float accuracy {float_accuracy:.4f}")
    print(f"int8 accuracy  {accuracy:.4f} ({correct}/{len(y_test)})")
    print(f"layer 1: multiplier {m1} shift {sh1}; layer 2: multiplier {m2} shift {sh2}")


if __name__ == "__main__":
    main()
