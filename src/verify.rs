//! The kernel correctness suite: every kernel of every format against the CPU reference
//! (f64 accumulation over the dequantized weights). Outputs are poisoned first and bound
//! between guard regions that must survive untouched; NaN anywhere fails.
//! Used by `wgquant verify` and by the integration tests.

use crate::error::Result;
use crate::format::reference::{matmul_f64, nmse};
use crate::format::{Format, QuantizedTensor};
use crate::gpu::{block_on, KernelConfig};
use crate::gpu::{
    check_coop_gemm, ActType, Dispatch, GpuContext, GpuWeight, KernelKind, Kernels, Operand,
    COOP_MIN_N,
};
use crate::rng::Rng;
use half::f16;

/// f32-accumulating kernels must reach this NMSE against the f64 reference.
pub const MATMUL_NMSE_MAX: f64 = 1e-6;
/// The tensor-core GEMM (f16 products: x and the weights rounded to f16, about 1e-7 NMSE on
/// these cases; f32 accumulation) must reach this. Any layout or indexing fault gives ~1.
pub const MATMUL_COOP_NMSE_MAX: f64 = 1e-5;
/// f16 activations and outputs (`Kernels::matmul_f16`) must reach this NMSE against the f64
/// reference on the f16-rounded activations the kernel reads. Accumulation stays f32, so the
/// error is rounding y to f16: at most 2^-11 relative per output (2^-10 for a truncating
/// conversion), NMSE <= 2.4e-7 (9.5e-7) whatever the data (docs/ACCURACY.md).
pub const MATMUL_F16_NMSE_MAX: f64 = 1e-6;
/// ... and this NMSE against the reference on the exact f32 activations they were rounded
/// from, on cases of at least [`UNROUNDED_STATISTICAL_OUTPUTS`] outputs. Statistical, not a
/// worst case: rounding x moves each product by at most 2^-11 relative, ~1e-7 NMSE on random
/// data, but an output that cancels to near zero can see much more (2.7e-5 measured for a
/// single output of 32 products), so smaller cases are held to the worst case instead
/// ([`unrounded_bound`]).
pub const MATMUL_F16_UNROUNDED_NMSE_MAX: f64 = 1e-5;
/// Outputs a case needs before [`MATMUL_F16_UNROUNDED_NMSE_MAX`] applies.
pub const UNROUNDED_STATISTICAL_OUTPUTS: usize = 64;
/// Dequantization may differ from the CPU by one rounding (a fused multiply-add).
pub const DEQUANT_NMSE_MAX: f64 = 1e-12;

/// f32 values on each side of an output (256 bytes: one binding-offset alignment).
pub const GUARD: usize = 64;
/// Written around outputs; must survive bit for bit (a NaN pattern no kernel produces).
pub const GUARD_BITS: u32 = 0x7F80_BEEF;
/// Written over the output first; a value left unwritten reads back as NaN.
pub const POISON_BITS: u32 = 0x7FC0_DEAD;
/// The same for f16 outputs (an f16 NaN no kernel produces).
pub const POISON_F16_BITS: u16 = 0x7E5D;

