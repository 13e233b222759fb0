//! `wgquant plan`: which kernels a matmul runs on an adapter, and why.

use std::process::ExitCode;
use wgquant::gpu::plan::{plan_matmul, weight_gets_textures, AdapterProfile, KernelConfig};
use wgquant::gpu::{DeviceOptions, GpuContext};

#[derive(clap::Args)]
pub struct Args {
    /// Weight formats (repeatable; `all` for every format).
    #[arg(
        long = "format",
        short = 'f',
        value_name = "FORMAT",
        default_value = "q4_0"
    )]
    formats: Vec<String>,
    /// Weight shape MxK: M output rows, K row length.
    #[arg(long, value_name = "MxK", default_value = "4096x4096", value_parser = crate::bench::parse_shape)]
    shape: (usize, usize),
    /// Batch sizes (activation rows), comma-separated.
    #[arg(
        long,
        value_name = "N[,N...]",
        default_value = "1",
        value_delimiter = ','
    )]
    batch: Vec<usize>,
    /// An adapter on this machine (name substring, as for every command), or one of the
    /// presets: lavapipe-mesa22, lavapipe-mesa26, lavapipe-gl, h100, amd-rdna, gpu-baseline
    /// (the plan for hardware this machine does not have; no tuning cache applies).
    #[arg(long, value_name = "NAME")]
    adapter: Option<String>,
}

pub fn run(args: Args) -> wgquant::Result<ExitCode> {
    let preset = args
        .adapter
        .as_deref()
        .filter(|n| AdapterProfile::PRESETS.iter().any(|(p, _)| p == n));
    let (profile, config, what) = match preset {
        Some(name) => {
            let profile = AdapterProfile::preset(name)?;
            let config = KernelConfig::untuned_for(&profile);
            let about = AdapterProfile::PRESETS
                .iter()
                .find(|p| p.0 == name)
                .map_or("", |p| p.1);
            (profile, config, format!("preset {name}: {about}"))
        }
        None => {
            let opts = DeviceOptions::from_env().with_adapter(args.adapter.as_deref());
            let ctx = GpuContext::new(&opts).map_err(|e| match &args.adapter {
                // Name the presets too where a name matched no adapter here.
                Some(_) => {
                    let presets: Vec<&str> = AdapterProfile::PRESETS.iter().map(|p| p.0).collect();
                    wgquant::Error::InvalidArgument(format!("{e}; presets: {}", presets.join(", ")))
                }
                None => e,
            })?;
            let config = KernelConfig::for_device(&ctx.device);
            let tuned = if config == KernelConfig::untuned(&ctx.device) {
                "untuned defaults"
            } else {
                "with the tuner's cache (wgquant tune)"
            };
            let what = format!(
                "{} ({} {}), {tuned}",
                ctx.describe(),
                ctx.info.driver,
                ctx.info.driver_info
            );
            (AdapterProfile::of(&ctx.device), config, what)
        }
    };
    let formats = crate::parse_formats(&args.formats)?;
    let (m, k) = args.shape;
    if m == 0 || k == 0 {
        return Err(wgquant::Error::Shape("the shape needs M, K >= 1".into()));
    }
    if let Some(0) = args.batch.iter().copied().find(|&n| n == 0) {
        return Err(wgquant::Error::Shape(
            "batch sizes must be at least 1".into(),
        ));
    }
    println!("adapter: {what}");
    println!("configuration: {}", config.gemv_summary());
    println!("(the plan is the same for f32 and f16 activations)");
    for format in formats {
        format.check_k(k)?;
        let textures = weight_gets_textures(&profile, format, (m, k));
        for &n in &args.batch {
            println!();
            let plan = plan_matmul(&profile, &config, format, (m, k), n, textures)?;
            print!("{plan}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
