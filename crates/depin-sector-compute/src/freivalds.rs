//! Freivalds' check of a claimed product `C = A·B` over GF(2^61 − 1).
//!
//! Draw a vector `r` uniform in F_p^n and test `A·(B·r) = C·r`: three
//! matrix-vector products, O(n²), against O(n³) to recompute `A·B`.
//!
//! # Soundness, and why one round
//!
//! Let `D = C − A·B` over the integers. Every entry of `A·B` is below 2^30 in
//! magnitude (`matmul` module docs) and every claimed entry of `C` is an
//! int32, so `|D_ij| < 2^31 + 2^30 < p`: a wrong entry is a non-zero integer
//! smaller than p, hence non-zero mod p. If row i of D is non-zero,
//! `(D·r)_i = Σ_j D_ij·r_j` is a non-zero linear form in `r`, which vanishes
//! on exactly a 1/p fraction of F_p^n. So one round accepts a wrong product
//! with probability at most 1/p = 1/(2^61 − 1) < 2^-60, and [`ROUNDS`] = 1
//! meets the target; k rounds would give p^-k. (With 0/1 vectors a round
//! only gives 1/2, and 61 rounds would be needed.)
//!
//! # Where the randomness comes from
//!
//! `r` is expanded by ChaCha20 from a 32-byte seed argument. The check is
//! only sound if the prover cannot know `r` before it commits to `C`: if it
//! could, it would pick a wrong `C` with `D·r = 0` (change two entries of a
//! row in opposite proportion). The caller therefore derives the seed with
//! [`challenge_seed`] from the epoch entropy, the job id **and the result's
//! commitment**, after the result is committed: a prover that wanted to
//! search for a lucky seed would have to commit to a new wrong result for
//! each try, each passing with probability 2^-61.

use crate::field::{self, P};
use crate::matmul::{Matrix, ShapeError, product_shape};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use thiserror::Error;

/// Rounds per check: one round over GF(2^61 − 1) already accepts a wrong
/// product with probability < 2^-60 (module docs).
pub const ROUNDS: usize = 1;

/// Why a claimed product was not accepted.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum Rejection {
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// Row `row` of `C − A·B` is certainly non-zero: the check is one-sided,
    /// a correct product is never rejected.
    #[error("the claimed product is wrong in row {row}")]
    WrongProduct { row: usize },
}

impl Rejection {
    /// A stable, machine-readable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Shape(e) => e.code(),
            Self::WrongProduct { .. } => "product_wrong",
        }
    }
}

/// The seed of a check: BLAKE3 in key-derivation mode over the epoch entropy,
/// the job id and the commitment to the result, so it is fixed only once the
/// result is (module docs).
pub fn challenge_seed(
    epoch_entropy: &[u8; 32],
    job_id: &[u8],
    result_commitment: &[u8; 32],
) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("depin compute freivalds challenge v1");
    h.update(epoch_entropy);
    // Length-prefixed so that (job id, commitment) pairs cannot collide.
    h.update(&(job_id.len() as u64).to_le_bytes());
    h.update(job_id);
    h.update(result_commitment);
    *h.finalize().as_bytes()
}

/// Checks `c == a · b` with [`ROUNDS`] random vectors drawn from `seed`.
///
/// A correct product is always accepted; a wrong one is rejected except
/// with probability < 2^-60. Shapes are checked first and exactly.
pub fn check(
    a: &Matrix<i8>,
    b: &Matrix<i8>,
    c: &Matrix<i32>,
    seed: [u8; 32],
) -> Result<(), Rejection> {
    check_with(a, b, c, &mut ChaCha20Rng::from_seed(seed))
}

/// [`check`] with the vectors drawn from a generator the caller owns
/// (inference checks several layers from one seed).
pub(crate) fn check_with(
    a: &Matrix<i8>,
    b: &Matrix<i8>,
    c: &Matrix<i32>,
    rng: &mut ChaCha20Rng,
) -> Result<(), Rejection> {
    let (m, n) = product_shape(a, b)?;
    if (c.rows(), c.cols()) != (m, n) {
        return Err(ShapeError::ProductMismatch {
            rows: m,
            cols: n,
            got_rows: c.rows(),
            got_cols: c.cols(),
        }
        .into());
    }
    for _ in 0..ROUNDS {
        let r = random_vector(rng, n);
        let br = mat_vec_i8(b, &r);
        let abr = mat_vec_i8(a, &br);
        let cr = mat_vec_i32(c, &r);
        if let Some(row) = abr.iter().zip(&cr).position(|(x, y)| x != y) {
            return Err(Rejection::WrongProduct { row });
        }
    }
    Ok(())
}

/// A vector uniform in F_p^n: 61 random bits, rejecting the one value ≥ p
/// (2^61 − 1 itself), so every element is exactly equally likely.
fn random_vector(rng: &mut ChaCha20Rng, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| {
            loop {
                let x = rng.next_u64() >> 3;
                if x < P {
                    break x;
                }
            }
        })
        .collect()
}