/// The outcome of one checked kernel run.
#[derive(Clone, Debug)]
pub struct CaseResult {
    pub format: Format,
    pub kernel: KernelKind,
    /// The entry point that ran (`gemm_coop` for the tensor-core GEMM, else the family's).
    pub entry: &'static str,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// The activation type (f16: `Kernels::matmul_f16`).
    pub act: ActType,
    /// NMSE against the reference on the activations the kernel read (f16-rounded for f16;
    /// infinite if any output is NaN or infinite).
    pub nmse: f64,
    /// For f16 activations, the NMSE against the reference on the exact f32 activations they
    /// were rounded from, and its bound ([`unrounded_bound`]).
    pub nmse_unrounded: Option<(f64, f64)>,
    /// Index of the first non-finite output, if any.
    pub first_nan: Option<usize>,
    /// Whether both guard regions survived.
    pub guards_intact: bool,
    /// The bound the case is held to.
    pub bound: f64,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.guards_intact
            && self.first_nan.is_none()
            && self.nmse <= self.bound
            && self.unrounded_ok()
    }

    /// Why the case failed, beyond its NMSE and bound (a non-finite output, a guard overwritten,
    /// the unrounded NMSE over its bound); `None` otherwise.
    pub fn failure(&self) -> Option<String> {
        if let Some(i) = self.first_nan {
            Some(format!("output {i} is not finite"))
        } else if !self.guards_intact {
            Some("guard region overwritten".into())
        } else if let Some((e, bound)) = self.nmse_unrounded.filter(|_| !self.unrounded_ok()) {
            Some(format!(
                "NMSE on the unrounded f32 activations {e:.3e} exceeds {bound:.1e}"
            ))
        } else {
            None
        }
    }

    /// The case as a JSON object (NMSE `null` when an output is not finite).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "format": self.format.to_string(),
            "kernel": self.kernel_name(),
            "m": self.m,
            "k": self.k,
            "n": self.n,
            "act": self.act.to_string(),
            "nmse": self.nmse.is_finite().then_some(self.nmse),
            "bound": self.bound,
            "first_nan": self.first_nan,
            "guards_intact": self.guards_intact,
            "passed": self.passed(),
            "failure": self.failure(),
        })
    }

    /// Whether [`nmse_unrounded`](Self::nmse_unrounded), if any, is within its bound.
    pub fn unrounded_ok(&self) -> bool {
        self.nmse_unrounded.is_none_or(|(e, bound)| e <= bound)
    }

    /// A matmul case (no unrounded comparison) and its bound: the tensor-core GEMM's where
    /// `op` multiplies in f16, else the f32 or f16-activation kernels' own.
    fn matmul(
        format: Format,
        op: &Dispatch,
        act: ActType,
        (m, k, n): (usize, usize, usize),
        want: &[f64],
        got: &[f32],
        guards_intact: bool,
    ) -> Self {
        let bound = match act {
            _ if op.f16_products() => MATMUL_COOP_NMSE_MAX,
            ActType::F32 => MATMUL_NMSE_MAX,
            ActType::F16 => MATMUL_F16_NMSE_MAX,
        };
        CaseResult {
            format,
            kernel: op.kind(),
            entry: op.kernel_name(),
            act,
            m,
            k,
            n,
            nmse: nmse(want, got),
            nmse_unrounded: None,
            first_nan: got.iter().position(|v| !v.is_finite()),
            guards_intact,
            bound,
        }
    }

    /// The kernel's name, with `_f16` for f16 activations.
    pub fn kernel_name(&self) -> String {
        match self.act {
            ActType::F32 => self.entry.to_string(),
            ActType::F16 => format!("{}_f16", self.entry),
        }
    }
}

/// A buffer laid out as `[guard][len poisoned values][guard]`.
pub fn guarded_buffer(ctx: &GpuContext, len: usize) -> wgpu::Buffer {
    let mut init = vec![f32::from_bits(GUARD_BITS); GUARD];
    init.extend(std::iter::repeat_n(f32::from_bits(POISON_BITS), len));
    init.extend(std::iter::repeat_n(f32::from_bits(GUARD_BITS), GUARD));
    ctx.storage_buffer("wgquant guarded output", &init)
}

/// Where the payload of a guarded buffer starts.
pub fn guarded_payload(buf: &wgpu::Buffer) -> Operand<'_> {
    Operand {
        buffer: buf,
        offset: (GUARD * 4) as u64,
    }
}

/// Read a guarded buffer back: (payload, guards intact).
pub fn read_guarded(ctx: &GpuContext, buf: &wgpu::Buffer, len: usize) -> Result<(Vec<f32>, bool)> {
    block_on(
        "verify::read_guarded_async",
        read_guarded_async(ctx, buf, len),
    )
}

/// [`read_guarded`] as a future.
pub async fn read_guarded_async(
    ctx: &GpuContext,
    buf: &wgpu::Buffer,
    len: usize,
) -> Result<(Vec<f32>, bool)> {
    let all = ctx.read_f32_async(buf, len + 2 * GUARD).await?;
    let intact = all[..GUARD]
        .iter()
        .chain(&all[GUARD + len..])
        .all(|v| v.to_bits() == GUARD_BITS);
    Ok((all[GUARD..GUARD + len].to_vec(), intact))
}

/// A buffer laid out as `[guard][len poisoned f16, padded to whole words][guard]`.
pub fn guarded_buffer_f16(ctx: &GpuContext, len: usize) -> wgpu::Buffer {
    let poison = f32::from_bits(POISON_F16_BITS as u32 * 0x1_0001);
    let mut init = vec![f32::from_bits(GUARD_BITS); GUARD];
    init.extend(std::iter::repeat_n(poison, len.div_ceil(2)));
    init.extend(std::iter::repeat_n(f32::from_bits(GUARD_BITS), GUARD));
    ctx.storage_buffer("wgquant guarded f16 output", &init)
}

