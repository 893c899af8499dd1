//! int8 × int8 → int32 matrix products: the matrix type, its binary format,
//! and the backends that compute a product.
//!
//! # The matrix format (`DPMX`, version 1)
//!
//! All integers little-endian.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `DPMX` |
//! | 4 | 1 | version, `1` |
//! | 5 | 1 | element type: `1` = int8, `2` = int32 |
//! | 6 | 2 | reserved, `0` |
//! | 8 | 4 | rows, `1..=MAX_DIM` |
//! | 12 | 4 | cols, `1..=MAX_DIM` |
//! | 16 | rows·cols·size | elements, row-major |
//!
//! rows·cols is at most [`MAX_ELEMENTS`] and the file ends exactly after the
//! last element. The decoder checks the header and the length before it
//! allocates anything, so the allocation is bounded by the bytes it was given
//! and by [`MAX_ELEMENTS`], whatever the header claims.
//!
//! # Why the products cannot overflow
//!
//! An int8 product is at most 128·128 = 2^14 in magnitude and the inner
//! dimension is at most [`MAX_DIM`] = 2^16, so every entry of a product is
//! below 2^30 in magnitude: int32 holds it exactly, in any summation order.
//! That exactness is what lets a tuned kernel be checked for equality against
//! the naive loop, and what Freivalds' check relies on.

use thiserror::Error;

/// The largest number of rows or columns. Also the largest inner dimension
/// of a product, which keeps every int32 accumulator exact (module docs).
pub const MAX_DIM: usize = 1 << 16;

/// The largest number of elements in one matrix (and in a product): 16 Mi,
/// 4096 × 4096. Bounds what a decoder or a backend may allocate.
pub const MAX_ELEMENTS: usize = 1 << 24;

const MAGIC: [u8; 4] = *b"DPMX";
const VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 16;

/// A matrix element the format can carry.
pub trait Element: Copy + Default + std::fmt::Debug + PartialEq + Send + Sync + 'static {
    /// The element-type byte of the format.
    const TYPE_CODE: u8;
    /// Encoded size in bytes.
    const SIZE: usize;
    fn write_le(self, out: &mut Vec<u8>);
    /// `bytes` has exactly `SIZE` bytes.
    fn read_le(bytes: &[u8]) -> Self;
}

impl Element for i8 {
    const TYPE_CODE: u8 = 1;
    const SIZE: usize = 1;
    fn write_le(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn read_le(bytes: &[u8]) -> Self {
        bytes[0] as i8
    }
}

impl Element for i32 {
    const TYPE_CODE: u8 = 2;
    const SIZE: usize = 4;
    fn write_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn read_le(bytes: &[u8]) -> Self {
        i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }
}

/// A row-major matrix with its shape. The invariant (both dimensions in
/// `1..=MAX_DIM`, at most [`MAX_ELEMENTS`] elements, `data.len() == rows·cols`)
/// holds for every value: the fields are private and every constructor checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matrix<T> {
    rows: usize,
    cols: usize,
    data: Vec<T>,
}

/// A shape that is not allowed, or two shapes that do not fit together.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ShapeError {
    #[error("a matrix needs at least one row and one column, got {rows}×{cols}")]
    ZeroDimension { rows: usize, cols: usize },
    #[error("{rows}×{cols} exceeds the limits ({MAX_DIM} per dimension, {MAX_ELEMENTS} elements)")]
    TooLarge { rows: usize, cols: usize },
    #[error("{rows}×{cols} needs {expected} elements, got {got}")]
    LengthMismatch {
        rows: usize,
        cols: usize,
        expected: usize,
        got: usize,
    },
    #[error("cannot multiply {a_rows}×{a_cols} by {b_rows}×{b_cols}")]
    InnerMismatch {
        a_rows: usize,
        a_cols: usize,
        b_rows: usize,
        b_cols: usize,
    },
    #[error("the claimed product is {got_rows}×{got_cols}, expected {rows}×{cols}")]
    ProductMismatch {
        rows: usize,
        cols: usize,
        got_rows: usize,
        got_cols: usize,
    },
}

