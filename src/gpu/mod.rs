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

mod coop;
mod device;
mod fake_quant;
mod int8;
mod kernels;
pub mod shaders;
mod tensor;
pub mod tune;

pub use coop::{
    adapter_supports_coop_gemm, check_coop_gemm, coop_entry, coop_matrix_features,
    coop_subgroup_size, coop_tile, coop_warp_n_frags, CoopGemm, COOP_MIN_N, COOP_WARPS,
};
pub use device::{
    choose_adapter, enumerate_adapters, recommended_features, DeviceOptions, GpuContext,
    ENV_ADAPTER, ENV_BACKEND, ENV_DISABLE, SOFTWARE_ADAPTER_HINT,
};
pub use fake_quant::{
    params_from_f32, params_to_f32, FakeQuant, FakeQuantDispatch, ParamsMode, FAKE_QUANT_ENTRIES,
    FAKE_QUANT_WGSL,
};
pub use int8::{check_int8_kernels_fit, ActQuant, Int8Dispatch, Int8Kernels};
pub(crate) use kernels::{check_fits, grid_1d};
pub use kernels::{
    check_kernel_fits, kernel_for_batch, Dispatch, Kernels, Operand, GEMM_TILE, GEMV_MAX_N,
};
pub use shaders::{ActType, GemvRows, KernelConfig, KernelKind};
pub use tensor::{plane_row_bytes, ChunkTextures, GpuWeight, WeightChunk, CHUNK_ROW_MULTIPLE};
