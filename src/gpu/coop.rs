//! When the tensor-core GEMM (`shaders/gemm_coop.wgsl`, [`Entry::GemmCoop`]) can run: the
//! device features it needs, the cooperative-matrix configuration it uses, and the
//! subgroup size it is written for.
//!
//! The kernel is validated by naga only on machines without cooperative matrices (lavapipe
//! has none); its results are checked on hardware by `wgquant verify`, whose GEMM cases
//! take this path where the device offers it (`scripts/device-bench.sh` runs it).

use super::check_fits;
use super::shaders::Entry;
use crate::error::{Error, Result};

/// Batches of at least this many activation rows use the tensor-core GEMM where enabled
/// (below, most of a 64-row batch tile would be padding).
pub const COOP_MIN_N: usize = 16;
/// The tensor-core GEMM's output tile (weight rows x activation rows), kept in step with
/// `TILE_M` / `TILE_N` in `shaders/gemm_coop.wgsl`.
pub const GEMM_COOP_TILE: (usize, usize) = (128, 64);
/// The subgroup size the kernel assumes (a warp tile per 32 consecutive invocations).
pub const COOP_SUBGROUP_SIZE: u32 = 32;

/// The device features the tensor-core GEMM needs. `EXPERIMENTAL_COOPERATIVE_MATRIX` must be
/// requested with `experimental_features: unsafe { wgpu::ExperimentalFeatures::enabled() }`.
pub fn coop_matrix_features() -> wgpu::Features {
    wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX | wgpu::Features::SHADER_F16
}

fn subgroups_fit(info: &wgpu::AdapterInfo) -> bool {
    info.subgroup_min_size == COOP_SUBGROUP_SIZE && info.subgroup_max_size == COOP_SUBGROUP_SIZE
}

/// Whether `adapter` can run the tensor-core GEMM: it offers [`coop_matrix_features`], a
/// 16x16x16 configuration with f16 inputs and f32 accumulators, and subgroups of exactly 32.
/// [`recommended_features`](super::recommended_features) requests the features only then.
pub fn adapter_supports_coop_gemm(adapter: &wgpu::Adapter) -> bool {
    adapter.features().contains(coop_matrix_features())
        && subgroups_fit(&adapter.get_info())
        && adapter.cooperative_matrix_properties().iter().any(|p| {
            (p.m_size, p.n_size, p.k_size) == (16, 16, 16)
                && p.ab_type == wgpu::CooperativeScalarType::F16
                && p.cr_type == wgpu::CooperativeScalarType::F32
        })
}

/// Why `device` cannot run the tensor-core GEMM, if it cannot: the features, the subgroup
/// size, or workgroup memory. (A device only reveals its features, not the adapter's
/// cooperative-matrix configurations: a caller's own device with the features but without
/// 16x16x16 f16 / f32 should use a [`KernelConfig`](super::KernelConfig) without it.)
pub fn check_coop_gemm(device: &wgpu::Device) -> Result<()> {
    if !device.features().contains(coop_matrix_features()) {
        return Err(Error::DeviceLimit(
            "the tensor-core GEMM needs a device with Features::EXPERIMENTAL_COOPERATIVE_MATRIX \
             and SHADER_F16"
                .into(),
        ));
    }
    let info = device.adapter_info();
    if !subgroups_fit(&info) {
        return Err(Error::DeviceLimit(format!(
            "the tensor-core GEMM needs subgroups of exactly {COOP_SUBGROUP_SIZE}; this device's \
             are {}..={}",
            info.subgroup_min_size, info.subgroup_max_size
        )));
    }
    let e = Entry::GemmCoop;
    check_fits(
        &device.limits(),
        e.entry_point(),
        e.workgroup_memory_bytes(),
        e.invocations(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_matches_the_wgsl() {
        let src = include_str!("../../shaders/gemm_coop.wgsl");
        for (name, value) in [
            ("TILE_M", GEMM_COOP_TILE.0 as u32),
            ("TILE_N", GEMM_COOP_TILE.1 as u32),
            ("SUBGROUP", COOP_SUBGROUP_SIZE),
            ("THREADS", Entry::GemmCoop.invocations()),
        ] {
            let line = format!("const {name}: u32 = {value}u;");
            assert!(src.contains(&line), "expected `{line}` in gemm_coop.wgsl");
        }
    }
}
