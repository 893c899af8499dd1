//! The shipped example: an MLP (64 → 32 → 10) trained on scikit-learn's 8×8
//! digits and quantised to int8 by `tools/digits/train.py`, with a held-out
//! test set the script wrote beside it. Regenerate all four files by running
//! the script; the tests check the figures it printed.

/// The model, DPMD.
pub const DIGITS_MODEL: &[u8] = include_bytes!("../models/digits-mlp.dpmd");
/// The test inputs, DPMX int8, one 8×8 image per row (pixels 0..=16 × 7).
pub const DIGITS_TEST_INPUTS: &[u8] = include_bytes!("../models/digits-test-inputs.dpmx");
/// The test labels, DPMX int8, one row per input.
pub const DIGITS_TEST_LABELS: &[u8] = include_bytes!("../models/digits-test-labels.dpmx");
/// What the script measured, JSON: `samples`, `correct`, `accuracy`, `float_accuracy`.
pub const DIGITS_EXPECTED: &str = include_str!("../models/digits-expected.json");
