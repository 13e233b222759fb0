//! When the tensor-core GEMM (`shaders/gemm_coop.wgsl`) can run: the device features it
//! needs, the subgroups it runs on, and the cooperative-matrix fragment shape it uses
//! ([`Entry::GemmCoop16`] or [`Entry::GemmCoop8`]).
//!
//! lavapipe has cooperative matrices from Mesa 25.1 (8 x 8 x 8 on subgroups of 8): there the
//! test suite runs the kernel (`scripts/lavapipe-coop.sh` sets that up on Debian 12, whose
//! own Mesa 22.3 has none and validates the kernel with naga only). On hardware `wgquant
//! verify`, whose GEMM cases take this path where the device offers it, checks it
//! (`scripts/device-bench.sh` runs it).

use super::adapter::{check_fits, AdapterProfile};
use crate::error::{Error, Result};
use crate::gpu::shaders::{coop_tile, Entry, COOP_WARPS};

/// Batches of at least this many activation rows use the tensor-core GEMM where enabled
/// (below, most of a batch tile would be padding).
pub const COOP_MIN_N: usize = 16;
/// The device features the tensor-core GEMM needs. `EXPERIMENTAL_COOPERATIVE_MATRIX` must be
/// requested with `experimental_features: unsafe { wgpu::ExperimentalFeatures::enabled() }`.
pub fn coop_matrix_features() -> wgpu::Features {
    wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX | wgpu::Features::SHADER_F16
}

/// The subgroup size the tensor-core GEMM runs with on this adapter (its `SUBGROUP`
/// override): the adapter's, where every subgroup has the same size (a power of two from 8
/// to 64); `None` where the size varies, since each subgroup's warp tile is chosen from
/// `local_invocation_index / SUBGROUP` and a pipeline's subgroup size would be unknown.
pub fn coop_subgroup_size(info: &wgpu::AdapterInfo) -> Option<u32> {
    let size = info.subgroup_min_size;
    (size == info.subgroup_max_size && size.is_power_of_two() && (8..=64).contains(&size))
        .then_some(size)
}

/// The tensor-core GEMM entry for this adapter's subgroups: 8 x 8 x 8 fragments on
/// subgroups of 8 (lavapipe offers only those), 16 x 16 x 16 on larger ones (NVIDIA offers
/// 16 x 16 x 16 on subgroups of 32, and no square smaller shape). A device does not reveal
/// its cooperative-matrix shapes, only its adapter does ([`adapter_supports_coop_gemm`]
/// checks that the adapter offers the one chosen here), so the choice follows the
/// subgroup size.
pub fn coop_entry(info: &wgpu::AdapterInfo) -> Option<Entry> {
    match coop_subgroup_size(info)? {
        8 => Some(Entry::GemmCoop8),
        _ => Some(Entry::GemmCoop16),
    }
}

/// Whether `adapter` can run the tensor-core GEMM: it offers [`coop_matrix_features`],
/// subgroups of one size ([`coop_subgroup_size`]), and the square f16 x f16 -> f32
/// configuration [`coop_entry`] picks for them.
/// [`recommended_features`](crate::gpu::recommended_features) requests the features only then.
pub fn adapter_supports_coop_gemm(adapter: &wgpu::Adapter) -> bool {
    let Some(fragment) = coop_entry(&adapter.get_info()).and_then(Entry::coop_fragment) else {
        return false;
    };
    adapter.features().contains(coop_matrix_features())
        && adapter.cooperative_matrix_properties().iter().any(|p| {
            (p.m_size, p.n_size, p.k_size) == (fragment, fragment, fragment)
                && p.ab_type == wgpu::CooperativeScalarType::F16
                && p.cr_type == wgpu::CooperativeScalarType::F32
        })
}

/// How the tensor-core GEMM runs on a device ([`check_coop_gemm`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoopGemm {
    /// [`Entry::GemmCoop16`] or [`Entry::GemmCoop8`] ([`coop_entry`]).
    pub entry: Entry,
    /// The edge of its square fragments: 16 or 8.
    pub fragment: u32,
    /// The device's subgroup size, its `SUBGROUP` override ([`coop_subgroup_size`]).
    pub subgroup_size: u32,
}

impl CoopGemm {
    /// The output tile (weight rows x activation rows), see [`coop_tile`].
    pub fn tile(&self, wide: bool) -> (usize, usize) {
        coop_tile(self.fragment, wide)
    }
}

