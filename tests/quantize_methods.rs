//! Post-training quantization methods (src/quantize): MSE search, GPTQ and AWQ against RTN
//! on synthetic weights and activations, the typed errors of bad calibration, and the
//! `quantize --method/--calib` command.
//!
//! Every measured figure is printed (`cargo test --release --test quantize_methods --
//! --nocapture`); docs/QUANTIZATION.md quotes them.

mod common;

use common::cli::{fails, ok, s};
use common::temp::TempDir;

use std::path::Path;
use wgquant::io::{self, gguf::StoredTensor, Array};
use wgquant::quantize::{self, Activations, Calibration, Method};
use wgquant::rng::Rng;
use wgquant::{Error, Format, QuantizedTensor};

fn fmt(s: &str) -> Format {
    s.parse().unwrap()
}

/// Q4_0, Q4_1, Q8_0 and every int format.
fn covered() -> Vec<Format> {
    let mut v = vec![Format::Q4_0, Format::Q4_1, Format::Q8_0];
    v.extend(
        Format::all()
            .into_iter()
            .filter(|f| matches!(f, Format::Int(_))),
    );
    v
}

/// Student-t with 3 degrees of freedom (heavy tails: kurtosis is infinite).
fn student_t3(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let z = rng.normal();
            let chi2: f64 = (0..3).map(|_| rng.normal().powi(2)).sum();
            (z / (chi2 / 3.0).sqrt()) as f32
        })
        .collect()
}

fn acts(n: usize, k: usize, data: Vec<f32>) -> Activations {
    Activations::new(n, k, data).unwrap()
}

/// `n` samples `x = L z`, `L` a random lower-triangular mixing (unit diagonal, N(0, 1/4)
/// below it, so later inputs are sums of earlier ones: strongly correlated).
fn correlated(seed: u64, n: usize, k: usize) -> Activations {
    let mut rng = Rng::new(seed);
    let mut l = vec![0f32; k * k];
    for i in 0..k {
        for j in 0..i {
            l[i * k + j] = 0.5 * rng.normal() as f32;
        }
        l[i * k + i] = 1.0;
    }
    let mut data = vec![0f32; n * k];
    // Same L for every call with the same seed; samples from another stream.
    let mut zs = Rng::new(seed ^ 0xdead_beef ^ n as u64);
    for s in 0..n {
        let z = zs.normal_vec(k);
        for i in 0..k {
            data[s * k + i] = (0..=i).map(|j| l[i * k + j] * z[j]).sum();
        }
    }
    acts(n, k, data)
}

/// `n` samples of rank-8 structure plus 5% noise.
fn low_rank(seed: u64, n: usize, k: usize) -> Activations {
    let r = 8;
    let basis = Rng::new(seed).normal_vec(r * k);
    let mut rng = Rng::new(seed + n as u64);
    let mut data = vec![0f32; n * k];
    for s in 0..n {
        let c = rng.normal_vec(r);
        for i in 0..k {
            let v: f32 = (0..r).map(|t| c[t] * basis[t * k + i]).sum();
            data[s * k + i] = v + 0.05 * rng.normal() as f32;
        }
    }
    acts(n, k, data)
}

fn white(seed: u64, n: usize, k: usize) -> Activations {
    acts(n, k, Rng::new(seed).normal_vec(n * k))
}

/// White inputs except `few` channels whose activations are `big` times larger.
fn outlier_channels(seed: u64, n: usize, k: usize, few: usize, big: f32) -> Activations {
    let mut data = Rng::new(seed).normal_vec(n * k);
    for s in 0..n {
        for c in 0..few {
            data[s * k + c * (k / few) + 3] *= big;
        }
    }
    acts(n, k, data)
}

/// Output NMSE on held-out inputs of the weights `q` stands for.
fn out_nmse(q: &quantize::Quantized, w: &[f32], x: &Activations) -> f64 {
    quantize::evaluate(q, w, Some(x)).output_nmse.unwrap()
}

/// Weight NMSE of `q` against the weights `w` it stands for.
fn weight_nmse(q: &quantize::Quantized, w: &[f32]) -> f64 {
    quantize::evaluate(q, w, None).weight_nmse
}

