//! A quantised network: a sequence of int8 matmul layers, each with an int32
//! bias, an optional ReLU and a requantisation back to int8 by a fixed-point
//! scale, and its binary format.
//!
//! # One layer
//!
//! For an int8 input `X` (one sample per row) and the layer's int8 weights
//! `W` (inputs × outputs):
//!
//! ```text
//! product    = X · W                                   int32, exact
//! pre        = product + bias     (bias broadcast over rows, in i64)
//! pre        = max(pre, 0)        if the layer has ReLU
//! activation = saturate_i8(round_half_even(pre · multiplier / 2^shift))
//! ```
//!
//! `product` is what Freivalds' check verifies; everything after it is
//! element-wise and cheap, so a verifier recomputes it (`inference`).
//!
//! # Rounding
//!
//! Division by 2^shift rounds to nearest, ties to even, computed exactly on
//! integers (no floating point anywhere), then saturates to [-128, 127].
//! Ties to even is the IEEE default and NumPy's `rint`, so the training
//! script reproduces it bit for bit; it also has no bias towards +∞ that
//! half-up rounding would add to every layer.
//!
//! # The model format (`DPMD`, version 1)
//!
//! Little-endian. An 8-byte header — magic `DPMD`, version `1`, layer count
//! `1..=MAX_LAYERS`, two reserved zero bytes — then per layer:
//!
//! | size | field |
//! |---|---|
//! | 1 | flags: bit 0 = ReLU, other bits 0 |
//! | 1 | shift, `0..=MAX_SHIFT` |
//! | 2 | reserved, `0` |
//! | 4 | multiplier, `1..=i32::MAX` |
//! | … | weights: a DPMX int8 matrix, inputs × outputs |
//! | … | bias: a DPMX int32 matrix, 1 × outputs |
//!
//! Each layer's inputs equal the previous layer's outputs, and the file ends
//! after the last layer. The embedded matrices go through the matrix decoder,
//! so its limits bound every allocation.

use crate::matmul::{self, Matrix};
use thiserror::Error;

const MAGIC: [u8; 4] = *b"DPMD";
const VERSION: u8 = 1;
/// The most layers a model may have.
pub const MAX_LAYERS: usize = 64;
/// The largest requantisation shift. With a multiplier below 2^31 it allows
/// scales down to 2^-62, far below any useful one, and keeps `1 << shift`
/// inside i64.
pub const MAX_SHIFT: u8 = 62;

/// A fixed-point scale: multiply by `multiplier`, then divide by 2^`shift`
/// rounding half to even (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requant {
    multiplier: u32,
    shift: u8,
}

impl Requant {
    pub fn new(multiplier: u32, shift: u8) -> Result<Self, ModelError> {
        if multiplier == 0 || multiplier > i32::MAX as u32 {
            return Err(ModelError::BadMultiplier(multiplier));
        }
        if shift > MAX_SHIFT {
            return Err(ModelError::BadShift(shift));
        }
        Ok(Self { multiplier, shift })
    }

    pub fn multiplier(self) -> u32 {
        self.multiplier
    }

    pub fn shift(self) -> u8 {
        self.shift
    }

    /// `saturate_i8(round_half_even(x · multiplier / 2^shift))`, exact.
    pub fn apply(self, x: i64) -> i8 {
        // |x| < 2^63 and multiplier < 2^31: the product fits i128 exactly.
        let v = x as i128 * self.multiplier as i128;
        let q = if self.shift == 0 {
            v
        } else {
            let q = v >> self.shift; // floor
            let r = v - (q << self.shift); // in [0, 2^shift)
            let half = 1i128 << (self.shift - 1);
            if r > half || (r == half && q & 1 == 1) {
                q + 1
            } else {
                q
            }
        };
        q.clamp(i8::MIN as i128, i8::MAX as i128) as i8
    }
}

/// One layer (module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    weights: Matrix<i8>,
    bias: Vec<i32>,
    relu: bool,
    requant: Requant,
}