/// How `device` runs the tensor-core GEMM ([`coop_entry`]), or why it cannot: the features,
/// the subgroup size, or workgroup memory. (A device only reveals its features, not the
/// adapter's cooperative-matrix configurations: a caller's own device with the features but
/// without the shape [`coop_entry`] picks should use a [`KernelConfig`](crate::gpu::KernelConfig)
/// without the tensor-core GEMM.)
pub fn check_coop_gemm(device: &wgpu::Device) -> Result<CoopGemm> {
    coop_gemm(&AdapterProfile::of(device))
}

/// [`check_coop_gemm`] on a profile.
pub fn coop_gemm(adapter: &AdapterProfile) -> Result<CoopGemm> {
    if !adapter.has(coop_matrix_features()) {
        return Err(Error::DeviceLimit(
            "the tensor-core GEMM needs a device with Features::EXPERIMENTAL_COOPERATIVE_MATRIX \
             and SHADER_F16"
                .into(),
        ));
    }
    let info = &adapter.info;
    let (Some(subgroup_size), Some(entry)) = (coop_subgroup_size(info), coop_entry(info)) else {
        return Err(Error::DeviceLimit(format!(
            "the tensor-core GEMM needs subgroups of one size (a power of two, 8 to 64); this \
             device's are {}..={}",
            info.subgroup_min_size, info.subgroup_max_size
        )));
    };
    check_fits(
        &adapter.limits,
        entry.entry_point(),
        entry.workgroup_memory_bytes(),
        COOP_WARPS * subgroup_size,
    )?;
    Ok(CoopGemm {
        entry,
        fragment: entry.coop_fragment().unwrap_or(16),
        subgroup_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::shaders::{coop_warp_n_frags, COOP_WARPS_M};

    #[test]
    fn warps_match_the_wgsl() {
        let src = include_str!("../../../shaders/gemm_coop.wgsl");
        for (name, value) in [
            ("WARPS", COOP_WARPS),
            ("WARPS_M", COOP_WARPS_M as u32),
            ("MAX_WARP_N_FRAGS", coop_warp_n_frags(true)),
        ] {
            let line = format!("const {name}: u32 = {value}u;");
            assert!(src.contains(&line), "expected `{line}` in gemm_coop.wgsl");
        }
        assert!(src.contains("override WARP_N_FRAGS: u32 = 2u;"));
        assert_eq!(coop_warp_n_frags(false), 2);
        assert_eq!(coop_tile(16, false), (128, 64));
        assert_eq!(coop_tile(16, true), (128, 128));
        assert_eq!(coop_tile(8, false), (64, 32));
        assert_eq!(coop_tile(8, true), (64, 64));
    }

    /// Each invocation stages a whole number of the slices' vec4s per step along k, no more
    /// than the WGSL's register arrays hold, for every subgroup size the host accepts.
    #[test]
    fn staging_fits_the_register_arrays() {
        let src = include_str!("../../../shaders/gemm_coop.wgsl");
        let (max_a, max_b) = (8, 8);
        assert!(src.contains(&format!("const MAX_A_LOADS: u32 = {max_a}u;")));
        assert!(src.contains(&format!("const MAX_B_LOADS: u32 = {max_b}u;")));
        assert!(src.contains("const TILE_K: u32 = 32u;"));
        for size in [8, 16, 32, 64] {
            for wide in [false, true] {
                let entry = coop_entry(&info(size, size)).unwrap();
                let (m, n) = coop_tile(entry.coop_fragment().unwrap(), wide);
                let threads = (COOP_WARPS * size) as usize;
                for (rows, max) in [(m, max_a), (n, max_b)] {
                    let vec4s = rows * 32 / 4;
                    let what = format!("{entry:?} on subgroups of {size}, wide {wide}");
                    assert_eq!(vec4s % threads, 0, "{what}");
                    assert!(vec4s / threads <= max, "{what}");
                }
            }
        }
    }

    fn info(min: u32, max: u32) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            subgroup_min_size: min,
            subgroup_max_size: max,
            ..wgpu::AdapterInfo::new(wgpu::DeviceType::Other, wgpu::Backend::Vulkan)
        }
    }

    #[test]
    fn entry_follows_the_subgroup_size() {
        assert_eq!(coop_entry(&info(8, 8)), Some(Entry::GemmCoop8));
        assert_eq!(coop_entry(&info(32, 32)), Some(Entry::GemmCoop16));
        assert_eq!(coop_entry(&info(64, 64)), Some(Entry::GemmCoop16));
        // Varying sizes (AMD's 32..=64), and sizes no square fragment fits.
        assert_eq!(coop_entry(&info(32, 64)), None);
        assert_eq!(coop_entry(&info(4, 4)), None);
        assert_eq!(coop_entry(&info(128, 128)), None);
    }
}