/// Field elements split into four balanced base-2^16 digits,
/// `x = d0 + d1·2^16 + d2·2^32 + d3·2^48` with every `d_t` in
/// [-2^15, 2^15), stored digit by digit. An int8 entry times a digit is at
/// most 2^22 in magnitude, so [`DIGIT_BLOCK`] of them sum exactly in i32 —
/// the int8 × int16 multiply-add that LLVM vectorises (`pmaddwd` on x86-64)
/// instead of one 128-bit multiply per entry.
struct Digits([Vec<i16>; 4]);

/// Entries per exact i32 partial sum: 256 · 2^22 = 2^30 < 2^31.
const DIGIT_BLOCK: usize = 256;

impl Digits {
    fn of(v: &[u64]) -> Self {
        let mut d: [Vec<i16>; 4] = std::array::from_fn(|_| Vec::with_capacity(v.len()));
        for &x in v {
            // x < 2^61; after each digit the rest shrinks by 2^16, and the
            // last digit is below 2^13 + 1, so four digits are exact.
            let mut rest = x as i64;
            for digits in &mut d {
                let digit = rest as u16 as i16; // the low 16 bits, balanced
                digits.push(digit);
                rest = (rest - digit as i64) >> 16;
            }
            debug_assert_eq!(rest, 0);
        }
        Self(d)
    }
}

/// `M · v` mod p for an int8 matrix.
fn mat_vec_i8(m: &Matrix<i8>, v: &[u64]) -> Vec<u64> {
    let digits = Digits::of(v);
    let [d0, d1, d2, d3] = &digits.0;
    m.data()
        .chunks_exact(m.cols())
        .map(|row| {
            let mut sums = [0i64; 4];
            for start in (0..row.len()).step_by(DIGIT_BLOCK) {
                let end = (start + DIGIT_BLOCK).min(row.len());
                let s = dot4_digits(
                    &row[start..end],
                    [
                        &d0[start..end],
                        &d1[start..end],
                        &d2[start..end],
                        &d3[start..end],
                    ],
                );
                for (acc, s) in sums.iter_mut().zip(s) {
                    *acc += s as i64;
                }
            }
            // Each sum is at most 2^16 entries · 2^22 = 2^38 in magnitude;
            // shifted by at most 48 bits the total stays far inside i128.
            let total: i128 = sums
                .iter()
                .enumerate()
                .map(|(t, &s)| (s as i128) << (16 * t))
                .sum();
            field::from_i128(total)
        })
        .collect()
}

/// Four dot products of one int8 block with the four digit blocks, each at
/// most [`DIGIT_BLOCK`] long. Re-slicing to one length lets LLVM drop the
/// bounds checks and vectorise.
#[inline]
fn dot4_digits(x: &[i8], d: [&[i16]; 4]) -> [i32; 4] {
    let n = x.len();
    let (d0, d1, d2, d3) = (&d[0][..n], &d[1][..n], &d[2][..n], &d[3][..n]);
    let (mut s0, mut s1, mut s2, mut s3) = (0i32, 0i32, 0i32, 0i32);
    for p in 0..n {
        let a = x[p] as i32;
        s0 += a * d0[p] as i32;
        s1 += a * d1[p] as i32;
        s2 += a * d2[p] as i32;
        s3 += a * d3[p] as i32;
    }
    [s0, s1, s2, s3]
}