/// Read a guarded f16 buffer back: (payload, guards and the padding f16 of an odd `len`
/// intact).
pub fn read_guarded_f16(
    ctx: &GpuContext,
    buf: &wgpu::Buffer,
    len: usize,
) -> Result<(Vec<f16>, bool)> {
    block_on(
        "verify::read_guarded_f16_async",
        read_guarded_f16_async(ctx, buf, len),
    )
}

/// [`read_guarded_f16`] as a future.
pub async fn read_guarded_f16_async(
    ctx: &GpuContext,
    buf: &wgpu::Buffer,
    len: usize,
) -> Result<(Vec<f16>, bool)> {
    let words = len.div_ceil(2);
    let all = ctx.read_f32_async(buf, words + 2 * GUARD).await?;
    let mut intact = all[..GUARD]
        .iter()
        .chain(&all[GUARD + words..])
        .all(|v| v.to_bits() == GUARD_BITS);
    let halves: Vec<f16> = all[GUARD..GUARD + words]
        .iter()
        .flat_map(|w| {
            let b = w.to_bits();
            [f16::from_bits(b as u16), f16::from_bits((b >> 16) as u16)]
        })
        .collect();
    if len % 2 == 1 {
        intact &= halves[len].to_bits() == POISON_F16_BITS;
    }
    Ok((halves[..len].to_vec(), intact))
}

fn submit(ctx: &GpuContext, op: &crate::gpu::Dispatch) {
    let mut enc = ctx
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
    op.encode(&mut enc);
    ctx.queue.submit([enc.finish()]);
}

/// Check `y = x w^T` for one random case of `rows` x `k` weights and batch `n`.
pub fn matmul_case(
    ctx: &GpuContext,
    kernels: &Kernels,
    rows: usize,
    k: usize,
    n: usize,
    seed: u64,
) -> Result<CaseResult> {
    block_on(
        "verify::matmul_case_async",
        matmul_case_async(ctx, kernels, rows, k, n, seed),
    )
}

/// [`matmul_case`] as a future.
pub async fn matmul_case_async(
    ctx: &GpuContext,
    kernels: &Kernels,
    rows: usize,
    k: usize,
    n: usize,
    seed: u64,
) -> Result<CaseResult> {
    let format = kernels.format();
    let mut rng = Rng::new(seed);
    let w = rng.normal_vec(rows * k);
    let x = rng.normal_vec(n * k);
    let q = QuantizedTensor::quantize(format, &w, rows, k)?;
    let want = matmul_f64(&q.dequantize(), rows, k, &x, n);
    let gw = GpuWeight::upload(ctx, &q)?;
    let xb = ctx.storage_buffer("wgquant x", &x);
    let yb = guarded_buffer(ctx, n * rows);
    let op = kernels.matmul(&gw, &xb, guarded_payload(&yb), n)?;
    submit(ctx, &op);
    let (got, guards_intact) = read_guarded_async(ctx, &yb, n * rows).await?;
    Ok(CaseResult::matmul(
        format,
        &op,
        ActType::F32,
        (rows, k, n),
        &want,
        &got,
        guards_intact,
    ))
}

/// [`matmul_case`] with f16 activations and outputs (`Kernels::matmul_f16`): the random
/// activations are rounded to f16, the outputs are poisoned and guarded f16, and the NMSE
/// is taken against the reference on both the rounded and the exact activations.
pub fn matmul_case_f16(
    ctx: &GpuContext,
    kernels: &Kernels,
    rows: usize,
    k: usize,
    n: usize,
    seed: u64,
) -> Result<CaseResult> {
    block_on(
        "verify::matmul_case_f16_async",
        matmul_case_f16_async(ctx, kernels, rows, k, n, seed),
    )
}