impl ShapeError {
    /// A stable, machine-readable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ZeroDimension { .. } => "matrix_zero_dimension",
            Self::TooLarge { .. } => "matrix_too_large",
            Self::LengthMismatch { .. } => "matrix_length_mismatch",
            Self::InnerMismatch { .. } => "matrix_inner_mismatch",
            Self::ProductMismatch { .. } => "matrix_product_mismatch",
        }
    }
}

/// Why bytes are not a matrix of the expected element type.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("truncated: need {need} bytes, got {got}")]
    Truncated { need: usize, got: usize },
    #[error("not a DPMX matrix (bad magic)")]
    BadMagic,
    #[error("unsupported format version {0}")]
    BadVersion(u8),
    #[error("element type {got} where {expected} was expected (1 = int8, 2 = int32)")]
    WrongElementType { expected: u8, got: u8 },
    #[error("reserved header bytes are not zero")]
    BadReserved,
    #[error(transparent)]
    Shape(#[from] ShapeError),
    #[error("{0} bytes after the last element")]
    TrailingBytes(usize),
}

impl DecodeError {
    /// A stable, machine-readable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "matrix_truncated",
            Self::BadMagic => "matrix_bad_magic",
            Self::BadVersion(_) => "matrix_bad_version",
            Self::WrongElementType { .. } => "matrix_wrong_element_type",
            Self::BadReserved => "matrix_bad_reserved",
            Self::Shape(e) => e.code(),
            Self::TrailingBytes(_) => "matrix_trailing_bytes",
        }
    }
}

/// Checks a shape against the limits without allocating.
pub fn check_shape(rows: usize, cols: usize) -> Result<(), ShapeError> {
    if rows == 0 || cols == 0 {
        return Err(ShapeError::ZeroDimension { rows, cols });
    }
    if rows > MAX_DIM || cols > MAX_DIM || rows * cols > MAX_ELEMENTS {
        return Err(ShapeError::TooLarge { rows, cols });
    }
    Ok(())
}

impl<T: Element> Matrix<T> {
    /// A matrix from row-major data; checks the shape and the length.
    pub fn new(rows: usize, cols: usize, data: Vec<T>) -> Result<Self, ShapeError> {
        check_shape(rows, cols)?;
        if data.len() != rows * cols {
            return Err(ShapeError::LengthMismatch {
                rows,
                cols,
                expected: rows * cols,
                got: data.len(),
            });
        }
        Ok(Self { rows, cols, data })
    }