/// `M · v` mod p for an int32 matrix (the claimed product).
///
/// Each row is summed exactly in i128 and reduced once: a term is below
/// 2^31 · 2^61 = 2^92 in magnitude and a row has at most 2^16 terms, so the
/// sum stays below 2^108, far inside i128.
fn mat_vec_i32(m: &Matrix<i32>, v: &[u64]) -> Vec<u64> {
    m.data()
        .chunks_exact(m.cols())
        .map(|row| {
            let s: i128 = row
                .iter()
                .zip(v)
                .map(|(&x, &y)| x as i128 * y as i128)
                .sum();
            field::from_i128(s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matmul::{MatmulBackend, Naive};
    use proptest::prelude::*;

    fn int8() -> impl Strategy<Value = i8> {
        prop_oneof![any::<i8>(), Just(-128i8), Just(127i8), Just(0i8)]
    }

    fn matrix(rows: usize, cols: usize) -> impl Strategy<Value = Matrix<i8>> {
        proptest::collection::vec(int8(), rows * cols)
            .prop_map(move |d| Matrix::new(rows, cols, d).unwrap())
    }

    fn factors() -> impl Strategy<Value = (Matrix<i8>, Matrix<i8>)> {
        (1usize..10, 1usize..40, 1usize..10).prop_flat_map(|(m, k, n)| (matrix(m, k), matrix(k, n)))
    }

    #[test]
    fn extremes_are_accepted_and_one_off_rejected() {
        let k = 4096;
        let a = Matrix::new(2, k, vec![-128i8; 2 * k]).unwrap();
        let b = Matrix::new(k, 2, vec![-128i8; 2 * k]).unwrap();
        let mut c = Naive.matmul(&a, &b).unwrap();
        check(&a, &b, &c, [7; 32]).unwrap();
        c.data_mut()[3] -= 1;
        assert_eq!(
            check(&a, &b, &c, [7; 32]),
            Err(Rejection::WrongProduct { row: 1 })
        );
        // An entry off by a multiple of p's neighbourhood is still wrong:
        // the claimed int32 extremes.
        for wrong in [i32::MIN, i32::MAX] {
            let mut c = Naive.matmul(&a, &b).unwrap();
            c.data_mut()[0] = wrong;
            assert_eq!(
                check(&a, &b, &c, [7; 32]),
                Err(Rejection::WrongProduct { row: 0 })
            );
        }
    }

    #[test]
    fn shape_mismatches_are_errors() {
        let a = Matrix::<i8>::zeros(2, 3).unwrap();
        let b = Matrix::<i8>::zeros(3, 4).unwrap();
        for (rows, cols) in [(2, 3), (4, 2), (1, 4), (2, 5)] {
            let c = Matrix::<i32>::zeros(rows, cols).unwrap();
            assert_eq!(
                check(&a, &b, &c, [0; 32]).unwrap_err().code(),
                "matrix_product_mismatch"
            );
        }
        let c = Matrix::<i32>::zeros(2, 4).unwrap();
        assert_eq!(
            check(&a, &a, &c, [0; 32]).unwrap_err().code(),
            "matrix_inner_mismatch"
        );
        check(&a, &b, &c, [0; 32]).unwrap();
    }

    #[test]
    fn seed_binds_every_input() {
        let s = challenge_seed(&[1; 32], b"job", &[2; 32]);
        assert_ne!(s, challenge_seed(&[3; 32], b"job", &[2; 32]));
        assert_ne!(s, challenge_seed(&[1; 32], b"jo", &[2; 32]));
        assert_ne!(s, challenge_seed(&[1; 32], b"job", &[3; 32]));
        assert_eq!(s, challenge_seed(&[1; 32], b"job", &[2; 32]));
    }

    /// The digit split against the plain i128 sum, at the field's edges
    /// and across several digit blocks.
    #[test]
    fn digit_mat_vec_matches_i128() {
        let v: Vec<u64> = (0..700u64)
            .map(|i| match i % 5 {
                0 => P - 1 - i,
                1 => i,
                2 => 1 << 60,
                3 => (1 << 15) + i,
                _ => (P / 3).wrapping_mul(i + 1) % P,
            })
            .collect();
        for x in [-128i8, 127, -1] {
            let m = Matrix::from_fn(3, 700, |i, j| {
                if (i + j) % 4 == 0 {
                    x
                } else {
                    x.saturating_neg()
                }
            })
            .unwrap();
            let want: Vec<u64> = m
                .data()
                .chunks_exact(700)
                .map(|row| {
                    field::from_i128(
                        row.iter()
                            .zip(&v)
                            .map(|(&a, &b)| a as i128 * b as i128)
                            .sum(),
                    )
                })
                .collect();
            assert_eq!(mat_vec_i8(&m, &v), want);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn digits_are_exact(x in prop_oneof![0..P, Just(0u64), Just(P - 1), Just(1 << 60), Just((1 << 61) - 2)]) {
            let d = Digits::of(&[x]);
            let back: i128 = (0..4).map(|t| (d.0[t][0] as i128) << (16 * t)).sum();
            prop_assert_eq!(back, x as i128);
        }

        #[test]
        fn correct_products_are_accepted((a, b) in factors(), seed in any::<[u8; 32]>()) {
            let c = Naive.matmul(&a, &b).unwrap();
            prop_assert_eq!(check(&a, &b, &c, seed), Ok(()));
        }

        /// Any single entry changed by any non-zero amount (including to the
        /// int32 extremes) is rejected, naming its row.
        #[test]
        fn single_entry_changes_are_rejected(
            (a, b) in factors(),
            at in any::<prop::sample::Index>(),
            delta in prop_oneof![Just(1i64), Just(-1), any::<i32>().prop_map(i64::from), Just(i64::from(i32::MAX) * 2)],
            seed in any::<[u8; 32]>(),
        ) {
            let mut c = Naive.matmul(&a, &b).unwrap();
            let i = at.index(c.data().len());
            let old = c.data()[i];
            let new = (i64::from(old) + delta).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
            prop_assume!(new != old);
            c.data_mut()[i] = new;
            let row = i / c.cols();
            prop_assert_eq!(check(&a, &b, &c, seed), Err(Rejection::WrongProduct { row }));
        }

        /// Random corruption of many entries is rejected.
        #[test]
        fn random_corruptions_are_rejected(
            (a, b) in factors(),
            noise in proptest::collection::vec(any::<i32>(), 1..16),
            seed in any::<[u8; 32]>(),
        ) {
            let good = Naive.matmul(&a, &b).unwrap();
            let mut c = good.clone();
            let len = c.data().len();
            for (t, x) in noise.iter().enumerate() {
                c.data_mut()[(*x as usize).wrapping_mul(31).wrapping_add(t) % len] = *x;
            }
            prop_assume!(c != good);
            prop_assert_eq!(check(&a, &b, &c, seed).unwrap_err().code(), "product_wrong");
        }
    }
}