impl Layer {
    /// `weights` is inputs × outputs; `bias` has one entry per output.
    pub fn new(
        weights: Matrix<i8>,
        bias: Vec<i32>,
        relu: bool,
        requant: Requant,
    ) -> Result<Self, ModelError> {
        if bias.len() != weights.cols() {
            return Err(ModelError::BiasLength {
                outputs: weights.cols(),
                got: bias.len(),
            });
        }
        Ok(Self {
            weights,
            bias,
            relu,
            requant,
        })
    }

    pub fn weights(&self) -> &Matrix<i8> {
        &self.weights
    }

    pub fn bias(&self) -> &[i32] {
        &self.bias
    }

    pub fn relu(&self) -> bool {
        self.relu
    }

    pub fn requant(&self) -> Requant {
        self.requant
    }

    pub fn inputs(&self) -> usize {
        self.weights.rows()
    }

    pub fn outputs(&self) -> usize {
        self.weights.cols()
    }

    /// The element-wise steps after the product: bias, ReLU, requantisation.
    /// `product` must have [`Self::outputs`] columns.
    pub fn activate(&self, product: &Matrix<i32>) -> Matrix<i8> {
        debug_assert_eq!(product.cols(), self.outputs());
        let data = product
            .data()
            .chunks_exact(self.outputs())
            .flat_map(|row| {
                row.iter()
                    .zip(&self.bias)
                    .map(|(&p, &b)| self.activate_one(p, b))
            })
            .collect();
        Matrix::new(product.rows(), product.cols(), data).expect("same shape as a valid matrix")
    }

    /// One element: `product` + `bias`, ReLU, requantised.
    #[inline]
    pub fn activate_one(&self, product: i32, bias: i32) -> i8 {
        // In i64, so a claimed product near the int32 limits cannot overflow.
        let mut pre = product as i64 + bias as i64;
        if self.relu {
            pre = pre.max(0);
        }
        self.requant.apply(pre)
    }
}

/// A checked sequence of layers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    layers: Vec<Layer>,
}

/// Why layers or bytes are not a model.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ModelError {
    #[error("not a DPMD model (bad magic)")]
    BadMagic,
    #[error("unsupported model format version {0}")]
    BadVersion(u8),
    #[error("a model has 1..={MAX_LAYERS} layers, got {0}")]
    LayerCount(usize),
    #[error("reserved bytes are not zero")]
    BadReserved,
    #[error("unknown layer flags {0:#04x}")]
    BadFlags(u8),
    #[error("requantisation multiplier {0} is outside 1..=2^31-1")]
    BadMultiplier(u32),
    #[error("requantisation shift {0} is above {MAX_SHIFT}")]
    BadShift(u8),
    #[error("the bias has {got} entries for {outputs} outputs")]
    BiasLength { outputs: usize, got: usize },
    #[error("layer {layer} takes {inputs} inputs but the layer before gives {previous}")]
    LayerChain {
        layer: usize,
        inputs: usize,
        previous: usize,
    },
    #[error("truncated: need {need} bytes, got {got}")]
    Truncated { need: usize, got: usize },
    #[error("layer {layer}: {source}")]
    Matrix {
        layer: usize,
        source: matmul::DecodeError,
    },
    #[error("{0} bytes after the last layer")]
    TrailingBytes(usize),
}

impl ModelError {
    /// A stable, machine-readable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadMagic => "model_bad_magic",
            Self::BadVersion(_) => "model_bad_version",
            Self::LayerCount(_) => "model_layer_count",
            Self::BadReserved => "model_bad_reserved",
            Self::BadFlags(_) => "model_bad_flags",
            Self::BadMultiplier(_) => "model_bad_multiplier",
            Self::BadShift(_) => "model_bad_shift",
            Self::BiasLength { .. } => "model_bias_length",
            Self::LayerChain { .. } => "model_layer_chain",
            Self::Truncated { .. } => "model_truncated",
            Self::Matrix { source, .. } => source.code(),
            Self::TrailingBytes(_) => "model_trailing_bytes",
        }
    }
}

const FLAG_RELU: u8 = 1;