    /// A matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Result<Self, ShapeError> {
        check_shape(rows, cols)?;
        Ok(Self {
            rows,
            cols,
            data: vec![T::default(); rows * cols],
        })
    }

    /// A matrix whose element (i, j) is `f(i, j)`.
    pub fn from_fn(
        rows: usize,
        cols: usize,
        mut f: impl FnMut(usize, usize) -> T,
    ) -> Result<Self, ShapeError> {
        check_shape(rows, cols)?;
        let mut data = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                data.push(f(i, j));
            }
        }
        Ok(Self { rows, cols, data })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The elements, row-major.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// Mutable access to the elements; the shape cannot change through it.
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }

    pub fn into_data(self) -> Vec<T> {
        self.data
    }

    /// Row `i` (panics if `i >= rows`, like slice indexing).
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    pub fn get(&self, i: usize, j: usize) -> T {
        self.data[i * self.cols + j]
    }

    /// The encoded length in bytes.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.data.len() * T::SIZE
    }

    /// Appends the DPMX encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(T::TYPE_CODE);
        out.extend_from_slice(&[0, 0]);
        // The shape invariant keeps both dimensions ≤ 2^16, so they fit u32.
        out.extend_from_slice(&(self.rows as u32).to_le_bytes());
        out.extend_from_slice(&(self.cols as u32).to_le_bytes());
        for &x in &self.data {
            x.write_le(out);
        }
    }

    /// The DPMX encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decodes exactly one matrix: trailing bytes are an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let (m, rest) = Self::decode_prefix(bytes)?;
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes(rest.len()));
        }
        Ok(m)
    }

    /// Decodes one matrix from the front of `bytes` and returns the bytes
    /// after it (containers such as the model format embed matrices).
    pub fn decode_prefix(bytes: &[u8]) -> Result<(Self, &[u8]), DecodeError> {
        let Some(header) = bytes.get(..HEADER_LEN) else {
            return Err(DecodeError::Truncated {
                need: HEADER_LEN,
                got: bytes.len(),
            });
        };
        if header[..4] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if header[4] != VERSION {
            return Err(DecodeError::BadVersion(header[4]));
        }
        if header[5] != T::TYPE_CODE {
            return Err(DecodeError::WrongElementType {
                expected: T::TYPE_CODE,
                got: header[5],
            });
        }
        if header[6..8] != [0, 0] {
            return Err(DecodeError::BadReserved);
        }
        let u32_at = |o: usize| {
            u32::from_le_bytes([header[o], header[o + 1], header[o + 2], header[o + 3]]) as usize
        };
        let (rows, cols) = (u32_at(8), u32_at(12));
        check_shape(rows, cols)?;
        // Bounded by the shape check: ≤ 2^24 elements × 4 bytes.
        let body_len = rows * cols * T::SIZE;
        let body = &bytes[HEADER_LEN..];
        if body.len() < body_len {
            return Err(DecodeError::Truncated {
                need: HEADER_LEN + body_len,
                got: bytes.len(),
            });
        }
        let data = body[..body_len]
            .chunks_exact(T::SIZE)
            .map(T::read_le)
            .collect();
        Ok((Self { rows, cols, data }, &body[body_len..]))
    }
}

/// Checks that `a · b` is defined and that its result is within the limits,
/// and returns its shape.
pub fn product_shape<T, U>(a: &Matrix<T>, b: &Matrix<U>) -> Result<(usize, usize), ShapeError> {
    if a.cols != b.rows {
        return Err(ShapeError::InnerMismatch {
            a_rows: a.rows,
            a_cols: a.cols,
            b_rows: b.rows,
            b_cols: b.cols,
        });
    }
    // Both factors are within the limits, but their product may not be
    // (65536×1 times 1×65536): refuse it before allocating.
    check_shape(a.rows, b.cols)?;
    Ok((a.rows, b.cols))
}

/// Something that computes int8 products exactly. The CPU kernels here are
/// the reference and the default; a GPU backend would implement the same
/// trait and be tested for equality against [`Naive`].
pub trait MatmulBackend {
    /// A short name for reports and benchmarks.
    fn name(&self) -> &'static str;
    /// `a · b`, exactly, or a shape error.
    fn matmul(&self, a: &Matrix<i8>, b: &Matrix<i8>) -> Result<Matrix<i32>, ShapeError>;
}

/// The reference: the textbook triple loop, written for obviousness.
#[derive(Clone, Copy, Debug, Default)]
pub struct Naive;

impl MatmulBackend for Naive {
    fn name(&self) -> &'static str {
        "naive"
    }

    fn matmul(&self, a: &Matrix<i8>, b: &Matrix<i8>) -> Result<Matrix<i32>, ShapeError> {
        let (m, n) = product_shape(a, b)?;
        let mut c = Matrix::zeros(m, n)?;
        for i in 0..m {
            for j in 0..n {
                let mut s = 0i32;
                for p in 0..a.cols {
                    s += a.get(i, p) as i32 * b.get(p, j) as i32;
                }
                c.data[i * n + j] = s;
            }
        }
        Ok(c)
    }
}

/// The default CPU kernel: B packed transposed so that every output is a
/// dot product of two contiguous int8 rows, computed four outputs at a time
/// (one load of A feeds four accumulators) over blocks of the inner
/// dimension sized to stay in L1. Plain safe Rust with i32 accumulators and
/// bounds hoisted out of the inner loop, which LLVM auto-vectorises.
#[derive(Clone, Copy, Debug, Default)]
pub struct Blocked;

