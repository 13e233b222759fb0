//! `wgquant adapters`

use std::process::ExitCode;
use wgquant::gpu::{adapter_supports_coop_gemm, enumerate_adapters, SOFTWARE_ADAPTER_HINT};

#[derive(clap::Args)]
pub struct Args {
    /// Print every limit, not only the ones wgquant's kernels depend on.
    #[arg(long)]
    all_limits: bool,
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

pub fn run(args: Args) -> wgquant::Result<ExitCode> {
    let adapters = enumerate_adapters(None);
    if adapters.is_empty() {
        return Err(wgquant::Error::NoAdapter(SOFTWARE_ADAPTER_HINT.into()));
    }
    let wgsl = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle())
        .wgsl_language_features();
    let dot = wgsl.contains(wgpu::WgslLanguageFeatures::Packed4x8IntegerDotProduct);
    for (i, a) in adapters.iter().enumerate() {
        let info = a.get_info();
        let f = a.features();
        let l = a.limits();
        println!("[{i}] {}", info.name);
        println!("    backend:      {:?}", info.backend);
        println!("    device type:  {:?}", info.device_type);
        println!("    driver:       {} {}", info.driver, info.driver_info);
        println!(
            "    f16 (SHADER_F16):            {}",
            yes_no(f.contains(wgpu::Features::SHADER_F16))
        );
        let sub = f.contains(wgpu::Features::SUBGROUP);
        if sub {
            println!(
                "    subgroups (SUBGROUP):        yes, size {}..={}",
                info.subgroup_min_size, info.subgroup_max_size
            );
        } else {
            println!("    subgroups (SUBGROUP):        no");
        }
        println!(
            "    timestamp queries:           {} (inside passes: {})",
            yes_no(f.contains(wgpu::Features::TIMESTAMP_QUERY)),
            yes_no(f.contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES))
        );
        println!(
            "    integer dot product:         {} (WGSL dot4I8Packed; naga polyfills it where the \
             driver has no instruction)",
            yes_no(dot)
        );
        let coop = f.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
        let coop_gemm = match adapter_supports_coop_gemm(a) {
            // KernelConfig::untuned: GEMV blocks are faster there.
            true if info.device_type == wgpu::DeviceType::Cpu => {
                "yes, not the default on a CPU adapter"
            }
            true => "yes",
            false => "no",
        };
        println!(
            "    cooperative matrix:          {} (tensor-core GEMM: {coop_gemm})",
            yes_no(coop)
        );
        if coop {
            for p in a.cooperative_matrix_properties() {
                println!(
                    "      {}x{}x{} {:?} x {:?} -> {:?}",
                    p.m_size, p.n_size, p.k_size, p.ab_type, p.ab_type, p.cr_type
                );
            }
        }
        println!("    limits:");
        println!(
            "      max_storage_buffer_binding_size    {}",
            l.max_storage_buffer_binding_size
        );
        println!(
            "      max_buffer_size                    {}",
            l.max_buffer_size
        );
        println!(
            "      max_compute_workgroup_storage_size {}",
            l.max_compute_workgroup_storage_size
        );
        println!(
            "      max_compute_invocations_per_workgroup {}",
            l.max_compute_invocations_per_workgroup
        );
        println!(
            "      max_compute_workgroups_per_dimension {}",
            l.max_compute_workgroups_per_dimension
        );
        println!(
            "      min_storage_buffer_offset_alignment {}",
            l.min_storage_buffer_offset_alignment
        );
        if args.all_limits {
            println!("      all: {l:#?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn formats() -> wgquant::Result<ExitCode> {
    println!(
        "{:<16} {:>6} {:>6} {:>10}  stored in GGUF as",
        "format", "bits", "block", "k multiple"
    );
    for f in wgquant::Format::all() {
        let c = f.codec();
        let stored = match (c.ggml_type(), f) {
            (Some(t), _) => t.name().to_string(),
            (None, wgquant::Format::Int(i)) if i.asym => {
                "planes: I8 codes, F16 scales, I8 zero points".to_string()
            }
            (None, wgquant::Format::Int(_)) => "planes: I8 codes, F16 scales".to_string(),
            // Binary and 2:4 sparse: the canonical blocks as bytes (`NAME.blocks`).
            (None, _) => "I8 blocks (canonical layout)".to_string(),
        };
        println!(
            "{:<16} {:>6.3} {:>6} {:>10}  {stored}",
            f.to_string(),
            f.bits_per_weight(),
            c.block_values(),
            f.k_multiple()
        );
    }
    Ok(ExitCode::SUCCESS)
}
