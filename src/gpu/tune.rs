//! A small GEMV autotuner: times each candidate `ROWS` (weight rows per lane group) of the
//! GEMV entry the device uses, for one and for eight activation columns, and keeps the
//! fastest per bucket ([`GemvRows::narrow`] for 1-2 columns, [`GemvRows::wide`] for 3-8);
//! for eight columns on a device with subgroups it times both lane-group shapes (a subgroup,
//! or the whole workgroup: [`KernelConfig::gemv_wide_workgroup`]) with each one's rows.
//! Then, at those choices, each candidate number of x steps per lane per chunk of codes
//! ([`KernelConfig::gemv_steps`]) of the buffer GEMVs, keeping the fastest per bucket.
//! The choice is written to the cache per adapter, driver and wgquant version (`tuning.json`
//! in [`cache_dir`], [`store`]); the plan reads it ([`crate::gpu::plan::cache`]:
//! [`KernelConfig::for_device`] applies it, and uses the fixed defaults when the tuner has
//! not run). This module measures and writes; it is not read by the plan.

use super::device::GpuContext;
use super::kernels::Kernels;
pub use super::plan::cache::{
    adapter_key, cache_dir, cache_path, load, load_from, store, store_to, Measurement, Tuning,
    CACHE_FILE, ENV_CACHE_DIR,
};
use super::plan::{gemv_min_lanes, gemv_split, GemvRows, GemvSteps, KernelConfig};
use super::shaders::{Entry, GEMV_MAX_STEPS};
use crate::bench::{upload_copies, Timer, GPU_BYTES_IN_FLIGHT};
use crate::error::{Error, Result};
use crate::format::{Format, QuantizedTensor};
use crate::rng::Rng;

/// Batch widths timed: one stands for [`GemvRows::narrow`], the other for [`GemvRows::wide`].
pub const TUNE_BATCHES: [usize; 2] = [1, 8];

/// What to time.
#[derive(Clone, Copy, Debug)]
pub struct TuneOptions {
    /// Weight shape (m output rows, k row length), q4_0.
    pub shape: (usize, usize),
    /// Untimed runs per candidate (the first compiles the pipeline).
    pub warmup: usize,
    /// Timed runs per candidate; the median counts (the fastest on CPU adapters:
    /// [`crate::bench::Statistic`]).
    pub runs: usize,
    /// Bytes of weights kept in flight by rotating copies of the weight (0: one copy), as
    /// in `bench`: a weight that stays in the last-level cache favours other choices than
    /// decode from memory does.
    pub bytes_in_flight: u64,
    /// The configuration whose GEMV is tuned: [`KernelConfig::untuned`] for the device
    /// (only a tuning of that is applied by [`KernelConfig::for_device`]).
    pub base: KernelConfig,
}

impl TuneOptions {
    /// 4096 x 4096 with the device's untuned configuration: rotated through
    /// [`GPU_BYTES_IN_FLIGHT`] on a hardware GPU; one copy and fewer runs on a CPU adapter.
    /// Fewer rows mislead on a CPU adapter: at 1024 x 4096 lavapipe chose 4 rows per
    /// invocation for one column (more row groups to spread over the cores), which ran
    /// 7-21% slower at 4096 x 4096 than the default 8, the choice there.
    pub fn defaults_for(ctx: &GpuContext) -> Self {
        let base = KernelConfig::untuned(&ctx.device);
        if ctx.is_cpu() {
            TuneOptions {
                shape: (4096, 4096),
                warmup: 1,
                runs: 3,
                bytes_in_flight: 0,
                base,
            }
        } else {
            TuneOptions {
                shape: (4096, 4096),
                warmup: 3,
                runs: 15,
                bytes_in_flight: GPU_BYTES_IN_FLIGHT,
                base,
            }
        }
    }
}

/// The candidates the tuner tries for `entry`: [`GemvRows::CANDIDATES`] up to its maximum.
pub fn candidates(entry: Entry) -> Vec<u32> {
    GemvRows::CANDIDATES
        .into_iter()
        .filter(|&r| r <= entry.max_gemv_rows())
        .collect()
}

/// The GEMV entries the tuner times for 3-8 columns under `base`: the subgroup GEMV and the
/// workgroup-memory one where `base` has subgroups (and no texture GEMV), else `base`'s own.
pub fn wide_entries(base: &KernelConfig) -> Vec<Entry> {
    let entry = base.gemv_entry(1);
    if entry == Entry::GemvSubgroup {
        vec![Entry::GemvSubgroup, Entry::Gemv]
    } else {
        vec![entry]
    }
}