/// Inner-dimension block: a block of A's row and [`J_BLOCK`] rows of the
/// packed B (`J_BLOCK · K_BLOCK` = 16 KiB) stay in L1 while they are reused.
const K_BLOCK: usize = 256;
/// Output columns per block (rows of the packed B).
const J_BLOCK: usize = 64;

impl MatmulBackend for Blocked {
    fn name(&self) -> &'static str {
        "blocked"
    }

    fn matmul(&self, a: &Matrix<i8>, b: &Matrix<i8>) -> Result<Matrix<i32>, ShapeError> {
        let (m, n) = product_shape(a, b)?;
        let k = a.cols;
        let a16: Vec<i16> = a.data.iter().map(|&x| x as i16).collect();
        let bt = transpose(b);
        let mut c = vec![0i32; m * n];
        for k0 in (0..k).step_by(K_BLOCK) {
            let k1 = (k0 + K_BLOCK).min(k);
            for j0 in (0..n).step_by(J_BLOCK) {
                let j1 = (j0 + J_BLOCK).min(n);
                for i in 0..m {
                    let a_row = &a16[i * k + k0..i * k + k1];
                    let c_row = &mut c[i * n..(i + 1) * n];
                    let bt_row = |j: usize| &bt[j * k + k0..j * k + k1];
                    let mut j = j0;
                    while j + 4 <= j1 {
                        let s = dot4(
                            a_row,
                            [bt_row(j), bt_row(j + 1), bt_row(j + 2), bt_row(j + 3)],
                        );
                        for (c, s) in c_row[j..j + 4].iter_mut().zip(s) {
                            *c += s;
                        }
                        j += 4;
                    }
                    while j < j1 {
                        c_row[j] += dot(a_row, bt_row(j));
                        j += 1;
                    }
                }
            }
        }
        Matrix::new(m, n, c)
    }
}

/// `b` transposed and widened to i16, as a flat row-major `cols × rows`
/// buffer.
fn transpose(b: &Matrix<i8>) -> Vec<i16> {
    let mut t = vec![0i16; b.data.len()];
    for (p, row) in b.data.chunks_exact(b.cols).enumerate() {
        for (j, &x) in row.iter().enumerate() {
            t[j * b.rows + p] = x as i16;
        }
    }
    t
}