/// The `rows` x `k` weights `w` in format `f`, by RTN and by `method` (calibrated on
/// `calib` where it needs it).
fn rtn_and(
    f: Format,
    method: Method,
    w: &[f32],
    (rows, k): (usize, usize),
    calib: Option<&Activations>,
) -> (quantize::Quantized, quantize::Quantized) {
    (
        quantize::quantize(f, Method::Rtn, w, rows, k, None).unwrap(),
        quantize::quantize(f, method, w, rows, k, calib).unwrap(),
    )
}

/// ggml's `make_qx_quants` (ggml-quants.c) with unit weights (`rmse_type` 2): the
/// candidate search `iscale = -(nmax + 0.1 is) / max`, `is = -9..=9`, each with the
/// closed-form scale `sum(x l) / sum(l^2)`; codes in `-nmax..nmax`. Returns the weight NMSE
/// of every block dequantized with the f16 scale, as a Q4_0 (nmax 8) or Q8_0 (nmax 128)
/// block stores it.
fn ggml_make_qx_quants_nmse(w: &[f32], nmax: i32) -> f64 {
    let nearest = |v: f32| v.round() as i32;
    let (mut num, mut den) = (0f64, 0f64);
    for x in w.chunks_exact(32) {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        let mut l = [0i32; 32];
        let mut scale = 0f32;
        if amax >= 1e-15 {
            let pass = |iscale: f32, l: &mut [i32; 32]| {
                let (mut sumlx, mut suml2) = (0f32, 0f32);
                for (li, &v) in l.iter_mut().zip(x) {
                    *li = nearest(iscale * v).clamp(-nmax, nmax - 1);
                    sumlx += v * *li as f32;
                    suml2 += (*li * *li) as f32;
                }
                (sumlx, suml2)
            };
            let (sumlx, suml2) = pass(-(nmax as f32) / max, &mut l);
            scale = if suml2 > 0.0 { sumlx / suml2 } else { 0.0 };
            let mut best = scale * sumlx;
            for is in -9..=9 {
                if is == 0 {
                    continue;
                }
                let iscale = -(nmax as f32 + 0.1 * is as f32) / max;
                let mut cand = [0i32; 32];
                let (sumlx, suml2) = pass(iscale, &mut cand);
                if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
                    l = cand;
                    scale = sumlx / suml2;
                    best = scale * sumlx;
                }
            }
        }
        let d = half::f16::from_f32(scale).to_f32();
        for (&li, &v) in l.iter().zip(x) {
            num += ((li as f32 * d) as f64 - v as f64).powi(2);
            den += (v as f64).powi(2);
        }
    }
    num / den
}

#[test]
fn mse_search_never_loses_to_rtn_on_weights() {
    let (rows, k) = (32, 1024);
    let mut rng = Rng::new(11);
    let data = [
        ("N(0,1)", rng.normal_vec(rows * k)),
        ("t(3)", student_t3(&mut rng, rows * k)),
    ];
    for (what, w) in &data {
        for f in covered() {
            let rtn = quantize::quantize(f, Method::Rtn, w, rows, k, None).unwrap();
            let t = std::time::Instant::now();
            let mse = quantize::quantize(f, Method::Mse, w, rows, k, None).unwrap();
            let secs = t.elapsed().as_secs_f64();
            let (er, em) = (weight_nmse(&rtn, w), weight_nmse(&mse, w));
            println!(
                "weights {what:7} {f:16} rtn {er:.3e}  mse {em:.3e}  ({:.3}x, {secs:.2} s)",
                em / er
            );
            assert!(em <= er, "{what} {f}: mse {em:e} > rtn {er:e}");
            // ggml's candidate search (what llama.cpp runs for Q4_0 with an imatrix, here
            // with unit weights): ours tries a superset of its candidates.
            let nmax = match f {
                Format::Q4_0 => 8,
                Format::Q8_0 => 128,
                _ => continue,
            };
            let eg = ggml_make_qx_quants_nmse(w, nmax);
            println!("weights {what:7} {f:16} ggml make_qx_quants {eg:.3e}");
            assert!(
                em <= eg * 1.001,
                "{what} {f}: mse {em:e} vs ggml's search {eg:e}"
            );
            // The search must find something real on 4-bit grids.
            if f.bits_per_weight() < 6.0 {
                assert!(em < 0.95 * er, "{what} {f}: mse {em:e} vs rtn {er:e}");
            }
        }
    }
}

