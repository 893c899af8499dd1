//! Verified inference end to end: honest traces are accepted, a wrong value
//! anywhere is caught with its layer named, and the shipped digits model
//! scores what its training script printed.

use depin_sector_compute::examples::*;
use depin_sector_compute::inference::{LayerTrace, predictions};
use depin_sector_compute::{
    Blocked, Layer, MatmulBackend as _, Matrix, Model, Naive, Requant, Trace, TraceRejection,
    infer, infer_with, verify,
};
use proptest::prelude::*;

fn digits() -> (Model, Matrix<i8>, Matrix<i8>) {
    (
        Model::decode(DIGITS_MODEL).unwrap(),
        Matrix::decode(DIGITS_TEST_INPUTS).unwrap(),
        Matrix::decode(DIGITS_TEST_LABELS).unwrap(),
    )
}

/// The first `n` rows of a matrix.
fn head(m: &Matrix<i8>, n: usize) -> Matrix<i8> {
    Matrix::new(n, m.cols(), m.data()[..n * m.cols()].to_vec()).unwrap()
}

#[test]
fn digits_accuracy_is_what_the_script_printed() {
    let (model, inputs, labels) = digits();
    assert_eq!((model.inputs(), model.outputs()), (64, 10));
    assert_eq!(inputs.rows(), labels.rows());
    let expected: serde_json::Value = serde_json::from_str(DIGITS_EXPECTED).unwrap();
    assert_eq!(
        expected["samples"].as_u64().unwrap() as usize,
        inputs.rows()
    );

    let trace = infer(&model, &inputs).unwrap();
    let correct = predictions(trace.output())
        .iter()
        .zip(labels.data())
        .filter(|&(&p, &l)| p == l as usize)
        .count();
    assert_eq!(correct as u64, expected["correct"].as_u64().unwrap());
    assert!(
        correct * 100 >= inputs.rows() * 90,
        "{correct}/{} below 90%",
        inputs.rows()
    );
    // The naive backend computes the very same trace.
    assert_eq!(infer_with(&Naive, &model, &inputs).unwrap(), trace);
    verify(&model, &inputs, &trace, [1; 32]).unwrap();
}

#[test]
fn digits_tampering_is_caught_in_every_layer() {
    let (model, inputs, _) = digits();
    let inputs = head(&inputs, 8);
    let honest = infer(&model, &inputs).unwrap();
    for seed in [[0u8; 32], [0xff; 32]] {
        verify(&model, &inputs, &honest, seed).unwrap();
    }
    for (layer, l) in honest.layers.iter().enumerate() {
        for i in 0..l.product.data().len() {
            let mut t = honest.clone();
            t.layers[layer].product.data_mut()[i] += 1;
            let e = verify(&model, &inputs, &t, [3; 32]).unwrap_err();
            assert_eq!(
                (e.code(), e.layer()),
                ("trace_product_wrong", Some(layer)),
                "{e}"
            );
        }
        for i in 0..l.activation.data().len() {
            let mut t = honest.clone();
            let a = &mut t.layers[layer].activation.data_mut()[i];
            *a = a.wrapping_add(1);
            let e = verify(&model, &inputs, &t, [3; 32]).unwrap_err();
            assert_eq!(
                (e.code(), e.layer()),
                ("trace_activation_wrong", Some(layer)),
                "{e}"
            );
        }
    }
    // A consistent forgery: the last layer recomputed honestly from a wrong
    // hidden activation still fails, at the layer that was changed.
    let mut t = honest.clone();
    t.layers[0].activation.data_mut()[5] ^= 0x40;
    let product = Naive
        .matmul(&t.layers[0].activation, model.layers()[1].weights())
        .unwrap();
    t.layers[1] = LayerTrace {
        activation: model.layers()[1].activate(&product),
        product,
    };
    let e = verify(&model, &inputs, &t, [3; 32]).unwrap_err();
    assert_eq!(e.layer(), Some(0), "{e}");
}

#[test]
fn malformed_requests_and_traces_are_errors() {
    let (model, inputs, _) = digits();
    let inputs = head(&inputs, 3);
    let honest = infer(&model, &inputs).unwrap();
    let wrong_input = Matrix::<i8>::zeros(3, 63).unwrap();
    assert_eq!(
        infer(&model, &wrong_input).unwrap_err().code(),
        "inference_input_shape"
    );
    assert_eq!(
        verify(&model, &wrong_input, &honest, [0; 32])
            .unwrap_err()
            .code(),
        "inference_input_shape"
    );
    // An input within the matrix limits whose product with a 512-wide layer
    // is not (2^16 · 512 = 2^25 elements): refused before any work, while
    // 2^15 samples (exactly 2^24) run.
    let wide = Model::new(vec![
        Layer::new(
            Matrix::<i8>::zeros(1, 512).unwrap(),
            vec![0; 512],
            true,
            Requant::new(1, 0).unwrap(),
        )
        .unwrap(),
    ])
    .unwrap();
    let many = Matrix::<i8>::zeros(1 << 16, 1).unwrap();
    assert_eq!(
        infer(&wide, &many).unwrap_err().code(),
        "inference_too_large"
    );
    let fine = Matrix::<i8>::zeros(1 << 15, 1).unwrap();
    assert_eq!(infer(&wide, &fine).unwrap().output().rows(), 1 << 15);
    let mut t = honest.clone();
    t.layers.pop();
    assert_eq!(
        verify(&model, &inputs, &t, [0; 32]).unwrap_err().code(),
        "trace_layer_count"
    );
    let mut t = honest.clone();
    t.layers.push(honest.layers[1].clone());
    assert_eq!(
        verify(&model, &inputs, &t, [0; 32]).unwrap_err().code(),
        "trace_layer_count"
    );
    // A trace for fewer samples than the input.
    let fewer = infer(&model, &head(&inputs, 2)).unwrap();
    let e = verify(&model, &inputs, &fewer, [0; 32]).unwrap_err();
    assert_eq!((e.code(), e.layer()), ("trace_product_shape", Some(0)));
    let mut t = honest.clone();
    t.layers[1].activation = Matrix::zeros(3, 9).unwrap();
    let e = verify(&model, &inputs, &t, [0; 32]).unwrap_err();
    assert_eq!((e.code(), e.layer()), ("trace_activation_shape", Some(1)));
}