/// The steps-per-lane candidates the tuner tries for `entries` on `ctx`'s device: 8, 4, 2,
/// 1 (a whole chunk of 4-bit codes per lane down to one x vec4 per lane), less those that
/// give Q4_0 the same lanes per chunk as a larger one in every entry on this device
/// ([`gemv_split`]); only 8 for the texture GEMV.
pub fn step_candidates(ctx: &GpuContext, entries: &[Entry]) -> Vec<u32> {
    let mut v: Vec<u32> = Vec::new();
    let mut splits = Vec::new();
    for steps in [GEMV_MAX_STEPS, 4, 2, 1] {
        let split: Vec<u32> = entries
            .iter()
            .map(|&e| {
                let min_lanes = gemv_min_lanes(e, &ctx.info);
                gemv_split(e, Format::Q4_0, Some(steps), min_lanes)
            })
            .collect();
        if !splits.contains(&split) {
            splits.push(split);
            v.push(steps);
        }
    }
    v
}

/// Time every candidate for the GEMV entries of `opts.base` (the rest of the configuration
/// as it is there), calling `progress` after each; pick the fastest per bucket.
pub fn tune(
    ctx: &GpuContext,
    opts: &TuneOptions,
    mut progress: impl FnMut(&Measurement),
) -> Result<Tuning> {
    let (m, k) = opts.shape;
    if m == 0 || k == 0 {
        return Err(Error::Shape("the tuning shape needs m, k >= 1".into()));
    }
    let format = Format::Q4_0;
    format.check_k(k)?;
    let base = opts.base;
    let entry = base.gemv_entry(1);
    let q = QuantizedTensor::quantize(format, &Rng::new(17).normal_vec(m * k), m, k)?;
    let weights = upload_copies(ctx, &q, opts.bytes_in_flight)?;
    let copies = weights.len();
    drop(q);
    let [narrow_n, wide_n] = TUNE_BATCHES;
    let x = ctx.storage_buffer("wgquant tune x", &Rng::new(5).normal_vec(wide_n * k));
    let y = ctx.output_buffer("wgquant tune y", wide_n * m);
    let runs = opts.runs.max(1);
    let timer = Timer::new(ctx, runs as u32);
    let mut measurements = Vec::new();
    let mut time = |config: KernelConfig, n: usize| -> Result<f64> {
        let kernels = Kernels::with_config(&ctx.device, format, config)?;
        let ops = weights
            .iter()
            .map(|w| kernels.matmul(w, &x, &y, n))
            .collect::<Result<Vec<_>>>()?;
        let seconds = timer.time_per_run(&ops, opts.warmup, runs)?;
        let entry = config.gemv_entry(n);
        let meas = Measurement {
            entry,
            rows: config.gemv_rows.rows(entry, n),
            steps: config.gemv_steps.for_cols(n).unwrap_or(GEMV_MAX_STEPS),
            n,
            seconds,
        };
        progress(&meas);
        measurements.push(meas);
        Ok(seconds)
    };
    // Rows first (and the wide bucket's lane group), at the default steps per lane.
    let base_steps =
        [narrow_n, wide_n].map(|n| base.gemv_steps.for_cols(n).unwrap_or(GEMV_MAX_STEPS));
    let with = |rows: u32, wide_entry: Entry| KernelConfig {
        gemv_rows: GemvRows::fixed(rows),
        gemv_wide_workgroup: wide_entry == Entry::Gemv,
        ..base
    };
    let mut narrow = (0u32, f64::INFINITY);
    for rows in candidates(entry) {
        let t = time(with(rows, entry), narrow_n)?;
        if t < narrow.1 {
            narrow = (rows, t);
        }
    }
    let wide_candidates = wide_entries(&base);
    let mut wide = (0u32, entry, f64::INFINITY);
    for &e in &wide_candidates {
        for rows in candidates(e) {
            let t = time(with(rows, e), wide_n)?;
            if t < wide.2 {
                wide = (rows, e, t);
            }
        }
    }
    let best = [narrow.1, wide.2];
    let rows = GemvRows {
        narrow: Some(narrow.0),
        wide: Some(wide.0),
    };
    let wide_entry = wide.1;
    let chosen = KernelConfig {
        gemv_rows: rows,
        gemv_wide_workgroup: wide_entry == Entry::Gemv,
        ..base
    };
    // Then steps per lane with those choices: the fastest per bucket.
    let candidates = step_candidates(ctx, &[entry, wide_entry]);
    let mut steps = None;
    if candidates.len() > 1 {
        let mut fastest = [(0, f64::INFINITY); 2];
        for &s in &candidates {
            let config = KernelConfig {
                gemv_steps: GemvSteps::fixed(s),
                ..chosen
            };
            for (b, n) in TUNE_BATCHES.into_iter().enumerate() {
                // The rows were timed at the base's steps already.
                let t = if s == base_steps[b] {
                    best[b]
                } else {
                    time(config, n)?
                };
                if t < fastest[b].1 {
                    fastest[b] = (s, t);
                }
            }
        }
        steps = Some(GemvSteps {
            narrow: Some(fastest[0].0),
            wide: Some(fastest[1].0),
        });
    }
    Ok(Tuning {
        entry,
        wide_entry,
        rows,
        steps,
        shape: opts.shape,
        copies,
        timing: timer.timing(),
        measurements,
    })
}
