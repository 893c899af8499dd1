//! Verified quantised inference: the provider runs [`infer`] and returns the
//! whole [`Trace`]; the coordinator runs [`verify`], which checks each
//! layer's product with Freivalds' check and recomputes the cheap
//! element-wise steps itself.
//!
//! Why this catches a wrong value anywhere: layer l's claimed product is
//! checked against the claimed input of layer l (the model input, or layer
//! l−1's claimed activation), and layer l's claimed activation is recomputed
//! exactly from its claimed product. By induction from the true input, every
//! accepted trace equals the honest one, except with probability < 2^-60 per
//! layer from Freivalds' check (`freivalds`); an element-wise mismatch is
//! caught with certainty. The first faulty layer is named.
//!
//! # The trace format (`DPTR`, version 1)
//!
//! Little-endian: magic `DPTR`, version `1`, layer count `1..=MAX_LAYERS`,
//! two reserved zero bytes, then per layer the int32 product and the int8
//! activation as DPMX matrices. The provider uploads this; the coordinator
//! decodes it strictly before [`verify`].

use crate::freivalds::{self, Rejection};
use crate::matmul::{self, Blocked, MatmulBackend, Matrix, ShapeError};
use crate::model::{MAX_LAYERS, Model};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use thiserror::Error;

/// What one layer computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerTrace {
    /// `input · weights`, before the bias: what Freivalds' check verifies.
    pub product: Matrix<i32>,
    /// The layer's int8 output: the next layer's input.
    pub activation: Matrix<i8>,
}

/// Every intermediate value of a forward pass, one entry per layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    pub layers: Vec<LayerTrace>,
}

impl Trace {
    /// The model's output: the last layer's activation.
    pub fn output(&self) -> &Matrix<i8> {
        &self.layers[self.layers.len() - 1].activation
    }
}

/// The class each sample's output picks: the index of its largest value,
/// the lowest index on ties.
pub fn predictions(output: &Matrix<i8>) -> Vec<usize> {
    (0..output.rows())
        .map(|i| {
            let row = output.row(i);
            let mut best = 0;
            for (j, &x) in row.iter().enumerate() {
                if x > row[best] {
                    best = j;
                }
            }
            best
        })
        .collect()
}

/// The input does not fit the model.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum InputError {
    #[error("the model takes {expected} features per sample, the input has {got}")]
    Features { expected: usize, got: usize },
    /// So many samples that a layer's product would pass the matrix limits.
    #[error("too many samples for the model: {0}")]
    TooLarge(ShapeError),
}

impl InputError {
    /// A stable, machine-readable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Features { .. } => "inference_input_shape",
            Self::TooLarge(_) => "inference_too_large",
        }
    }
}

/// A forward pass with the default kernel ([`Blocked`]). `input` holds one
/// sample per row.
pub fn infer(model: &Model, input: &Matrix<i8>) -> Result<Trace, InputError> {
    infer_with(&Blocked, model, input)
}

/// A forward pass with any backend.
pub fn infer_with(
    backend: &dyn MatmulBackend,
    model: &Model,
    input: &Matrix<i8>,
) -> Result<Trace, InputError> {
    check_input(model, input)?;
    let mut layers: Vec<LayerTrace> = Vec::with_capacity(model.layers().len());
    for layer in model.layers() {
        let x = layers.last().map_or(input, |l| &l.activation);
        // Shapes chain by the model's construction and every product is
        // within the limits by the input check, so a shape error here would
        // be a bug in this crate.
        let product = backend
            .matmul(x, layer.weights())
            .expect("shapes chain through a checked model");
        let activation = layer.activate(&product);
        layers.push(LayerTrace {
            product,
            activation,
        });
    }
    Ok(Trace { layers })
}

/// Checks the input against the model before any work, so that every
/// product of the pass is within the matrix limits (a wide layer times many
/// samples could otherwise pass them).
fn check_input(model: &Model, input: &Matrix<i8>) -> Result<(), InputError> {
    if input.cols() != model.inputs() {
        return Err(InputError::Features {
            expected: model.inputs(),
            got: input.cols(),
        });
    }
    for layer in model.layers() {
        matmul::check_shape(input.rows(), layer.outputs()).map_err(InputError::TooLarge)?;
    }
    Ok(())
}

/// Why a claimed trace was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TraceRejection {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("the trace has {got} layers, the model {expected}")]
    LayerCount { expected: usize, got: usize },
    #[error("layer {layer}: product: {source}")]
    Product { layer: usize, source: Rejection },
    #[error("layer {layer}: the activation is {got_rows}×{got_cols}, expected {rows}×{cols}")]
    ActivationShape {
        layer: usize,
        rows: usize,
        cols: usize,
        got_rows: usize,
        got_cols: usize,
    },
    #[error("layer {layer}: activation ({row}, {col}) is {got}, recomputed {want}")]
    WrongActivation {
        layer: usize,
        row: usize,
        col: usize,
        want: i8,
        got: i8,
    },
}

