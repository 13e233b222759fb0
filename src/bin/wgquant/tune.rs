//! `wgquant tune`

use crate::AdapterArgs;
use std::process::ExitCode;
use wgquant::bench::{Statistic, Timing};
use wgquant::gpu::plan::GemvRows;
use wgquant::gpu::tune::{self, TuneOptions};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    adapter: AdapterArgs,
    /// Q4_0 weight shape to time, MxK (default: 4096x4096).
    #[arg(long, value_name = "MxK", value_parser = crate::bench::parse_shape)]
    shape: Option<(usize, usize)>,
}

pub fn run(args: Args) -> wgquant::Result<ExitCode> {
    let ctx = args.adapter.context()?;
    let mut opts = TuneOptions::defaults_for(&ctx);
    if let Some(shape) = args.shape {
        opts.shape = shape;
    }
    let copies = if opts.bytes_in_flight > 0 {
        format!(
            " (copies rotated through {} MiB)",
            opts.bytes_in_flight >> 20
        )
    } else {
        String::new()
    };
    eprintln!(
        "tuning GEMV rows and steps per lane on {} with a q4_0 {}x{} weight{copies}",
        ctx.describe(),
        opts.shape.0,
        opts.shape.1
    );
    let tuning = tune::tune(&ctx, &opts, |m| {
        eprintln!(
            "  {} rows={} steps={} n={}: {:.1} us",
            m.entry.entry_point(),
            m.rows,
            m.steps,
            m.n,
            m.seconds * 1e6
        );
    })?;
    let timing = match tuning.timing {
        Timing::Timestamps => "GPU timestamp queries",
        Timing::WallClock => "wall clock (the adapter has no timestamp queries)",
    };
    println!(
        "entry: {} (3-8 columns: {})    timing: {timing}, {} of {} runs over {} {}",
        tuning.entry.entry_point(),
        tuning.wide_entry.entry_point(),
        Statistic::for_adapter(ctx.is_cpu()).name(),
        opts.runs,
        tuning.copies,
        if tuning.copies == 1 {
            "copy of the weight"
        } else {
            "copies of the weight"
        }
    );
    println!(
        "{:<14} {:>5} {:>6} {:>3} {:>11} {:>7}",
        "entry", "rows", "steps", "n", "time (us)", "chosen"
    );
    for m in &tuning.measurements {
        let entry = if GemvRows::is_wide(m.n) {
            tuning.wide_entry
        } else {
            tuning.entry
        };
        let chosen = m.entry == entry
            && tuning.rows.for_cols(m.n) == Some(m.rows)
            && tuning
                .steps
                .is_none_or(|s| s.for_cols(m.n) == Some(m.steps));
        println!(
            "{:<14} {:>5} {:>6} {:>3} {:>11.1} {:>7}",
            m.entry.entry_point(),
            m.rows,
            m.steps,
            m.n,
            m.seconds * 1e6,
            if chosen { "*" } else { "" }
        );
    }
    let path = tune::store(&ctx.info, &tuning)?;
    println!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}