/// [`matmul_case_f16`] as a future.
pub async fn matmul_case_f16_async(
    ctx: &GpuContext,
    kernels: &Kernels,
    rows: usize,
    k: usize,
    n: usize,
    seed: u64,
) -> Result<CaseResult> {
    let format = kernels.format();
    let mut rng = Rng::new(seed);
    let w = rng.normal_vec(rows * k);
    let x = rng.normal_vec(n * k);
    let xh: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
    let xr: Vec<f32> = xh.iter().map(|v| v.to_f32()).collect();
    let q = QuantizedTensor::quantize(format, &w, rows, k)?;
    let wd = q.dequantize();
    let want = matmul_f64(&wd, rows, k, &xr, n);
    let want_unrounded = matmul_f64(&wd, rows, k, &x, n);
    let gw = GpuWeight::upload(ctx, &q)?;
    let xb = ctx.storage_buffer_f16("wgquant x f16", &xh);
    let yb = guarded_buffer_f16(ctx, n * rows);
    let op = kernels.matmul_f16(&gw, &xb, guarded_payload(&yb), n)?;
    submit(ctx, &op);
    let (got, guards_intact) = read_guarded_f16_async(ctx, &yb, n * rows).await?;
    let got: Vec<f32> = got.iter().map(|v| v.to_f32()).collect();
    Ok(CaseResult {
        nmse_unrounded: Some((
            nmse(&want_unrounded, &got),
            unrounded_bound(&wd, rows, k, &x, n, &want_unrounded),
        )),
        ..CaseResult::matmul(
            format,
            &op,
            ActType::F16,
            (rows, k, n),
            &want,
            &got,
            guards_intact,
        )
    })
}

/// The bound on the NMSE of f16-activation outputs against the reference on the exact
/// activations `x` (`n` x `k`; `w` is `rows` x `k`, `want` that reference):
/// [`MATMUL_F16_UNROUNDED_NMSE_MAX`] from [`UNROUNDED_STATISTICAL_OUTPUTS`] outputs on, else
/// the worst case of rounding x, the weights (the tensor-core GEMM rounds them too) and y to
/// f16 (unit roundoff u = 2^-11): each output moves by at most u (2 sum |w x| + |y|), with
/// 10% headroom for the f32 accumulation.
pub fn unrounded_bound(w: &[f32], rows: usize, k: usize, x: &[f32], n: usize, want: &[f64]) -> f64 {
    if rows * n >= UNROUNDED_STATISTICAL_OUTPUTS {
        return MATMUL_F16_UNROUNDED_NMSE_MAX;
    }
    let u = 2f64.powi(-11);
    let (mut err, mut sig) = (0.0, 0.0);
    for c in 0..n {
        for r in 0..rows {
            let y = want[c * rows + r];
            let abs: f64 = w[r * k..(r + 1) * k]
                .iter()
                .zip(&x[c * k..(c + 1) * k])
                .map(|(&a, &b)| (a as f64 * b as f64).abs())
                .sum();
            err += (1.1 * u * (2.0 * abs + y.abs())).powi(2);
            sig += y * y;
        }
    }
    if sig == 0.0 {
        return MATMUL_F16_UNROUNDED_NMSE_MAX;
    }
    (err / sig).max(MATMUL_F16_UNROUNDED_NMSE_MAX)
}

/// Check GPU dequantization of one random `rows` x `k` weight against the CPU.
pub fn dequantize_case(
    ctx: &GpuContext,
    kernels: &Kernels,
    rows: usize,
    k: usize,
    seed: u64,
) -> Result<CaseResult> {
    block_on(
        "verify::dequantize_case_async",
        dequantize_case_async(ctx, kernels, rows, k, seed),
    )
}

/// [`dequantize_case`] as a future.
pub async fn dequantize_case_async(
    ctx: &GpuContext,
    kernels: &Kernels,
    rows: usize,
    k: usize,
    seed: u64,
) -> Result<CaseResult> {
    let format = kernels.format();
    let w = Rng::new(seed).normal_vec(rows * k);
    let q = QuantizedTensor::quantize(format, &w, rows, k)?;
    let want: Vec<f64> = q.dequantize().iter().map(|&v| v as f64).collect();
    let gw = GpuWeight::upload(ctx, &q)?;
    let out = guarded_buffer(ctx, rows * k);
    let op = kernels.dequantize(&gw, guarded_payload(&out))?;
    submit(ctx, &op);
    let (got, guards_intact) = read_guarded_async(ctx, &out, rows * k).await?;
    Ok(CaseResult {
        format,
        kernel: KernelKind::Dequantize,
        entry: KernelKind::Dequantize.entry_point(),
        act: ActType::F32,
        m: rows,
        k,
        n: 0,
        nmse: nmse(&want, &got),
        nmse_unrounded: None,
        first_nan: got.iter().position(|v| !v.is_finite()),
        guards_intact,
        bound: DEQUANT_NMSE_MAX,
    })
}