impl TraceRejection {
    /// A stable, machine-readable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Input(e) => e.code(),
            Self::LayerCount { .. } => "trace_layer_count",
            Self::Product {
                source: Rejection::WrongProduct { .. },
                ..
            } => "trace_product_wrong",
            Self::Product {
                source: Rejection::Shape(_),
                ..
            } => "trace_product_shape",
            Self::ActivationShape { .. } => "trace_activation_shape",
            Self::WrongActivation { .. } => "trace_activation_wrong",
        }
    }

    /// The first layer found wrong, if the fault is in a layer.
    pub fn layer(&self) -> Option<usize> {
        match self {
            Self::Input(_) | Self::LayerCount { .. } => None,
            Self::Product { layer, .. }
            | Self::ActivationShape { layer, .. }
            | Self::WrongActivation { layer, .. } => Some(*layer),
        }
    }
}

/// Checks a claimed trace of `model` on `input`. The seed must be fixed only
/// after the trace is committed (`freivalds::challenge_seed`); one ChaCha20
/// stream from it gives every layer its own vectors.
pub fn verify(
    model: &Model,
    input: &Matrix<i8>,
    claimed: &Trace,
    seed: [u8; 32],
) -> Result<(), TraceRejection> {
    check_input(model, input)?;
    if claimed.layers.len() != model.layers().len() {
        return Err(TraceRejection::LayerCount {
            expected: model.layers().len(),
            got: claimed.layers.len(),
        });
    }
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut x = input;
    for (layer, (spec, got)) in model.layers().iter().zip(&claimed.layers).enumerate() {
        freivalds::check_with(x, spec.weights(), &got.product, &mut rng)
            .map_err(|source| TraceRejection::Product { layer, source })?;
        // The product's shape is now known to be rows × outputs.
        let (rows, cols) = (got.product.rows(), got.product.cols());
        if (got.activation.rows(), got.activation.cols()) != (rows, cols) {
            return Err(TraceRejection::ActivationShape {
                layer,
                rows,
                cols,
                got_rows: got.activation.rows(),
                got_cols: got.activation.cols(),
            });
        }
        for row in 0..rows {
            let products = got.product.row(row);
            let claimed_row = got.activation.row(row);
            for (col, ((&p, &b), &a)) in products
                .iter()
                .zip(spec.bias())
                .zip(claimed_row)
                .enumerate()
            {
                let want = spec.activate_one(p, b);
                if want != a {
                    return Err(TraceRejection::WrongActivation {
                        layer,
                        row,
                        col,
                        want,
                        got: a,
                    });
                }
            }
        }
        x = &got.activation;
    }
    Ok(())
}

const MAGIC: [u8; 4] = *b"DPTR";
const VERSION: u8 = 1;

/// Why bytes are not a trace.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TraceDecodeError {
    #[error("truncated: need {need} bytes, got {got}")]
    Truncated { need: usize, got: usize },
    #[error("not a DPTR trace (bad magic)")]
    BadMagic,
    #[error("unsupported trace format version {0}")]
    BadVersion(u8),
    #[error("a trace has 1..={MAX_LAYERS} layers, got {0}")]
    LayerCount(usize),
    #[error("reserved bytes are not zero")]
    BadReserved,
    #[error("layer {layer}: {source}")]
    Matrix {
        layer: usize,
        source: matmul::DecodeError,
    },
    #[error("{0} bytes after the last layer")]
    TrailingBytes(usize),
}

impl TraceDecodeError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "trace_truncated",
            Self::BadMagic => "trace_bad_magic",
            Self::BadVersion(_) => "trace_bad_version",
            Self::LayerCount(_) => "trace_layer_count",
            Self::BadReserved => "trace_bad_reserved",
            Self::Matrix { source, .. } => source.code(),
            Self::TrailingBytes(_) => "trace_trailing_bytes",
        }
    }
}

impl Trace {
    /// The DPTR encoding. Panics on an empty or oversized trace, which
    /// [`infer`] never builds.
    pub fn encode(&self) -> Vec<u8> {
        assert!(!self.layers.is_empty() && self.layers.len() <= MAX_LAYERS);
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[VERSION, self.layers.len() as u8, 0, 0]);
        for l in &self.layers {
            l.product.encode_into(&mut out);
            l.activation.encode_into(&mut out);
        }
        out
    }

    /// Decodes exactly one trace. Shapes are not compared with a model here;
    /// [`verify`] does that.
    pub fn decode(bytes: &[u8]) -> Result<Self, TraceDecodeError> {
        let header = bytes.get(..8).ok_or(TraceDecodeError::Truncated {
            need: 8,
            got: bytes.len(),
        })?;
        if header[..4] != MAGIC {
            return Err(TraceDecodeError::BadMagic);
        }
        if header[4] != VERSION {
            return Err(TraceDecodeError::BadVersion(header[4]));
        }
        let count = header[5] as usize;
        if count == 0 || count > MAX_LAYERS {
            return Err(TraceDecodeError::LayerCount(count));
        }
        if header[6..8] != [0, 0] {
            return Err(TraceDecodeError::BadReserved);
        }
        let mut rest = &bytes[8..];
        let mut layers = Vec::with_capacity(count);
        for layer in 0..count {
            let err = |source| TraceDecodeError::Matrix { layer, source };
            let (product, r) = Matrix::<i32>::decode_prefix(rest).map_err(err)?;
            let (activation, r) = Matrix::<i8>::decode_prefix(r).map_err(err)?;
            layers.push(LayerTrace {
                product,
                activation,
            });
            rest = r;
        }
        if !rest.is_empty() {
            return Err(TraceDecodeError::TrailingBytes(rest.len()));
        }
        Ok(Self { layers })
    }
}
