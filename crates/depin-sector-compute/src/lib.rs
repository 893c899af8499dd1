//! The compute sector's pure, verifiable core.
//!
//! - [`field`]: arithmetic in GF(2^61 − 1);
//! - [`matmul`]: int8 × int8 → int32 matrices, their strict binary format
//!   (`DPMX`), the [`MatmulBackend`] trait, the naive reference and the
//!   cache-blocked CPU kernel;
//! - [`freivalds`]: checking a claimed product in O(n²) with a seeded random
//!   vector, false accept < 2^-60 in one round;
//! - [`model`] and [`inference`]: quantised networks (`DPMD`), forward
//!   passes that return every intermediate activation (`DPTR`), and the
//!   verifier that checks a claimed trace layer by layer;
//! - [`examples`]: the shipped digits model and its test set.
//!
//! Pure: no I/O, no clock, randomness only from seed arguments. The sector
//! plugin (jobs, escrow, the verifier behind the seam) will sit on top.

pub mod examples;
pub mod field;
pub mod freivalds;
pub mod inference;
pub mod matmul;
pub mod model;

pub use freivalds::{ROUNDS, Rejection, challenge_seed};
pub use inference::{Trace, TraceRejection, infer, infer_with, verify};
pub use matmul::{Blocked, MatmulBackend, Matrix, Naive};
pub use model::{Layer, Model, Requant};