#[test]
fn rtn_method_is_the_reference_quantizer() {
    let (rows, k) = (16, 256);
    let w = Rng::new(5).normal_vec(rows * k);
    for f in covered() {
        let q = quantize::quantize(f, Method::Rtn, &w, rows, k, None).unwrap();
        assert_eq!(q.tensor, QuantizedTensor::quantize(f, &w, rows, k).unwrap());
        assert!(q.awq_scales.is_none());
    }
}

/// The GPTQ layer: 64 rows of K = 256, N(0,1) weights.
fn layer() -> (usize, usize, Vec<f32>) {
    let (rows, k) = (64, 256);
    (rows, k, Rng::new(21).normal_vec(rows * k))
}

#[test]
fn gptq_beats_rtn_on_correlated_activations() {
    let (rows, k, w) = layer();
    for (what, calib, held) in [
        (
            "x = L z",
            correlated(1, 1024, k),
            correlated(1, 512, k), // same L, other samples
        ),
        ("rank 8 + noise", low_rank(2, 1024, k), low_rank(2, 512, k)),
    ] {
        for f in ["int4_g128", "q4_0", "int4_g32_asym", "q4_1", "int8_g128"] {
            let f = fmt(f);
            let (rtn, gptq) = rtn_and(f, Method::GPTQ, &w, (rows, k), Some(&calib));
            let (er, eg) = (out_nmse(&rtn, &w, &held), out_nmse(&gptq, &w, &held));
            let (wr, wg) = (weight_nmse(&rtn, &w), weight_nmse(&gptq, &w));
            println!(
                "gptq {what:14} {f:14} output NMSE rtn {er:.3e} gptq {eg:.3e} ({:.3}x); \
                 weight NMSE rtn {wr:.3e} gptq {wg:.3e}",
                eg / er
            );
            assert!(eg <= 0.8 * er, "{what} {f}: gptq {eg:e} vs rtn {er:e}");
        }
    }
}

/// The formats GPTQ gained (Q5_0, Q5_1, IQ4_NL, the K-quants), and act-order with static groups on all
/// of them: well below RTN on correlated inputs, held-out samples.
#[test]
fn gptq_act_order_and_the_newer_grids() {
    let (rows, k, w) = layer();
    let calib = correlated(1, 1024, k);
    let held = correlated(1, 512, k);
    let act_order = Method::Gptq {
        damp: 0.01,
        block: 128,
        act_order: true,
        static_groups: true,
    };
    let static_only = Method::Gptq {
        damp: 0.01,
        block: 128,
        act_order: false,
        static_groups: true,
    };
    for f in [
        "q5_0",
        "q5_1",
        "iq4_nl",
        "q4_k",
        "q5_k",
        "q6_k",
        "q4_0",
        "int4_g128",
        "int4_g32_asym",
    ] {
        let f = fmt(f);
        let (rtn, plain) = rtn_and(f, Method::GPTQ, &w, (rows, k), Some(&calib));
        let er = out_nmse(&rtn, &w, &held);
        let ep = out_nmse(&plain, &w, &held);
        let (_, ao) = rtn_and(f, act_order, &w, (rows, k), Some(&calib));
        let (_, st) = rtn_and(f, static_only, &w, (rows, k), Some(&calib));
        let (ea, es) = (out_nmse(&ao, &w, &held), out_nmse(&st, &w, &held));
        println!(
            "gptq x = L z        {f:14} output NMSE rtn {er:.3e} gptq {ep:.3e} ({:.3}x) \
             static {es:.3e} ({:.3}x) act-order {ea:.3e} ({:.3}x)",
            ep / er,
            es / er,
            ea / er
        );
        for (what, e) in [("gptq", ep), ("static groups", es), ("act-order", ea)] {
            assert!(e <= 0.8 * er, "{f} {what}: {e:e} vs rtn {er:e}");
        }
    }
    // Act-order without static groups is refused by the order itself, not silently run.
    assert_eq!(
        act_order.to_string(),
        "gptq(damp=0.01, block=128, act-order, static-groups)"
    );
}

