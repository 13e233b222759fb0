//! Shader composition: a kernel module is `common.wgsl`, then the format's WGSL file, then
//! the kernel family's file, concatenated in that order. Variants differ only by pipeline
//! override constants, which come from the format's codec.

use crate::format::Format;

const COMMON: &str = include_str!("../../shaders/common.wgsl");

/// A kernel family: one WGSL file, one entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelKind {
    /// Matrix-vector product for batches of 1..=8 activation rows.
    Gemv,
    /// Tiled matrix-matrix product for larger batches.
    Gemm,
    /// Weights to f32.
    Dequantize,
}

impl KernelKind {
    pub const ALL: [KernelKind; 3] = [KernelKind::Gemv, KernelKind::Gemm, KernelKind::Dequantize];

    /// The entry point's name.
    pub fn entry_point(self) -> &'static str {
        match self {
            KernelKind::Gemv => "gemv",
            KernelKind::Gemm => "gemm",
            KernelKind::Dequantize => "dequantize",
        }
    }

    fn source(self) -> &'static str {
        match self {
            KernelKind::Gemv => include_str!("../../shaders/gemv.wgsl"),
            KernelKind::Gemm => include_str!("../../shaders/gemm.wgsl"),
            KernelKind::Dequantize => include_str!("../../shaders/dequantize.wgsl"),
        }
    }

    /// Workgroup memory the kernel declares, in bytes (kept in step with its WGSL).
    pub fn workgroup_memory_bytes(self) -> u32 {
        match self {
            KernelKind::Gemv => 64 * 8 * 4,
            KernelKind::Gemm => 2 * 32 * 64 * 4,
            KernelKind::Dequantize => 0,
        }
    }

    /// Invocations per workgroup (kept in step with its WGSL).
    pub fn invocations(self) -> u32 {
        match self {
            KernelKind::Gemv | KernelKind::Dequantize => 64,
            KernelKind::Gemm => 256,
        }
    }
}

/// The WGSL source of `kernel` for `format`.
pub fn compose(format: Format, kernel: KernelKind) -> String {
    let mut s = String::with_capacity(8192);
    s.push_str(COMMON);
    s.push_str("\n// ---- format: ");
    s.push_str(&format.to_string());
    s.push_str(" ----\n");
    s.push_str(format.codec().wgsl());
    s.push_str("\n// ---- kernel ----\n");
    s.push_str(kernel.source());
    s
}

/// The pipeline override constants for `format`: layout constants every format sets, plus
/// the format's own.
pub fn constants(format: Format) -> Vec<(&'static str, f64)> {
    let c = format.codec();
    let mut v = vec![
        ("WORD_VALUES", c.word_values() as f64),
        ("BLOCK_VALUES", c.block_values() as f64),
        ("PARAM_HALVES", c.param_halves() as f64),
    ];
    v.extend(c.wgsl_constants());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant parses, validates, specialises and compiles to SPIR-V with naga.
    #[test]
    fn every_variant_validates_with_naga() {
        for format in Format::all() {
            for kernel in KernelKind::ALL {
                let src = compose(format, kernel);
                let module = naga::front::wgsl::parse_str(&src)
                    .unwrap_or_else(|e| panic!("{format} {kernel:?}: {}", e.emit_to_string(&src)));
                let mut validator = naga::valid::Validator::new(
                    naga::valid::ValidationFlags::all(),
                    naga::valid::Capabilities::all(),
                );
                let info = validator
                    .validate(&module)
                    .unwrap_or_else(|e| panic!("{format} {kernel:?}: {}", e.emit_to_string(&src)));
                let consts: naga::back::PipelineConstants = constants(format)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                let (module, info) =
                    naga::back::pipeline_constants::process_overrides(&module, &info, None, &consts)
                        .unwrap_or_else(|e| panic!("{format} {kernel:?}: {e}"));
                let opts = naga::back::spv::Options::default();
                let pipeline = naga::back::spv::PipelineOptions {
                    shader_stage: naga::ShaderStage::Compute,
                    entry_point: kernel.entry_point().to_string(),
                };
                naga::back::spv::write_vec(&module, &info, &opts, Some(&pipeline))
                    .unwrap_or_else(|e| panic!("{format} {kernel:?}: {e}"));
            }
        }
    }

    #[test]
    fn workgroup_memory_matches_the_wgsl() {
        for kernel in KernelKind::ALL {
            let src = compose(Format::Q4_0, kernel);
            let module = naga::front::wgsl::parse_str(&src).unwrap();
            let bytes: u32 = module
                .global_variables
                .iter()
                .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
                .map(|(_, g)| module.types[g.ty].inner.size(module.to_ctx()))
                .sum();
            assert_eq!(bytes, kernel.workgroup_memory_bytes(), "{kernel:?}");
        }
    }
}
