//! Shared test helpers: one GPU context per test binary, random data, checks.
#![allow(dead_code)]

use std::sync::OnceLock;
use wgquant::format::reference::{matmul_f64, nmse};
use wgquant::gpu::GpuContext;

/// The adapter every GPU test runs on (honours WGQUANT_ADAPTER / WGQUANT_BACKEND).
/// Tests fail, never skip, when there is none: CI installs lavapipe.
pub fn ctx() -> &'static GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| {
        let ctx = GpuContext::from_env().unwrap_or_else(|e| panic!("{e}"));
        eprintln!("GPU tests run on {}", ctx.describe());
        ctx
    })
}

/// Output guard: 64 f32 (256 bytes, one binding-offset alignment) on each side.
pub const GUARD: usize = 64;
/// Written around outputs; must survive bit for bit.
pub const GUARD_BITS: u32 = 0x7F80_BEEF; // a signalling-NaN pattern no kernel produces
/// Written into the output region first; any value left over is caught as NaN.
pub const POISON_BITS: u32 = 0x7FC0_DEAD;

/// A buffer laid out as [guard][len poisoned values][guard].
pub fn guarded_output(len: usize) -> wgpu::Buffer {
    let mut init = vec![f32::from_bits(GUARD_BITS); GUARD];
    init.extend(std::iter::repeat_n(f32::from_bits(POISON_BITS), len));
    init.extend(std::iter::repeat_n(f32::from_bits(GUARD_BITS), GUARD));
    ctx().storage_buffer("guarded output", &init)
}

/// Read back a guarded buffer, assert its guards are untouched and return the payload.
pub fn read_guarded(buf: &wgpu::Buffer, len: usize, what: &str) -> Vec<f32> {
    let all = ctx().read_f32(buf, len + 2 * GUARD).unwrap();
    for (i, v) in all[..GUARD].iter().chain(&all[GUARD + len..]).enumerate() {
        assert_eq!(v.to_bits(), GUARD_BITS, "{what}: guard value {i} overwritten");
    }
    all[GUARD..GUARD + len].to_vec()
}

/// Reference y for weights `w` (rows x k, already dequantized) and activations `x` (n x k).
pub fn reference(w: &[f32], rows: usize, k: usize, x: &[f32], n: usize) -> Vec<f64> {
    matmul_f64(w, rows, k, x, n)
}

/// NMSE with NaN rejected explicitly (nmse() also maps NaN to infinity).
pub fn checked_nmse(want: &[f64], got: &[f32], what: &str) -> f64 {
    if let Some(i) = got.iter().position(|v| !v.is_finite()) {
        panic!("{what}: output {i} is {} (unwritten or NaN)", got[i]);
    }
    nmse(want, got)
}
