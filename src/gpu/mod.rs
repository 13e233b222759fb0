//! GPU side: device acquisition, weights on the GPU, and the kernels.
//!
//! ```no_run
//! use wgquant::{Format, QuantizedTensor};
//! use wgquant::gpu::{GpuContext, GpuWeight, Kernels};
//! # fn main() -> wgquant::Result<()> {
//! let ctx = GpuContext::from_env()?; // or GpuContext::from_device(device, queue)
//! let (rows, k, n) = (256, 512, 1);
//! let w = QuantizedTensor::quantize(Format::Q4_0, &vec![0.5; rows * k], rows, k)?;
//! let weight = GpuWeight::upload(&ctx, &w)?;
//! let kernels = Kernels::new(&ctx.device, Format::Q4_0)?;
//! let y = kernels.run_matmul(&ctx, &weight, &vec![1.0; n * k], n)?;
//! assert_eq!(y.len(), n * rows);
//! # Ok(()) }
//! ```

mod device;
mod fake_quant;
mod int8;
mod kernels;
pub mod layout;
pub mod plan;
pub mod shaders;
mod tensor;
pub mod tune;
mod waiting;

#[cfg(not(target_arch = "wasm32"))]
pub use device::{choose_adapter, enumerate_adapters};
pub use device::{
    recommended_features, DeviceOptions, GpuContext, ENV_ADAPTER, ENV_BACKEND, ENV_DISABLE,
    SOFTWARE_ADAPTER_HINT,
};
pub use fake_quant::{
    params_from_f32, params_to_f32, FakeQuant, FakeQuantDispatch, ParamsMode, FAKE_QUANT_ENTRIES,
    FAKE_QUANT_WGSL,
};
pub use int8::{check_int8_kernels_fit, ActQuant, Int8Dispatch, Int8Kernels};
pub use kernels::{check_kernel_fits, Dispatch, Kernels, Operand};
pub(crate) use kernels::{grid_1d, shader_module};
pub use layout::{plane_row_bytes, CHUNK_ROW_MULTIPLE};
pub use plan::{
    adapter_supports_coop_gemm, check_coop_gemm, coop_entry, coop_matrix_features,
    coop_subgroup_size, kernel_for_batch, AdapterProfile, CoopGemm, GemvRows, KernelConfig,
    MatmulPlan, COOP_MIN_N, GEMV_MAX_N,
};
pub use shaders::{coop_tile, coop_warp_n_frags, ActType, KernelKind, COOP_WARPS, GEMM_TILE};
pub use tensor::{ChunkTextures, GpuWeight, WeightChunk};
pub(crate) use waiting::{block_on, pop_scope};
