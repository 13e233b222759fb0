//! `wgquant bench`

use crate::AdapterArgs;
use std::process::ExitCode;
use wgquant::bench::{BenchConfig, Statistic, Timing};
use wgquant::gpu::plan::{validate_gemv_steps, validate_gemv_unroll, GemvRows, GemvSteps};
use wgquant::Error;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    adapter: AdapterArgs,
    /// Formats to time (repeatable; `all` for every format; default: a representative set).
    /// f32 always runs as the baseline.
    #[arg(long = "format", value_name = "F")]
    formats: Vec<String>,
    /// Weight shapes as MxK: M output rows, K row length (repeatable).
    #[arg(long = "shape", value_name = "MxK", value_parser = parse_shape)]
    shapes: Vec<(usize, usize)>,
    /// Batch sizes n, activation rows (repeatable): GEMV for n <= 8, GEMM above.
    #[arg(long = "batch", value_name = "N")]
    batches: Vec<usize>,
    /// Timed runs per measurement (the median is reported; on CPU adapters the fastest)
    #[arg(long)]
    iterations: Option<usize>,
    /// Print one JSON array instead of a table.
    #[arg(long, conflicts_with = "jsonl")]
    json: bool,
    /// Print one JSON object per line as each measurement finishes (rows survive an
    /// interrupted run).
    #[arg(long)]
    jsonl: bool,
    /// GEMV weight rows per lane group, 1-8, for every batch width (default: the tuner's
    /// choice where it has run, else the device's default).
    #[arg(long, value_name = "R")]
    gemv_rows: Option<u32>,
    /// GEMV x vec4s per lane per 16-byte chunk of codes, for every batch width: 1, 2, 4 or
    /// 8; a chunk's other steps go to neighbouring lanes (default: the tuner's choice per
    /// batch width where it has run, else the device's default).
    #[arg(long, value_name = "S")]
    gemv_steps: Option<u32>,
    /// GEMV chunks per row each lane loads before computing, 1-4 (default: 8 / rows on a
    /// GPU, 1 on a CPU adapter).
    #[arg(long, value_name = "U")]
    gemv_unroll: Option<u32>,
    /// Lane groups of the GEMV for 3-8 columns on a device with subgroups: one per
    /// `subgroup`, or one per `workgroup` (reduced in workgroup memory) (default: the
    /// tuner's choice where it has run, else workgroup on a GPU, subgroup on a CPU adapter).
    #[arg(long, value_name = "G")]
    gemv_wide: Option<WideLaneGroup>,
    /// The tensor-core GEMM's wide batch tile: 128 activation rows per workgroup instead of
    /// 64 (the weights dequantized once per 128 columns, twice the accumulators).
    #[arg(long)]
    coop_wide_tile: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum WideLaneGroup {
    Subgroup,
    Workgroup,
}

pub fn parse_shape(s: &str) -> Result<(usize, usize), String> {
    let (m, k) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("'{s}' is not MxK, e.g. 4096x4096"))?;
    let m: usize = m.trim().parse().map_err(|_| format!("bad M in '{s}'"))?;
    let k: usize = k.trim().parse().map_err(|_| format!("bad K in '{s}'"))?;
    if m == 0 || k == 0 {
        return Err(format!("'{s}': M and K must be positive"));
    }
    Ok((m, k))
}

pub fn run(args: Args) -> wgquant::Result<ExitCode> {
    let ctx = args.adapter.context()?;
    let mut cfg = BenchConfig::defaults_for(&ctx);
    if !args.formats.is_empty() {
        cfg.formats = crate::parse_formats(&args.formats)?;
    }
    if !args.shapes.is_empty() {
        cfg.shapes = args.shapes;
    }
    if !args.batches.is_empty() {
        if args.batches.contains(&0) {
            return Err(Error::InvalidArgument(
                "batch sizes must be at least 1".into(),
            ));
        }
        cfg.batches = args.batches;
    }
    if let Some(it) = args.iterations {
        cfg.iterations = it.max(1);
    }
    if let Some(rows) = args.gemv_rows {
        cfg.kernels.gemv_rows = GemvRows::fixed(rows);
        cfg.kernels.gemv_rows.validate()?;
    }
    if let Some(steps) = args.gemv_steps {
        validate_gemv_steps(Some(steps))?;
        cfg.kernels.gemv_steps = GemvSteps::fixed(steps);
    }
    if let Some(unroll) = args.gemv_unroll {
        cfg.kernels.gemv_unroll = Some(unroll);
        validate_gemv_unroll(cfg.kernels.gemv_unroll)?;
    }
    if let Some(g) = args.gemv_wide {
        cfg.kernels.gemv_wide_workgroup = matches!(g, WideLaneGroup::Workgroup);
    }
    if args.coop_wide_tile {
        cfg.kernels.coop_wide_tile = true;
    }
    eprintln!("benchmarking on {}", ctx.describe());
    eprintln!("{}", cfg.kernels.gemv_summary());
    let bar = crate::progress_bar(0, "bench");
    let rows = wgquant::bench::run(&ctx, &cfg, |done, total, row| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(format!(
            "{} {} {}x{} n={}",
            row.kernel_name(),
            row.format_name(),
            row.m,
            row.k,
            row.n
        ));
        if args.jsonl {
            bar.suspend(|| {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                // A closed stdout ends the run at the next row, not with a panic.
                let _ = writeln!(out, "{}", row.to_json()).and_then(|_| out.flush());
            });
        }
    })?;
    bar.finish_and_clear();
    if args.jsonl {
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        let arr: Vec<_> = rows.iter().map(|r| r.to_json()).collect();
        println!("{}", serde_json::to_string_pretty(&arr).expect("json"));
        return Ok(ExitCode::SUCCESS);
    }
    let wall = rows
        .iter()
        .filter(|r| r.timing == Timing::WallClock)
        .count();
    let timing = if wall == 0 {
        "GPU timestamp queries"
    } else if wall == rows.len()
        && !ctx
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    {
        "wall clock (the adapter has no timestamp queries)"
    } else {
        "GPU timestamp queries (rows marked w: wall clock, where the timestamps disagreed with it)"
    };
    println!(
        "adapter: {}    timing: {timing}, {} of {} runs",
        ctx.describe(),
        Statistic::for_adapter(ctx.is_cpu()).name(),
        cfg.iterations
    );
    println!(
        "{:<8} {:<16} {:>6} {:>6} {:>5} {:>11} {:>9} {:>10} {:>8} {:>7}",
        "kernel", "format", "m", "k", "n", "time (us)", "GB/s", "GFLOP/s", "vs f32", "copies"
    );
    for r in &rows {
        let mark = if wall > 0 && r.timing == Timing::WallClock {
            " w"
        } else {
            ""
        };
        println!(
            "{:<8} {:<16} {:>6} {:>6} {:>5} {:>11.1} {:>9.1} {:>10.1} {:>7.2}x {:>7}{mark}",
            r.kernel_name(),
            r.format_name(),
            r.m,
            r.k,
            r.n,
            r.seconds * 1e6,
            r.gbps,
            r.gflops,
            r.ratio_to_f32,
            r.copies
        );
    }
    println!("\"vs f32\" is this kernel's time over the f32 kernel's time for the same shape and batch (lower is faster).");
    if rows.iter().any(|r| r.act == wgquant::gpu::ActType::F16) {
        println!("gemv_f16 / gemm_f16: f16 activations and outputs, f32 accumulation (the device has SHADER_F16).");
    }
    Ok(ExitCode::SUCCESS)
}