/// Matmul shapes `(rows, k, n)` for a format, with tails: rows not a multiple of the GEMM
/// tile, k a small odd multiple of the block, every batch 1..=9 and GEMM tails beyond.
pub fn matmul_shapes(format: Format) -> Vec<(usize, usize, usize)> {
    let km = format.k_multiple();
    let ks = [km, 3 * km, (640 / km).max(1) * km + km];
    let mut v: Vec<(usize, usize, usize)> = (1..=9)
        .chain([16, 65, 70])
        .enumerate()
        .map(|(i, n)| ([1, 7, 67, 130][i % 4], ks[i % 3], n))
        .collect();
    v.push((193, ks[2], 3));
    v.push((64, ks[1], 64));
    v
}

/// How many cases [`run_format_with_async`] checks for `format` on `device` with `config`
/// (for a progress bar; [`run_format`] runs `KernelConfig::for_device`).
pub fn suite_len(device: &wgpu::Device, format: Format, config: &KernelConfig) -> usize {
    let shapes = matmul_shapes(format);
    let mut cases = shapes.len() + 1;
    if ActType::preferred_for(device) == ActType::F16 {
        cases += shapes.len();
    }
    if !config.coop_matrix && check_coop_gemm(device).is_ok() {
        cases += shapes.iter().filter(|s| s.2 >= COOP_MIN_N).count();
    }
    cases
}

/// Run the whole suite for `format`, calling `each` after every case: every matmul shape with
/// f32 activations, again with f16 ones where the device prefers them
/// ([`ActType::preferred_for`]: not on CPU adapters, where `tests/kernels_f16.rs` covers
/// them), the batches of [`COOP_MIN_N`] or more again through the tensor-core GEMM where the
/// device can run it but the default configuration leaves it out (CPU adapters: lavapipe
/// from Mesa 25.1), and dequantization.
pub fn run_format(
    ctx: &GpuContext,
    format: Format,
    each: impl FnMut(&CaseResult),
) -> Result<Vec<CaseResult>> {
    block_on(
        "verify::run_format_async",
        run_format_async(ctx, format, each),
    )
}

/// [`run_format`] as a future (what a web page awaits).
pub async fn run_format_async(
    ctx: &GpuContext,
    format: Format,
    each: impl FnMut(&CaseResult),
) -> Result<Vec<CaseResult>> {
    let config = KernelConfig::for_device(&ctx.device);
    run_format_with_async(ctx, format, config, each).await
}

/// [`run_format_async`] with the kernel variants `config` names instead of the device's own
/// (e.g. a hardware GPU's variants on a software adapter, to check their shaders there).
pub async fn run_format_with_async(
    ctx: &GpuContext,
    format: Format,
    config: KernelConfig,
    mut each: impl FnMut(&CaseResult),
) -> Result<Vec<CaseResult>> {
    let kernels = Kernels::with_config(&ctx.device, format, config)?;
    let mut out = Vec::new();
    for (i, (rows, k, n)) in matmul_shapes(format).into_iter().enumerate() {
        let r = matmul_case_async(ctx, &kernels, rows, k, n, 1000 + i as u64).await?;
        each(&r);
        out.push(r);
    }
    if ActType::preferred_for(&ctx.device) == ActType::F16 {
        for (i, (rows, k, n)) in matmul_shapes(format).into_iter().enumerate() {
            let r = matmul_case_f16_async(ctx, &kernels, rows, k, n, 2000 + i as u64).await?;
            each(&r);
            out.push(r);
        }
    }
    if !kernels.config().coop_matrix && check_coop_gemm(&ctx.device).is_ok() {
        let config = KernelConfig {
            coop_matrix: true,
            ..kernels.config()
        };
        let coop = Kernels::with_config(&ctx.device, format, config)?;
        for (i, (rows, k, n)) in matmul_shapes(format).into_iter().enumerate() {
            if n >= COOP_MIN_N {
                let r = matmul_case_async(ctx, &coop, rows, k, n, 3000 + i as u64).await?;
                each(&r);
                out.push(r);
            }
        }
    }
    let r = dequantize_case_async(ctx, &kernels, 67, 3 * format.k_multiple(), 7).await?;
    each(&r);
    out.push(r);
    Ok(out)
}