#[inline]
fn dot(a: &[i16], b: &[i16]) -> i32 {
    let b = &b[..a.len()];
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// Four dot products sharing `a`. Re-slicing every `b` to `a`'s length up
/// front lets LLVM drop the bounds checks and vectorise the loop.
#[inline]
fn dot4(a: &[i16], b: [&[i16]; 4]) -> [i32; 4] {
    let n = a.len();
    let (b0, b1, b2, b3) = (&b[0][..n], &b[1][..n], &b[2][..n], &b[3][..n]);
    let (mut s0, mut s1, mut s2, mut s3) = (0i32, 0i32, 0i32, 0i32);
    for p in 0..n {
        let x = a[p] as i32;
        s0 += x * b0[p] as i32;
        s1 += x * b1[p] as i32;
        s2 += x * b2[p] as i32;
        s3 += x * b3[p] as i32;
    }
    [s0, s1, s2, s3]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(version: u8, ty: u8, rows: u32, cols: u32) -> Vec<u8> {
        let mut h = b"DPMX".to_vec();
        h.extend_from_slice(&[version, ty, 0, 0]);
        h.extend_from_slice(&rows.to_le_bytes());
        h.extend_from_slice(&cols.to_le_bytes());
        h
    }

    #[test]
    fn golden_encoding() {
        let m = Matrix::new(2, 3, vec![1i8, -1, 127, -128, 0, 5]).unwrap();
        let mut want = header(1, 1, 2, 3);
        want.extend_from_slice(&[1, 0xff, 0x7f, 0x80, 0, 5]);
        assert_eq!(m.encode(), want);
        assert_eq!(Matrix::<i8>::decode(&want).unwrap(), m);

        let m = Matrix::new(1, 2, vec![-1i32, i32::MIN]).unwrap();
        let mut want = header(1, 2, 1, 2);
        want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0x80]);
        assert_eq!(m.encode(), want);
        assert_eq!(Matrix::<i32>::decode(&want).unwrap(), m);
    }

    fn code(bytes: &[u8]) -> &'static str {
        Matrix::<i8>::decode(bytes).unwrap_err().code()
    }

    #[test]
    fn decoder_refuses_bad_headers() {
        let good = Matrix::new(2, 2, vec![1i8, 2, 3, 4]).unwrap().encode();
        let mut b = good.clone();
        b[0] = b'X';
        assert_eq!(code(&b), "matrix_bad_magic");
        let mut b = good.clone();
        b[4] = 2;
        assert_eq!(code(&b), "matrix_bad_version");
        let mut b = good.clone();
        b[5] = 2;
        assert_eq!(code(&b), "matrix_wrong_element_type");
        let mut b = good.clone();
        b[5] = 0;
        assert_eq!(code(&b), "matrix_wrong_element_type");
        let mut b = good.clone();
        b[7] = 1;
        assert_eq!(code(&b), "matrix_bad_reserved");
        let mut b = good.clone();
        b.push(0);
        assert_eq!(code(&b), "matrix_trailing_bytes");
        for cut in 0..good.len() {
            assert_eq!(code(&good[..cut]), "matrix_truncated", "cut at {cut}");
        }
        assert_eq!(
            Matrix::<i32>::decode(&good).unwrap_err().code(),
            "matrix_wrong_element_type"
        );
    }

    #[test]
    fn decoder_refuses_bad_shapes_before_allocating() {
        // Huge claimed shapes with no body: refused on the header alone.
        for (rows, cols, want) in [
            (0, 1, "matrix_zero_dimension"),
            (1, 0, "matrix_zero_dimension"),
            (0, 0, "matrix_zero_dimension"),
            (u32::MAX, u32::MAX, "matrix_too_large"),
            (MAX_DIM as u32 + 1, 1, "matrix_too_large"),
            (1, MAX_DIM as u32 + 1, "matrix_too_large"),
            (4097, 4096, "matrix_too_large"),
            (MAX_DIM as u32, MAX_DIM as u32, "matrix_too_large"),
            // Within the limits, but the body is missing.
            (MAX_DIM as u32, 1, "matrix_truncated"),
            (4096, 4096, "matrix_truncated"),
        ] {
            assert_eq!(code(&header(1, 1, rows, cols)), want, "{rows}×{cols}");
        }
        // The largest allowed dimension decodes.
        let mut b = header(1, 1, 1, MAX_DIM as u32);
        b.resize(HEADER_LEN + MAX_DIM, 7);
        let m = Matrix::<i8>::decode(&b).unwrap();
        assert_eq!((m.rows(), m.cols()), (1, MAX_DIM));
    }

    #[test]
    fn constructors_check_shapes() {
        assert_eq!(
            Matrix::new(2, 2, vec![0i8; 3]).unwrap_err().code(),
            "matrix_length_mismatch"
        );
        assert_eq!(
            Matrix::<i8>::zeros(0, 3).unwrap_err().code(),
            "matrix_zero_dimension"
        );
        let a = Matrix::<i8>::zeros(2, 3).unwrap();
        let b = Matrix::<i8>::zeros(2, 3).unwrap();
        for backend in [&Naive as &dyn MatmulBackend, &Blocked] {
            assert_eq!(
                backend.matmul(&a, &b).unwrap_err().code(),
                "matrix_inner_mismatch"
            );
        }
        // Factors within the limits whose product is not.
        let tall = Matrix::<i8>::zeros(MAX_DIM, 1).unwrap();
        let wide = Matrix::<i8>::zeros(1, MAX_DIM).unwrap();
        for backend in [&Naive as &dyn MatmulBackend, &Blocked] {
            assert_eq!(
                backend.matmul(&tall, &wide).unwrap_err().code(),
                "matrix_too_large"
            );
        }
    }

    #[test]
    fn extremes_do_not_overflow() {
        // The largest magnitude a product entry can reach at this size: every
        // term is (-128)·(-128).
        let k = 1000;
        let a = Matrix::new(3, k, vec![-128i8; 3 * k]).unwrap();
        let b = Matrix::new(k, 5, vec![-128i8; 5 * k]).unwrap();
        let want = Naive.matmul(&a, &b).unwrap();
        assert!(want.data().iter().all(|&x| x == 16384 * k as i32));
        assert_eq!(Blocked.matmul(&a, &b).unwrap(), want);
        let b = Matrix::new(k, 5, vec![127i8; 5 * k]).unwrap();
        assert_eq!(
            Blocked.matmul(&a, &b).unwrap(),
            Naive.matmul(&a, &b).unwrap()
        );
    }

    /// int8 values weighted towards the extremes.
    fn int8() -> impl Strategy<Value = i8> {
        prop_oneof![
            any::<i8>(),
            Just(-128i8),
            Just(127i8),
            Just(0i8),
            Just(-1i8)
        ]
    }

    fn matrix(rows: usize, cols: usize) -> impl Strategy<Value = Matrix<i8>> {
        proptest::collection::vec(int8(), rows * cols)
            .prop_map(move |d| Matrix::new(rows, cols, d).unwrap())
    }

    /// Two multipliable matrices with odd shapes, some crossing the block
    /// sizes (K_BLOCK, J_BLOCK and the four-wide micro-kernel).
    fn factors() -> impl Strategy<Value = (Matrix<i8>, Matrix<i8>)> {
        (1usize..12, 1usize..300, 1usize..80)
            .prop_flat_map(|(m, k, n)| (matrix(m, k), matrix(k, n)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn blocked_equals_naive((a, b) in factors()) {
            prop_assert_eq!(Blocked.matmul(&a, &b).unwrap(), Naive.matmul(&a, &b).unwrap());
        }

        #[test]
        fn roundtrip(a in (1usize..20, 1usize..20).prop_flat_map(|(r, c)| matrix(r, c))) {
            prop_assert_eq!(Matrix::<i8>::decode(&a.encode()).unwrap(), a);
        }

        /// Any bytes: an error value or a matrix, never a panic; a decoded
        /// matrix re-encodes to the same bytes.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(m) = Matrix::<i8>::decode(&bytes) {
                prop_assert_eq!(m.encode(), bytes.clone());
            }
            if let Ok(m) = Matrix::<i32>::decode(&bytes) {
                prop_assert_eq!(m.encode(), bytes);
            }
        }

        /// A valid header with arbitrary fields: 0, max and max+1 in every
        /// dimension, any version/type/reserved byte.
        #[test]
        fn header_fields_at_the_edges(
            version in prop_oneof![Just(0u8), Just(1), Just(2), Just(255)],
            ty in prop_oneof![Just(0u8), Just(1), Just(2), Just(3), Just(255)],
            reserved in prop_oneof![Just(0u8), Just(1), Just(255)],
            rows in prop_oneof![Just(0u32), Just(1), Just(2), Just(MAX_DIM as u32), Just(MAX_DIM as u32 + 1), Just(u32::MAX)],
            cols in prop_oneof![Just(0u32), Just(1), Just(3), Just(MAX_DIM as u32), Just(MAX_DIM as u32 + 1), Just(u32::MAX)],
            body in 0usize..8,
        ) {
            let mut b = header(version, ty, rows, cols);
            b[6] = reserved;
            b.resize(b.len() + body, 1);
            let r = Matrix::<i8>::decode(&b);
            let ok = version == 1 && ty == 1 && reserved == 0
                && rows as usize * cols as usize == body;
            prop_assert_eq!(r.is_ok(), ok, "{:?}", r);
        }
    }
}