#[test]
fn trace_format_roundtrips_and_refuses_garbage() {
    let (model, inputs, _) = digits();
    let honest = infer(&model, &head(&inputs, 2)).unwrap();
    let bytes = honest.encode();
    assert_eq!(&bytes[..8], b"DPTR\x01\x02\x00\x00");
    assert_eq!(Trace::decode(&bytes).unwrap(), honest);
    let code = |b: &[u8]| Trace::decode(b).unwrap_err().code();
    for cut in [0, 7, 8, 9, 30, bytes.len() - 1] {
        let c = code(&bytes[..cut]);
        assert!(
            c == "trace_truncated" || c == "matrix_truncated",
            "{cut}: {c}"
        );
    }
    let edit = |at: usize, v: u8| {
        let mut b = bytes.clone();
        b[at] = v;
        b
    };
    assert_eq!(code(&edit(0, 0)), "trace_bad_magic");
    assert_eq!(code(&edit(4, 2)), "trace_bad_version");
    assert_eq!(code(&edit(5, 0)), "trace_layer_count");
    assert_eq!(code(&edit(5, 65)), "trace_layer_count");
    assert_eq!(code(&edit(5, 1)), "trace_trailing_bytes");
    assert_eq!(code(&edit(7, 1)), "trace_bad_reserved");
    // The first product must be int32.
    assert_eq!(code(&edit(13, 1)), "matrix_wrong_element_type");
    let mut b = bytes.clone();
    b.push(0);
    assert_eq!(code(&b), "trace_trailing_bytes");
}

/// A random small model: 1–4 layers of width 1–12, any weights, biases
/// near the extremes, any scale.
fn model() -> impl Strategy<Value = Model> {
    (
        1usize..12,
        proptest::collection::vec((1usize..12, any::<bool>()), 1..4),
    )
        .prop_flat_map(|(inputs, shape)| {
            let mut dims = vec![inputs];
            dims.extend(shape.iter().map(|s| s.0));
            let layers: Vec<_> = shape
                .iter()
                .enumerate()
                .map(|(i, &(out, relu))| {
                    let rows = dims[i];
                    (
                        proptest::collection::vec(any::<i8>(), rows * out),
                        proptest::collection::vec(prop_oneof![any::<i32>(), -1000i32..1000], out),
                        1u32..=i32::MAX as u32,
                        0u8..=40,
                    )
                        .prop_map(move |(w, b, m, s)| {
                            Layer::new(
                                Matrix::new(rows, out, w).unwrap(),
                                b,
                                relu,
                                Requant::new(m, s).unwrap(),
                            )
                            .unwrap()
                        })
                })
                .collect();
            layers.prop_map(|l| Model::new(l).unwrap())
        })
}

fn model_and_input() -> impl Strategy<Value = (Model, Matrix<i8>)> {
    (model(), 1usize..6).prop_flat_map(|(m, rows)| {
        let cols = m.inputs();
        (
            Just(m),
            proptest::collection::vec(any::<i8>(), rows * cols)
                .prop_map(move |d| Matrix::new(rows, cols, d).unwrap()),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Honest traces of random models are accepted, and both kernels agree.
    #[test]
    fn honest_traces_verify((m, x) in model_and_input(), seed in any::<[u8; 32]>()) {
        let t = infer(&m, &x).unwrap();
        prop_assert_eq!(&infer_with(&Naive, &m, &x).unwrap(), &t);
        prop_assert_eq!(infer_with(&Blocked, &m, &x).unwrap().output().rows(), x.rows());
        prop_assert_eq!(verify(&m, &x, &t, seed), Ok(()));
        prop_assert_eq!(Model::decode(&m.encode()).unwrap(), m);
        prop_assert_eq!(Trace::decode(&t.encode()).unwrap(), t);
    }

    /// One value changed anywhere, to anything: rejected, naming its layer.
    #[test]
    fn any_single_change_names_its_layer(
        (m, x) in model_and_input(),
        layer in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        in_product in any::<bool>(),
        value in any::<i32>(),
        seed in any::<[u8; 32]>(),
    ) {
        let mut t = infer(&m, &x).unwrap();
        let layer = layer.index(t.layers.len());
        let l = &mut t.layers[layer];
        if in_product {
            let i = at.index(l.product.data().len());
            prop_assume!(l.product.data()[i] != value);
            l.product.data_mut()[i] = value;
        } else {
            let i = at.index(l.activation.data().len());
            let v = value as i8;
            prop_assume!(l.activation.data()[i] != v);
            l.activation.data_mut()[i] = v;
        }
        let e = verify(&m, &x, &t, seed).unwrap_err();
        prop_assert_eq!(e.layer(), Some(layer), "{}", e);
        let want = if in_product { "trace_product_wrong" } else { "trace_activation_wrong" };
        prop_assert_eq!(e.code(), want);
        let in_a_layer =
            matches!(e, TraceRejection::Product { .. } | TraceRejection::WrongActivation { .. });
        prop_assert!(in_a_layer);
    }
}