/// The importance-matrix method against RTN and the plain MSE search: on inputs where a
/// few channels are 30x larger, the layer's output error on held-out samples drops, for
/// the grid formats and for those searched through their own quantizer (q4_k, q6_k).
#[test]
fn imatrix_fits_the_channels_that_matter() {
    let (rows, k) = (64, 512);
    let w = Rng::new(22).normal_vec(rows * k);
    let calib = outlier_channels(5, 512, k, 8, 30.0);
    let held = outlier_channels(6, 512, k, 8, 30.0);
    for f in [
        "q4_0",
        "q4_1",
        "q5_0",
        "iq4_nl",
        "int4_g32_asym",
        "q8_0",
        "q4_k",
        "q6_k",
    ] {
        let f = fmt(f);
        let (rtn, imx) = rtn_and(f, Method::Imatrix, &w, (rows, k), Some(&calib));
        let (_, mse) = rtn_and(f, Method::Mse, &w, (rows, k), None);
        let (er, ei, em) = (
            out_nmse(&rtn, &w, &held),
            out_nmse(&imx, &w, &held),
            out_nmse(&mse, &w, &held),
        );
        println!(
            "imatrix 8 ch x30    {f:14} output NMSE rtn {er:.3e} mse {em:.3e} imatrix {ei:.3e} \
             ({:.3}x rtn)",
            ei / er
        );
        assert!(ei < 0.9 * er, "{f}: imatrix {ei:e} vs rtn {er:e}");
        assert!(ei < em, "{f}: imatrix {ei:e} vs mse {em:e}");
    }
    // Without calibration or an importance vector, a typed error.
    let e = quantize::quantize(fmt("q4_0"), Method::Imatrix, &w, rows, k, None).unwrap_err();
    assert!(matches!(e, Error::MissingCalibration { .. }), "{e}");
}

#[test]
fn gptq_on_white_activations_is_about_rtn() {
    let (rows, k, w) = layer();
    let calib = white(3, 8192, k);
    let held = white(4, 1024, k);
    for f in ["int4_g128", "q4_0", "int4_g32_asym"] {
        let f = fmt(f);
        let (rtn, gptq) = rtn_and(f, Method::GPTQ, &w, (rows, k), Some(&calib));
        let (er, eg) = (out_nmse(&rtn, &w, &held), out_nmse(&gptq, &w, &held));
        let ec = out_nmse(&gptq, &w, &calib) / out_nmse(&rtn, &w, &calib);
        println!(
            "gptq white          {f:14} output NMSE rtn {er:.3e} gptq {eg:.3e} ({:.3}x; \
             {ec:.3}x on the calibration samples)",
            eg / er
        );
        assert!(eg <= 1.05 * er, "{f}: gptq {eg:e} vs rtn {er:e}");
    }
}

#[test]
fn gptq_lazy_batch_size_does_not_change_the_result_much() {
    // Lazy batches are an evaluation order, not a different algorithm: any batch size
    // gives the same codes up to float rounding.
    let (rows, k, w) = layer();
    let calib = correlated(1, 512, k);
    let f = fmt("int4_g32");
    let a = quantize::quantize(f, Method::GPTQ, &w, rows, k, Some(&calib)).unwrap();
    let b = quantize::quantize(
        f,
        Method::Gptq {
            damp: 0.01,
            block: 32,
            act_order: false,
            static_groups: false,
        },
        &w,
        rows,
        k,
        Some(&calib),
    )
    .unwrap();
    let diff = a
        .tensor
        .bytes()
        .iter()
        .zip(b.tensor.bytes())
        .filter(|(x, y)| x != y)
        .count();
    assert!(
        diff * 100 < a.tensor.bytes().len(),
        "{diff} of {} bytes differ",
        a.tensor.bytes().len()
    );
}