impl Model {
    pub fn new(layers: Vec<Layer>) -> Result<Self, ModelError> {
        if layers.is_empty() || layers.len() > MAX_LAYERS {
            return Err(ModelError::LayerCount(layers.len()));
        }
        for (i, pair) in layers.windows(2).enumerate() {
            if pair[1].inputs() != pair[0].outputs() {
                return Err(ModelError::LayerChain {
                    layer: i + 1,
                    inputs: pair[1].inputs(),
                    previous: pair[0].outputs(),
                });
            }
        }
        Ok(Self { layers })
    }

    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Features per input sample.
    pub fn inputs(&self) -> usize {
        self.layers[0].inputs()
    }

    /// Values per output sample.
    pub fn outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].outputs()
    }

    /// Multiply-accumulates of one forward pass per sample.
    pub fn macs_per_sample(&self) -> usize {
        self.layers.iter().map(|l| l.inputs() * l.outputs()).sum()
    }

    /// The DPMD encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        // The layer count is at most MAX_LAYERS = 64 by construction.
        out.extend_from_slice(&[VERSION, self.layers.len() as u8, 0, 0]);
        for l in &self.layers {
            out.push(if l.relu { FLAG_RELU } else { 0 });
            out.push(l.requant.shift);
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&l.requant.multiplier.to_le_bytes());
            l.weights.encode_into(&mut out);
            let bias =
                Matrix::new(1, l.bias.len(), l.bias.clone()).expect("bias matches a valid matrix");
            bias.encode_into(&mut out);
        }
        out
    }

    /// Decodes exactly one model.
    pub fn decode(bytes: &[u8]) -> Result<Self, ModelError> {
        let truncated = |need: usize| ModelError::Truncated {
            need,
            got: bytes.len(),
        };
        let header = bytes.get(..8).ok_or(truncated(8))?;
        if header[..4] != MAGIC {
            return Err(ModelError::BadMagic);
        }
        if header[4] != VERSION {
            return Err(ModelError::BadVersion(header[4]));
        }
        let count = header[5] as usize;
        if count == 0 || count > MAX_LAYERS {
            return Err(ModelError::LayerCount(count));
        }
        if header[6..8] != [0, 0] {
            return Err(ModelError::BadReserved);
        }
        let mut rest = &bytes[8..];
        let mut layers = Vec::with_capacity(count);
        for layer in 0..count {
            let at = bytes.len() - rest.len();
            let h = rest.get(..8).ok_or(truncated(at + 8))?;
            let flags = h[0];
            if flags & !FLAG_RELU != 0 {
                return Err(ModelError::BadFlags(flags));
            }
            if h[2..4] != [0, 0] {
                return Err(ModelError::BadReserved);
            }
            let requant = Requant::new(u32::from_le_bytes([h[4], h[5], h[6], h[7]]), h[1])?;
            let matrix_err = |source| ModelError::Matrix { layer, source };
            let (weights, r) = Matrix::<i8>::decode_prefix(&rest[8..]).map_err(matrix_err)?;
            let (bias, r) = Matrix::<i32>::decode_prefix(r).map_err(matrix_err)?;
            if bias.rows() != 1 {
                return Err(ModelError::BiasLength {
                    outputs: weights.cols(),
                    got: bias.rows() * bias.cols(),
                });
            }
            layers.push(Layer::new(
                weights,
                bias.into_data(),
                flags & FLAG_RELU != 0,
                requant,
            )?);
            rest = r;
        }
        if !rest.is_empty() {
            return Err(ModelError::TrailingBytes(rest.len()));
        }
        Self::new(layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: exact rational rounding on i128, written differently
    /// from `apply` (nearest by comparing twice the remainder with the
    /// divisor).
    fn reference(x: i64, m: u32, shift: u8) -> i8 {
        let num = x as i128 * m as i128;
        let den = 1i128 << shift;
        let q = num.div_euclid(den);
        let r2 = 2 * num.rem_euclid(den);
        let q = match r2.cmp(&den) {
            std::cmp::Ordering::Less => q,
            std::cmp::Ordering::Greater => q + 1,
            std::cmp::Ordering::Equal => q + (q & 1),
        };
        q.clamp(-128, 127) as i8
    }

    #[test]
    fn rounding_examples() {
        let half = Requant::new(1, 1).unwrap(); // ×1/2
        for (x, want) in [
            (1, 0),
            (3, 2),
            (5, 2),
            (-1, 0),
            (-3, -2),
            (-5, -2),
            (2, 1),
            (7, 4),
        ] {
            assert_eq!(half.apply(x), want, "{x}/2");
        }
        let quarter = Requant::new(1, 2).unwrap(); // ×1/4
        for (x, want) in [(1, 0), (2, 0), (3, 1), (6, 2), (10, 2), (-2, 0), (-6, -2)] {
            assert_eq!(quarter.apply(x), want, "{x}/4");
        }
        let big = Requant::new(i32::MAX as u32, 0).unwrap();
        assert_eq!(big.apply(1), 127);
        assert_eq!(big.apply(-1), -128);
        assert_eq!(big.apply(0), 0);
        let tiny = Requant::new(1, MAX_SHIFT).unwrap();
        // (2^63 − 1) / 2^62 = 1.99…, nearest 2.
        assert_eq!(tiny.apply(i64::MAX), 2);
        assert_eq!(tiny.apply(i64::MIN), -2);
        assert_eq!(
            Requant::new(0, 0).unwrap_err().code(),
            "model_bad_multiplier"
        );
        assert_eq!(
            Requant::new(1 << 31, 0).unwrap_err().code(),
            "model_bad_multiplier"
        );
        assert_eq!(Requant::new(1, 63).unwrap_err().code(), "model_bad_shift");
    }

    proptest! {
        #[test]
        fn requant_matches_reference(
            x in prop_oneof![any::<i64>(), -1_000_000i64..1_000_000, Just(i64::MIN), Just(i64::MAX), Just(0)],
            m in prop_oneof![1u32..=i32::MAX as u32, Just(1), Just(i32::MAX as u32)],
            shift in 0u8..=MAX_SHIFT,
        ) {
            let r = Requant::new(m, shift).unwrap();
            prop_assert_eq!(r.apply(x), reference(x, m, shift));
        }

        /// Exact ties, which random inputs almost never hit: (2k + 1) / 2
        /// goes to the even neighbour.
        #[test]
        fn ties_go_to_even(k in -200i64..200, shift in 1u8..=41) {
            let x = (2 * k + 1) << (shift - 1);
            let r = Requant::new(1, shift).unwrap();
            let even = if k % 2 == 0 { k } else { k + 1 };
            prop_assert_eq!(r.apply(x) as i64, even.clamp(-128, 127));
            prop_assert_eq!(r.apply(x), reference(x, 1, shift));
        }
    }

    pub(crate) fn small_model() -> Model {
        let w1 = Matrix::from_fn(3, 4, |i, j| (i as i8 * 37 - j as i8 * 11) % 100).unwrap();
        let w2 = Matrix::from_fn(4, 2, |i, j| (i as i8 * 5 + j as i8 * 13) - 20).unwrap();
        Model::new(vec![
            Layer::new(w1, vec![5, -7, 0, 100], true, Requant::new(3, 4).unwrap()).unwrap(),
            Layer::new(w2, vec![-3, 9], false, Requant::new(1 << 20, 22).unwrap()).unwrap(),
        ])
        .unwrap()
    }

    #[test]
    fn roundtrip_and_golden_header() {
        let m = small_model();
        let bytes = m.encode();
        assert_eq!(&bytes[..8], b"DPMD\x01\x02\x00\x00");
        // First layer header: ReLU, shift 4, reserved, multiplier 3.
        assert_eq!(&bytes[8..16], &[1, 4, 0, 0, 3, 0, 0, 0]);
        assert_eq!(Model::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn decoder_refuses_bad_models() {
        let good = small_model().encode();
        let code = |b: &[u8]| Model::decode(b).unwrap_err().code();
        for cut in 0..good.len() {
            let c = code(&good[..cut]);
            assert!(
                c == "model_truncated" || c == "matrix_truncated",
                "cut at {cut}: {c}"
            );
        }
        let edit = |at: usize, v: u8| {
            let mut b = good.clone();
            b[at] = v;
            b
        };
        assert_eq!(code(&edit(0, b'X')), "model_bad_magic");
        assert_eq!(code(&edit(4, 0)), "model_bad_version");
        assert_eq!(code(&edit(5, 0)), "model_layer_count");
        assert_eq!(code(&edit(5, 65)), "model_layer_count");
        assert_eq!(code(&edit(5, 255)), "model_layer_count");
        assert_eq!(code(&edit(5, 3)), "model_truncated");
        assert_eq!(code(&edit(5, 1)), "model_trailing_bytes");
        assert_eq!(code(&edit(6, 1)), "model_bad_reserved");
        assert_eq!(code(&edit(8, 2)), "model_bad_flags");
        assert_eq!(code(&edit(8, 0x81)), "model_bad_flags");
        assert_eq!(code(&edit(9, 63)), "model_bad_shift");
        assert_eq!(code(&edit(9, 255)), "model_bad_shift");
        assert_eq!(code(&edit(10, 1)), "model_bad_reserved");
        // Multiplier 0, and 2^31 (one past the largest).
        let mut b = good.clone();
        b[12..16].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(code(&b), "model_bad_multiplier");
        b[12..16].copy_from_slice(&(1u32 << 31).to_le_bytes());
        assert_eq!(code(&b), "model_bad_multiplier");
        b[12..16].copy_from_slice(&(i32::MAX as u32).to_le_bytes());
        assert!(Model::decode(&b).is_ok());
        // The weights' element type byte (offset 16 + 5).
        assert_eq!(code(&edit(21, 2)), "matrix_wrong_element_type");
        let mut b = good.clone();
        b.push(0);
        assert_eq!(code(&b), "model_trailing_bytes");
    }

    #[test]
    fn layers_must_chain() {
        let w = |r, c| Matrix::<i8>::zeros(r, c).unwrap();
        let q = Requant::new(1, 0).unwrap();
        let l1 = Layer::new(w(3, 4), vec![0; 4], true, q).unwrap();
        let l2 = Layer::new(w(5, 2), vec![0; 2], false, q).unwrap();
        assert_eq!(
            Model::new(vec![l1.clone(), l2]).unwrap_err().code(),
            "model_layer_chain"
        );
        assert_eq!(
            Layer::new(w(3, 4), vec![0; 3], true, q).unwrap_err().code(),
            "model_bias_length"
        );
        assert_eq!(Model::new(vec![]).unwrap_err().code(), "model_layer_count");
        // The chain check also runs on decoded bytes: a 3→4 layer twice.
        let mut bytes = Model::new(vec![l1.clone()]).unwrap().encode();
        let layer = bytes[8..].to_vec();
        bytes.extend_from_slice(&layer);
        bytes[5] = 2;
        assert_eq!(
            Model::decode(&bytes).unwrap_err().code(),
            "model_layer_chain"
        );
        // A bias matrix with two rows.
        let mut bytes = Model::new(vec![l1]).unwrap().encode();
        let bias_at = 8 + 8 + 16 + 12;
        bytes[bias_at + 8..bias_at + 12].copy_from_slice(&2u32.to_le_bytes());
        bytes[bias_at + 12..bias_at + 16].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(
            Model::decode(&bytes).unwrap_err().code(),
            "model_bias_length"
        );
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(m) = Model::decode(&bytes) {
                prop_assert_eq!(m.encode(), bytes);
            }
        }

        /// Mutating any one byte of a valid model gives an error or a model
        /// that re-encodes to the mutated bytes, never a panic.
        #[test]
        fn single_byte_mutations(at in any::<prop::sample::Index>(), v in any::<u8>()) {
            let mut b = small_model().encode();
            let i = at.index(b.len());
            b[i] = v;
            if let Ok(m) = Model::decode(&b) {
                prop_assert_eq!(m.encode(), b);
            }
        }
    }
}
