//! Arithmetic in GF(p), p = 2^61 − 1, the Mersenne prime Freivalds' check
//! works over.
//!
//! Why this prime: reduction is two shifts and an add (2^61 ≡ 1 mod p), a
//! product of two elements fits a `u128`, and p is larger than any entry of
//! a difference `C − A·B` of int8 products with int32 claims, so a wrong
//! integer entry stays a non-zero field element (see `freivalds`).
//!
//! Elements are plain `u64` in canonical form `[0, p)`; every function here
//! takes canonical inputs (or any `u128` for [`reduce`]) and returns
//! canonical outputs.

/// The modulus, 2^61 − 1.
pub const P: u64 = (1 << 61) - 1;

/// `x mod p` for any `u128`.
///
/// Folding the high bits onto the low ones is exact because 2^61 ≡ 1: after
/// two folds the value is below 2^61 + 2^7 < 2p, so one conditional
/// subtraction makes it canonical.
#[inline]
pub fn reduce(x: u128) -> u64 {
    // x < 2^128: lo < 2^61, hi < 2^67; lo + hi < 2^68.
    let folded = (x & P as u128) + (x >> 61);
    // folded < 2^68: one more fold gives < 2^61 + 2^7.
    let f = ((folded & P as u128) + (folded >> 61)) as u64;
    if f >= P { f - P } else { f }
}

/// `(a + b) mod p` for canonical `a`, `b`.
#[inline]
pub fn add(a: u64, b: u64) -> u64 {
    // a + b < 2^62, no overflow.
    let s = a + b;
    if s >= P { s - P } else { s }
}

/// `(a − b) mod p` for canonical `a`, `b`.
#[inline]
pub fn sub(a: u64, b: u64) -> u64 {
    if a >= b { a - b } else { a + P - b }
}

/// `(a · b) mod p` for canonical `a`, `b`.
#[inline]
pub fn mul(a: u64, b: u64) -> u64 {
    reduce(a as u128 * b as u128)
}

/// The field element congruent to a signed integer.
#[inline]
pub fn from_i128(x: i128) -> u64 {
    let r = reduce(x.unsigned_abs());
    if x < 0 { sub(0, r) } else { r }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The naive reference: the `%` operator on `u128`.
    fn naive(x: u128) -> u64 {
        (x % P as u128) as u64
    }

    #[test]
    fn reduce_edges() {
        for x in [
            0u128,
            1,
            P as u128 - 1,
            P as u128,
            P as u128 + 1,
            2 * P as u128,
            2 * P as u128 + 1,
            1 << 61,
            1 << 122,
            (P as u128) * (P as u128),
            (P as u128 - 1) * (P as u128 - 1),
            u64::MAX as u128,
            u128::MAX,
            u128::MAX - 1,
        ] {
            assert_eq!(reduce(x), naive(x), "x = {x}");
        }
    }

    #[test]
    fn signed_edges() {
        assert_eq!(from_i128(-1), P - 1);
        assert_eq!(from_i128(-(P as i128)), 0);
        assert_eq!(from_i128(i128::MIN), naive_signed(i128::MIN));
        assert_eq!(from_i128(i128::MAX), naive(i128::MAX as u128));
    }

    fn naive_signed(x: i128) -> u64 {
        x.rem_euclid(P as i128) as u64
    }

    fn element() -> impl Strategy<Value = u64> {
        prop_oneof![0..P, Just(0), Just(1), Just(P - 1), Just(P - 2)]
    }

    proptest! {
        #[test]
        fn reduce_matches_naive(x in any::<u128>()) {
            prop_assert_eq!(reduce(x), naive(x));
        }

        #[test]
        fn add_sub_mul_match_naive(a in element(), b in element()) {
            prop_assert_eq!(add(a, b), naive(a as u128 + b as u128));
            prop_assert_eq!(sub(a, b), naive(a as u128 + P as u128 - b as u128));
            prop_assert_eq!(mul(a, b), naive(a as u128 * b as u128));
            prop_assert!(add(a, b) < P && sub(a, b) < P && mul(a, b) < P);
        }

        #[test]
        fn from_signed_matches_naive(x in any::<i128>()) {
            prop_assert_eq!(from_i128(x), naive_signed(x));
        }
    }
}