#[test]
fn awq_protects_channels_with_large_activations() {
    let (rows, k, w) = layer();
    let calib = outlier_channels(5, 512, k, 4, 30.0);
    let held = outlier_channels(6, 512, k, 4, 30.0);
    for f in ["int4_g128", "q4_0", "int4_g32_asym", "q4_1"] {
        let f = fmt(f);
        let (rtn, awq) = rtn_and(f, Method::AWQ, &w, (rows, k), Some(&calib));
        let (er, ea) = (out_nmse(&rtn, &w, &held), out_nmse(&awq, &w, &held));
        let s = awq.awq_scales.as_ref().unwrap();
        let alpha = awq.awq_alpha.unwrap();
        println!(
            "awq 4 channels x30  {f:14} output NMSE rtn {er:.3e} awq {ea:.3e} ({:.3}x), \
             alpha {alpha:.2}",
            ea / er
        );
        assert_eq!(s.len(), k);
        assert!(alpha > 0.0);
        // The big channels got the big scales.
        let big = s[3];
        let median = {
            let mut v = s.clone();
            v.sort_by(f32::total_cmp);
            v[k / 2]
        };
        assert!(big > 2.0 * median, "{f}: s[3] {big} vs median {median}");
        assert!(ea < 0.8 * er, "{f}: awq {ea:e} vs rtn {er:e}");
        // The stored tensor is W diag(s); dividing the input by s gives the same outputs
        // as the effective weights.
        let deq = awq.tensor.dequantize();
        let eff = awq.effective_weights();
        for (r, (a, b)) in deq
            .chunks_exact(k)
            .zip(eff.chunks_exact(k))
            .enumerate()
            .take(4)
        {
            for j in 0..k {
                assert!(
                    (a[j] / s[j] - b[j]).abs() <= 1e-6 * b[j].abs().max(1e-6),
                    "{r} {j}"
                );
            }
        }
    }
}

#[test]
fn awq_on_white_activations_is_rtn_or_better() {
    let (rows, k, w) = layer();
    let calib = white(7, 256, k);
    let f = fmt("int4_g128");
    let (rtn, awq) = rtn_and(f, Method::AWQ, &w, (rows, k), Some(&calib));
    let (er, ea) = (out_nmse(&rtn, &w, &calib), out_nmse(&awq, &w, &calib));
    println!("awq white           {f:14} output NMSE rtn {er:.3e} awq {ea:.3e}");
    assert!(ea <= er * (1.0 + 1e-9));
}

#[test]
fn bad_calibration_gives_typed_errors() {
    let (rows, k, w) = layer();
    let f = fmt("int4_g128");
    for m in [Method::GPTQ, Method::AWQ] {
        let e = quantize::quantize(f, m, &w, rows, k, None).unwrap_err();
        assert!(matches!(e, Error::MissingCalibration { .. }), "{e}");
        assert!(e.to_string().contains("--calib"), "{e}");
        let other_k = white(1, 8, 128);
        let e = quantize::quantize(f, m, &w, rows, k, Some(&other_k)).unwrap_err();
        assert!(matches!(e, Error::Calibration(_)), "{e}");
        assert!(
            e.to_string().contains("128") && e.to_string().contains("256"),
            "{e}"
        );
    }
    let mut x = vec![0.5f32; 4 * k];
    x[k + 7] = f32::NAN;
    let e = Activations::new(4, k, x).unwrap_err();
    assert!(matches!(e, Error::Calibration(_)), "{e}");
    assert!(e.to_string().contains("[1, 7]"), "{e}");
    let e = Activations::new(0, k, vec![]).unwrap_err();
    assert!(matches!(e, Error::Calibration(_)), "{e}");
    // GPTQ needs a linear grid; non-finite weights are refused.
    let calib = white(1, 8, k);
    let mut bad = w.clone();
    bad[3] = f32::INFINITY;
    let e = quantize::quantize(f, Method::GPTQ, &bad, rows, k, Some(&calib)).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert!("gptqq".parse::<Method>().is_err());
    assert_eq!("GPTQ".parse::<Method>().unwrap(), Method::GPTQ);
    assert_eq!(Method::default(), Method::Rtn);
    // Calibration files: by extension; a named entry of the wrong K is an error.
    let dir = TempDir::new("qm-calib-lib");
    let p = dir.join("c.npy");
    let mut x = vec![0.5f32; 4 * k];
    x[5] = f32::NAN;
    io::write_npy(&p, &[4, k], &x).unwrap();
    let e = Calibration::load(&p).unwrap_err();
    assert!(
        matches!(e, Error::Calibration(_)) && e.to_string().contains("c.npy"),
        "{e}"
    );
    let p = dir.join("c.safetensors");
    write_one(&p, "proj", vec![2, 3, 128], vec![1.0; 768]);
    let c = Calibration::load(&p).unwrap();
    let e = c.for_tensor("proj.weight", 256).unwrap_err();
    assert!(matches!(e, Error::Calibration(_)), "{e}");
    let a = c.for_tensor("proj.weight", 128).unwrap().unwrap();
    assert_eq!((a.samples(), a.k()), (6, 128));
    assert!(c.for_tensor("other.weight", 128).unwrap().is_none());
    let e = Calibration::load(dir.join("c.txt")).unwrap_err();
    assert!(matches!(e, Error::Calibration(_)), "{e}");
}

// ---------------------------------------------------------------------------------------
// The command line.

/// A safetensors file holding the one f32 array `name`.
fn write_one(path: &Path, name: &str, shape: Vec<usize>, data: Vec<f32>) {
    io::write_safetensors(path, &[(name.into(), Array::new(shape, data).unwrap())]).unwrap();
}

/// `wgquant quantize MODEL OUT -f FORMAT --method METHOD [--calib CALIB]`.
fn quantize_args<'a>(
    model: &'a Path,
    out: &'a Path,
    format: &'a str,
    method: &'a str,
    calib: Option<&'a Path>,
) -> Vec<&'a str> {
    let mut args = vec![
        "quantize",
        s(model),
        s(out),
        "-f",
        format,
        "--method",
        method,
    ];
    if let Some(c) = calib {
        args.extend(["--calib", s(c)]);
    }
    args
}

fn quantized(path: &Path, name: &str) -> QuantizedTensor {
    match io::read_model(path).unwrap().tensor(name) {
        Some(StoredTensor::Quantized(q)) => q.clone(),
        other => panic!("{name} is {other:?}"),
    }
}

#[test]
fn cli_quantize_with_methods_and_calibration() {
    let dir = TempDir::new("qm-cli");
    let (rows, k, w) = layer();
    let model = dir.join("m.safetensors");
    io::write_safetensors(
        &model,
        &[
            (
                "proj.weight".into(),
                Array::new(vec![rows, k], w.clone()).unwrap(),
            ),
            (
                "proj.bias".into(),
                Array::new(vec![rows], vec![0.1; rows]).unwrap(),
            ),
        ],
    )
    .unwrap();
    let calib = correlated(1, 256, k);
    let cp = dir.join("x.npy");
    io::write_npy(&cp, &[calib.samples(), k], calib.data()).unwrap();

    // rtn is the default and the file is byte for byte the same.
    let plain = dir.join("plain.gguf");
    let rtn = dir.join("rtn.gguf");
    ok(&["quantize", s(&model), s(&plain), "--format", "q4_0"]);
    let (_, err) = ok(&quantize_args(&model, &rtn, "q4_0", "rtn", None));
    assert!(err.contains("proj.weight") && err.contains("rtn") && err.contains("weight NMSE"));
    assert_eq!(std::fs::read(&plain).unwrap(), std::fs::read(&rtn).unwrap());
    assert_eq!(
        quantized(&rtn, "proj.weight"),
        QuantizedTensor::quantize(Format::Q4_0, &w, rows, k).unwrap()
    );

    // Data-dependent methods without --calib: a clear error before any work.
    for m in ["gptq", "awq"] {
        let err = fails(&quantize_args(&model, &rtn, "q4_0", m, None));
        assert!(err.contains(m) && err.contains("--calib"), "{err}");
    }
    let err = fails(&quantize_args(&model, &rtn, "q4_0", "best", None));
    assert!(err.contains("gptq"), "{err}");

    // mse needs nothing; gptq and awq write what the library computes and report errors.
    let out = dir.join("mse.gguf");
    let (_, err) = ok(&quantize_args(&model, &out, "int4_g128", "mse", None));
    assert!(err.contains("mse") && err.contains("weight NMSE"), "{err}");
    let want = quantize::quantize(fmt("int4_g128"), Method::Mse, &w, rows, k, None).unwrap();
    assert_eq!(quantized(&out, "proj.weight"), want.tensor);

    let out = dir.join("gptq.gguf");
    let (_, err) = ok(&quantize_args(
        &model,
        &out,
        "int4_g32_asym",
        "gptq",
        Some(&cp),
    ));
    assert!(
        err.contains("gptq") && err.contains("output NMSE") && err.contains("256 samples"),
        "{err}"
    );
    assert_eq!(quantized(&out, "proj.weight"), want_gptq(&w, &calib));
    let m = io::read_model(&out).unwrap();
    assert!(m
        .metadata("wgquant.quantize.method")
        .and_then(|v| v.as_str())
        .unwrap()
        .starts_with("gptq"));

    let out = dir.join("awq.gguf");
    let (_, err) = ok(&quantize_args(&model, &out, "q4_0", "awq", Some(&cp)));
    assert!(err.contains("proj.weight.awq_scales"), "{err}");
    let want = quantize::quantize(Format::Q4_0, Method::AWQ, &w, rows, k, Some(&calib)).unwrap();
    assert_eq!(quantized(&out, "proj.weight"), want.tensor);
    match io::read_model(&out)
        .unwrap()
        .tensor("proj.weight.awq_scales")
    {
        Some(StoredTensor::Float { shape, data }) => {
            assert_eq!(shape, &vec![k]);
            assert_eq!(data, want.awq_scales.as_ref().unwrap());
        }
        other => panic!("awq scales: {other:?}"),
    }

    // Per-tensor calibration from safetensors, found by name.
    let named = dir.join("calib.safetensors");
    write_one(
        &named,
        "proj.weight",
        vec![calib.samples(), k],
        calib.data().to_vec(),
    );
    let out = dir.join("gptq2.gguf");
    ok(&quantize_args(
        &model,
        &out,
        "int4_g32_asym",
        "gptq",
        Some(&named),
    ));
    assert_eq!(quantized(&out, "proj.weight"), want_gptq(&w, &calib));

    // Bad calibration: K that fits no weight, NaN, a named entry of the wrong K.
    let bad = dir.join("bad.npy");
    io::write_npy(&bad, &[4, 128], &[0.5; 512]).unwrap();
    let err = fails(&quantize_args(&model, &out, "q4_0", "gptq", Some(&bad)));
    assert!(
        err.contains("calibration") && err.contains("K = 256"),
        "{err}"
    );
    let mut x = vec![0.5f32; 4 * k];
    x[9] = f32::NAN;
    io::write_npy(&bad, &[4, k], &x).unwrap();
    let err = fails(&quantize_args(&model, &out, "q4_0", "awq", Some(&bad)));
    assert!(err.contains("NaN"), "{err}");
    let badst = dir.join("bad.safetensors");
    write_one(&badst, "proj.weight", vec![2, 64], vec![1.0; 128]);
    let err = fails(&quantize_args(&model, &out, "q4_0", "gptq", Some(&badst)));
    assert!(err.contains("K = 64"), "{err}");
}

fn want_gptq(w: &[f32], calib: &Activations) -> QuantizedTensor {
    let (rows, k, _) = layer();
    quantize::quantize(fmt("int4_g32_asym"), Method::GPTQ, w, rows, k, Some(calib))
        .unwrap()
        .tensor
}

/// The figures of docs/QUANTIZATION.md next to formats.md's: 1M N(0,1) weights.
/// `cargo test --release --test quantize_methods -- --ignored --nocapture`
#[test]
#[ignore]
fn report_weight_nmse_on_1m_normal_values() {
    let (rows, k) = (1024, 1024);
    let w = Rng::new(1).normal_vec(rows * k);
    for f in covered() {
        let (rtn, mse) = rtn_and(f, Method::Mse, &w, (rows, k), None);
        let (er, em) = (weight_nmse(&rtn, &w), weight_nmse(&mse, &w));
        println!(
            "1M N(0,1) {f:16} rtn {er:.3e}  mse {em:.3e}  ({:.3}x)",
            em / er
        );
    }
}
