//! Kernel benchmarks: kernel time from timestamp queries (wall clock where the adapter has
//! none; the median run on GPUs, the fastest on CPU adapters: [`Statistic`]), bytes that
//! must move, FLOP rate, and the ratio to the f32 kernel of the same shape and batch
//! measured in the same run. Weights rotate through enough copies that the last-level cache
//! cannot hold them.

use crate::error::{Error, Result};
use crate::format::{Format, QuantizedTensor};
use crate::gpu::{
    block_on, kernel_for_batch, ActQuant, ActType, Dispatch, GpuContext, GpuWeight, Int8Dispatch,
    Int8Kernels, KernelConfig, KernelKind, Kernels,
};
use crate::quantize::activation::supports_int8_activations;
use crate::rng::Rng;
// std's clock panics in a browser; web-time's is the page's performance.now().
#[cfg(not(target_arch = "wasm32"))]
use std::time::Instant;
#[cfg(target_arch = "wasm32")]
use web_time::Instant;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    pub formats: Vec<Format>,
    /// (m output rows, k row length).
    pub shapes: Vec<(usize, usize)>,
    /// Activation rows.
    pub batches: Vec<usize>,
    /// Untimed runs before measuring (the first includes pipeline compilation on lavapipe).
    pub warmup: usize,
    /// Timed runs; the median is reported (the fastest on CPU adapters: [`Statistic`]).
    pub iterations: usize,
    /// Bytes of weights kept in flight by rotating copies (0: one copy).
    pub bytes_in_flight: u64,
    /// Also time the int8-activation kernels (dynamic per-token; rows `gemv_a8`,
    /// format `<format>+a8`) for the formats that have them.
    pub int8_activations: bool,
    /// Also time f16 activations and outputs (`Kernels::matmul_f16`; rows `gemv_f16` and
    /// `gemm_f16`) where the device has `Features::SHADER_F16`.
    pub f16_activations: bool,
    /// The kernel variants timed ([`KernelConfig::for_device`] by default: what
    /// `Kernels::new` picks, tuned where the tuner's cache has an entry).
    pub kernels: KernelConfig,
}

impl BenchConfig {
    /// Defaults for the adapter: rotating weight copies that far exceed any last-level cache
    /// (a GPU's L2, a CPU's L3), and on a hardware GPU the shapes, on a CPU adapter
    /// one that finishes in under a minute.
    pub fn defaults_for(ctx: &GpuContext) -> Self {
        if ctx.is_cpu() {
            BenchConfig {
                formats: Format::defaults(),
                shapes: vec![(4096, 4096)],
                batches: vec![1, 8, 32],
                warmup: 1,
                iterations: 7,
                bytes_in_flight: CPU_BYTES_IN_FLIGHT,
                int8_activations: true,
                f16_activations: true,
                kernels: KernelConfig::for_device(&ctx.device),
            }
        } else {
            BenchConfig {
                formats: Format::defaults(),
                shapes: vec![(4096, 14336), (16384, 8192)],
                batches: vec![1, 8, 512],
                warmup: 3,
                iterations: 30,
                bytes_in_flight: GPU_BYTES_IN_FLIGHT,
                int8_activations: true,
                f16_activations: true,
                kernels: KernelConfig::for_device(&ctx.device),
            }
        }
    }
}

/// How a time was measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// GPU timestamp queries around the compute pass.
    Timestamps,
    /// Submit-and-wait wall clock (the adapter has no timestamp queries).
    WallClock,
}

/// Which of a measurement's timed runs is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Statistic {
    /// The median run (hardware GPUs, whose runs agree with each other).
    Median,
    /// The fastest run (CPU adapters). lavapipe splits a dispatch into one share per worker
    /// thread, and on a 2-core machine both shares often ran on one core: such runs took
    /// exactly the single-thread time (f32 GEMV 4096x4096: 9.0 ms against 4.5; q4_0 5.3
    /// against 2.7), in runs of a batch at random, so the median of one measurement landed on
    /// either and ratios to f32 moved 2x between identical runs. The fastest run is the
    /// kernel's time with all the cores, stable to a few percent.
    Fastest,
}

impl Statistic {
    /// The statistic a timer reports on a CPU adapter (`cpu`) or a hardware GPU.
    pub fn for_adapter(cpu: bool) -> Self {
        if cpu {
            Statistic::Fastest
        } else {
            Statistic::Median
        }
    }

    /// "median" or "fastest".
    pub fn name(self) -> &'static str {
        match self {
            Statistic::Median => "median",
            Statistic::Fastest => "fastest",
        }
    }

    /// This statistic of `times` (not empty).
    pub fn of(self, times: &[f64]) -> f64 {
        match self {
            Statistic::Median => median(times),
            Statistic::Fastest => times.iter().copied().fold(f64::INFINITY, f64::min),
        }
    }
}

/// One measured row.
#[derive(Clone, Debug)]
pub struct BenchRow {
    pub kernel: KernelKind,
    /// The kernel's name (`gemm_coop` for the tensor-core GEMM, else the family's).
    pub name: &'static str,
    pub format: Format,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// Seconds per run: the [`Statistic`] of the timed runs.
    pub seconds: f64,
    /// Bytes that must move: the weight's GPU planes, x and y.
    pub bytes: u64,
    pub gbps: f64,
    pub gflops: f64,
    /// This row's time over the f32 kernel's time for the same shape and batch.
    pub ratio_to_f32: f64,
    /// Weight copies rotated through.
    pub copies: usize,
    pub timing: Timing,
    pub statistic: Statistic,
    pub adapter: String,
    /// Int8 activations (the `act_quant` + `gemv_a8` kernels) instead of f32 ones.
    pub int8_activations: bool,
    /// The element type of x and y (f32 for the int8-activation rows, whose y is f32).
    pub act: ActType,
}

impl BenchRow {
    /// The kernel's name: its family's entry point (or `gemm_coop`), `gemv_a8` for int8
    /// activations, or `gemv_f16` / `gemm_f16` / `gemm_coop_f16` for f16 activations.
    pub fn kernel_name(&self) -> &'static str {
        match (self.int8_activations, self.act, self.kernel) {
            (true, _, _) => "gemv_a8",
            (false, ActType::F16, KernelKind::Gemv) => "gemv_f16",
            (false, ActType::F16, _) if self.name == "gemm_coop" => "gemm_coop_f16",
            (false, ActType::F16, _) => "gemm_f16",
            (false, ActType::F32, _) => self.name,
        }
    }

    /// The format's name, with `+a8` for int8 activations.
    pub fn format_name(&self) -> String {
        if self.int8_activations {
            format!("{}+a8", self.format)
        } else {
            self.format.to_string()
        }
    }

    /// The row as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kernel": self.kernel_name(),
            "format": self.format_name(),
            "m": self.m,
            "k": self.k,
            "n": self.n,
            "seconds": self.seconds,
            "bytes": self.bytes,
            "gbps": self.gbps,
            "gflops": self.gflops,
            "ratio_to_f32": self.ratio_to_f32,
            "copies": self.copies,
            "timing": match self.timing { Timing::Timestamps => "timestamp", Timing::WallClock => "wall" },
            "statistic": self.statistic.name(),
            "adapter": self.adapter,
        })
    }
}

/// A prepared dispatch the [`Timer`] can encode.
pub trait Timed {
    /// Encode into a new compute pass writing `timestamp_writes`.
    fn encode_timed(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        timestamp_writes: Option<wgpu::ComputePassTimestampWrites<'_>>,
    );
}

impl<T: Timed + ?Sized> Timed for &T {
    fn encode_timed(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        timestamp_writes: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) {
        (**self).encode_timed(encoder, timestamp_writes);
    }
}

impl Timed for Dispatch {
    fn encode_timed(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        timestamp_writes: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) {
        self.encode_with_timestamps(encoder, timestamp_writes);
    }
}

impl Timed for Int8Dispatch {
    fn encode_timed(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        timestamp_writes: Option<wgpu::ComputePassTimestampWrites<'_>>,
    ) {
        (**self).encode_timed(encoder, timestamp_writes);
    }
}

/// Times prepared dispatches on one device: with GPU timestamp queries where the device has
/// them, each timed batch also checked against the wall clock around it (see
/// [`Timer::seconds`]); with the wall clock otherwise.
pub struct Timer<'a> {
    ctx: &'a GpuContext,
    timestamps: Option<(wgpu::QuerySet, wgpu::Buffer, u32)>,
    /// Whether timestamps are cross-checked against the wall clock (CPU adapters).
    cross_check: bool,
    /// How the last measurement was timed.
    last: std::cell::Cell<Timing>,
    /// When the last measurement ended (the GPU idles after it).
    last_end: std::cell::Cell<Option<Instant>>,
    /// Wall-clock seconds of a timed batch's fixed cost (see [`Timer::batch_overhead`]),
    /// measured once, where timestamps are cross-checked.
    overhead: std::cell::OnceCell<f64>,
}

/// Least seconds of back-to-back work before each measurement on a hardware GPU. GPUs lower
/// their clocks when idle, and they idle for seconds while the CPU quantizes and uploads the
/// next weights; three warm-up runs of a 50-microsecond GEMV would time the ramp, not the
/// kernel. 0.2 s was not always enough: on an H200 the first rows after the slowest
/// quantizations (Q4_K, Q6_K, Q4_1 at 16384x8192) ran 5-8x slower than the same kernels a
/// moment later, about the ratio of idle to boost clocks. So the warm-up goes on until the
/// runs stop getting faster ([`warmed_up`]), up to WARMUP_MAX_SECONDS.
const WARMUP_SECONDS: f64 = 0.2;
/// Least seconds of warm-up for a measurement that follows more than IDLE_SECONDS without
/// one. Settling was not enough either: on an H100 the first of three identical Q4_K
/// measurements after the CPU quantized for seconds ran 3.4x (4096x14336) and 4.9x
/// (16384x8192) slower than the two after it, while the warm-up's runs had stopped getting
/// faster: the clocks come up in a step, after a few tenths of a second of load.
const WARMUP_AFTER_IDLE_SECONDS: f64 = 1.0;
/// Least seconds of back-to-back work before each measurement on a CPU adapter: after the
/// pause between measurements (quantizing and uploading the next weights) lavapipe's two
/// workers on a 2-core machine often ran on one core for the first runs (see
/// [`Statistic::Fastest`]).
const CPU_WARMUP_SECONDS: f64 = 0.2;
/// Seconds without a measurement after which the GPU counts as idle.
const IDLE_SECONDS: f64 = 0.5;
/// Most seconds of warm-up per measurement.
const WARMUP_MAX_SECONDS: f64 = 2.0;
/// Fewest runs per warm-up submission on a hardware GPU.
const WARMUP_BATCH: usize = 8;
/// Wall-clock seconds each warm-up submission aims at on a hardware GPU: long enough to keep
/// the GPU busy between the waits.
const WARMUP_SUBMIT_SECONDS: f64 = 0.005;
/// Timestamps whose median run times the runs comes to less than this share of their batch's
/// work (wall-clock time less the batch overhead) are not believed (see [`Timer::seconds`]).
const TIMESTAMP_MIN_SHARE: f64 = 0.5;
/// A run stamped with less than this share of its batch's wall-clock work per run is not
/// believed on a CPU adapter (see [`Timer::seconds`]). Genuine runs vary by the core count at
/// most (all shares of a dispatch on one core, or spread); lavapipe's wrong stamps were
/// 50-100x short.
const STAMP_MIN_SHARE_OF_MEAN: f64 = 0.1;
/// Batches with less work than this on the wall clock are not cross-checked: the overhead's
/// jitter is a large share of them.
const CROSS_CHECK_MIN_SECONDS: f64 = 0.001;

impl<'a> Timer<'a> {
    /// A timer for up to `max_runs` timed runs per call.
    pub fn new(ctx: &'a GpuContext, max_runs: u32) -> Self {
        let timestamps = ctx
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
            .then(|| {
                let count = 2 * max_runs;
                let set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("wgquant bench"),
                    ty: wgpu::QueryType::Timestamp,
                    count,
                });
                let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("wgquant timestamps"),
                    size: count as u64 * 8,
                    usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                });
                (set, resolve, max_runs)
            });
        let timer = Timer {
            ctx,
            timestamps,
            cross_check: ctx.is_cpu(),
            last: std::cell::Cell::new(Timing::WallClock),
            last_end: std::cell::Cell::new(None),
            overhead: std::cell::OnceCell::new(),
        };
        timer.last.set(timer.timing_default());
        timer
    }

    /// How the last measurement was timed (before any: how this timer times by default).
    pub fn timing(&self) -> Timing {
        self.last.get()
    }

    /// Which run [`time_per_run`](Self::time_per_run) reports on this timer's adapter.
    pub fn statistic(&self) -> Statistic {
        Statistic::for_adapter(self.ctx.is_cpu())
    }

    /// Run `ops` round-robin at least `warmup` times untimed, and for at least 0.2 s until the
    /// runs stop getting faster, then `runs` times timed; return the seconds of the median
    /// run (of the fastest on CPU adapters: [`statistic`](Self::statistic)).
    pub fn time_per_run<T: Timed>(&self, ops: &[T], warmup: usize, runs: usize) -> Result<f64> {
        block_on(
            "Timer::time_per_run_async",
            self.time_per_run_async(ops, warmup, runs),
        )
    }

    /// [`time_per_run`](Self::time_per_run) as a future.
    pub async fn time_per_run_async<T: Timed>(
        &self,
        ops: &[T],
        warmup: usize,
        runs: usize,
    ) -> Result<f64> {
        let times = self.seconds_async(ops, warmup, runs).await;
        self.last_end.set(Some(Instant::now()));
        Ok(self.statistic().of(&times?))
    }

    /// [`time_per_run`](Self::time_per_run) of `ops` and of `baseline`, their runs
    /// alternating (each round-robin over its own copies): (seconds of `ops`, of `baseline`).
    /// A CPU adapter's share of the host changes over seconds, so a baseline timed a minute
    /// before would not be the same machine's.
    pub fn time_paired<T: Timed, B: Timed>(
        &self,
        ops: &[T],
        baseline: &[B],
        warmup: usize,
        runs: usize,
    ) -> Result<(f64, f64)> {
        block_on(
            "Timer::time_paired_async",
            self.time_paired_async(ops, baseline, warmup, runs),
        )
    }

    /// [`time_paired`](Self::time_paired) as a future.
    pub async fn time_paired_async<T: Timed, B: Timed>(
        &self,
        ops: &[T],
        baseline: &[B],
        warmup: usize,
        runs: usize,
    ) -> Result<(f64, f64)> {
        if ops.is_empty() || baseline.is_empty() {
            return Err(Error::InvalidArgument("nothing to time".into()));
        }
        // Even positions run `ops`, odd ones the baseline (the list's length is even, so
        // every timed batch keeps the alternation); as many pairs as the two copy counts'
        // least common multiple, so each side rotates through all its copies in turn.
        let gcd = |mut a: usize, mut b: usize| {
            while b != 0 {
                (a, b) = (b, a % b);
            }
            a
        };
        let len = ops.len() / gcd(ops.len(), baseline.len()) * baseline.len();
        let pairs: Vec<&dyn Timed> = (0..len)
            .flat_map(|i| {
                [
                    &ops[i % ops.len()] as &dyn Timed,
                    &baseline[i % baseline.len()],
                ]
            })
            .collect();
        let times = self.seconds_async(&pairs, warmup, 2 * runs).await;
        self.last_end.set(Some(Instant::now()));
        let times = times?;
        let side = |parity: usize| {
            let runs: Vec<f64> = times.iter().skip(parity).step_by(2).copied().collect();
            self.statistic().of(&runs)
        };
        Ok((side(0), side(1)))
    }

    /// Run `ops` round-robin at least `warmup` times untimed, and for at least 0.2 s until the
    /// runs stop getting faster, then `runs` times timed (in batches of at most the timer's
    /// capacity); return each run's seconds.
    ///
    /// On CPU adapters, timestamps are checked against the wall clock around their batch
    /// (submit to results read back, less the fixed cost of a batch measured once): where
    /// the median run times the batch's runs comes to less than half of it, on a batch with
    /// at least a millisecond of work, they are not believed and the batch's wall-clock work
    /// per run is used instead ([`timing`](Self::timing) then says `WallClock`). lavapipe
    /// (Mesa 22.3) reports passes of a few microseconds for GEMVs that take milliseconds
    /// once textures exist on the device, sometimes for all but one run of a batch (the
    /// f16-activation GEMV, 512x1024: 30 us stamped, 1.5 ms on the wall clock); the check
    /// keeps such numbers out of every report. In a believed batch, a run stamped with less
    /// than a tenth of the batch's wall-clock work per run is not believed either (it would
    /// be the fastest run); it counts that work per run instead. Hardware GPUs' timestamps
    /// are believed: there the gaps between passes and the submission latency can exceed
    /// short kernels' own time (an H200 tripped the check on 200-microsecond GEMVs).
    pub fn seconds<T: Timed>(&self, ops: &[T], warmup: usize, runs: usize) -> Result<Vec<f64>> {
        block_on(
            "Timer::seconds_async",
            self.seconds_async(ops, warmup, runs),
        )
    }

    /// [`seconds`](Self::seconds) as a future.
    pub async fn seconds_async<T: Timed>(
        &self,
        ops: &[T],
        warmup: usize,
        runs: usize,
    ) -> Result<Vec<f64>> {
        let ctx = self.ctx;
        if ops.is_empty() || runs == 0 {
            return Err(Error::InvalidArgument("nothing to time".into()));
        }
        // Warm up: at least `warmup` runs, and on hardware GPUs at least WARMUP_SECONDS of
        // back-to-back work (in submissions of WARMUP_BATCH runs), so that clocks lowered
        // while the CPU prepared the next weights are back up before timing starts; on CPU
        // adapters CPU_WARMUP_SECONDS, one run per submission.
        let started = Instant::now();
        let gpu = !ctx.is_cpu();
        let idle = self
            .last_end
            .get()
            .is_none_or(|t| t.elapsed().as_secs_f64() > IDLE_SECONDS);
        let min_seconds = if !gpu {
            CPU_WARMUP_SECONDS
        } else if idle {
            WARMUP_AFTER_IDLE_SECONDS
        } else {
            WARMUP_SECONDS
        };
        let mut batch = if gpu { WARMUP_BATCH } else { 1 };
        // Wall-clock seconds per run of each warm-up submission.
        let mut per_run = Vec::new();
        let mut i = 0;
        loop {
            let elapsed = started.elapsed().as_secs_f64();
            let done = i >= warmup
                && (elapsed >= WARMUP_MAX_SECONDS
                    || (elapsed >= min_seconds && warmed_up(&per_run)));
            if done {
                break;
            }
            let t0 = Instant::now();
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            for _ in 0..batch {
                ops[i % ops.len()].encode_timed(&mut enc, None);
                i += 1;
            }
            ctx.queue.submit([enc.finish()]);
            ctx.wait_async().await?;
            let run = t0.elapsed().as_secs_f64() / batch as f64;
            per_run.push(run);
            if gpu {
                batch = ((WARMUP_SUBMIT_SECONDS / run.max(1e-7)).ceil() as usize)
                    .clamp(WARMUP_BATCH, 4096);
            }
        }
        let mut times = Vec::with_capacity(runs);
        let mut timing = self.timing_default();
        while times.len() < runs {
            let done = times.len();
            match &self.timestamps {
                Some((set, resolve, max)) => {
                    let batch = (runs - done).min(*max as usize);
                    let mut enc = ctx.device.create_command_encoder(&Default::default());
                    for i in 0..batch {
                        ops[(done + i) % ops.len()].encode_timed(
                            &mut enc,
                            Some(wgpu::ComputePassTimestampWrites {
                                query_set: set,
                                beginning_of_pass_write_index: Some(2 * i as u32),
                                end_of_pass_write_index: Some(2 * i as u32 + 1),
                            }),
                        );
                    }
                    enc.resolve_query_set(set, 0..2 * batch as u32, resolve, 0);
                    let start = Instant::now();
                    ctx.queue.submit([enc.finish()]);
                    let ticks = read_u64(ctx, resolve, 2 * batch).await?;
                    let wall = start.elapsed().as_secs_f64();
                    let period = ctx.queue.get_timestamp_period() as f64 * 1e-9;
                    let stamped: Vec<f64> = ticks
                        .chunks_exact(2)
                        .map(|t| t[1].wrapping_sub(t[0]) as f64 * period)
                        .collect();
                    if !self.cross_check {
                        times.extend(stamped);
                        continue;
                    }
                    let overhead = self.batch_overhead().await?;
                    let (checked, how) = cross_checked(&stamped, wall - overhead);
                    if how == Timing::WallClock {
                        timing = how;
                    }
                    times.extend(checked);
                }
                None => {
                    let start = Instant::now();
                    let mut enc = ctx.device.create_command_encoder(&Default::default());
                    ops[done % ops.len()].encode_timed(&mut enc, None);
                    ctx.queue.submit([enc.finish()]);
                    ctx.wait_async().await?;
                    times.push(start.elapsed().as_secs_f64());
                }
            }
        }
        self.last.set(timing);
        Ok(times)
    }

    /// The wall-clock seconds a timed batch costs besides its passes: submitting one empty
    /// timed compute pass and reading its timestamps back, the least of three tries (0.3-0.5
    /// ms on lavapipe here, as long as a batch of a small GEMV's runs).
    async fn batch_overhead(&self) -> Result<f64> {
        if let Some(&s) = self.overhead.get() {
            return Ok(s);
        }
        let Some((set, resolve, _)) = &self.timestamps else {
            return Ok(0.0);
        };
        let ctx = self.ctx;
        let mut least = f64::INFINITY;
        for _ in 0..3 {
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("wgquant timer overhead"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
            });
            enc.resolve_query_set(set, 0..2, resolve, 0);
            let start = Instant::now();
            ctx.queue.submit([enc.finish()]);
            read_u64(ctx, resolve, 2).await?;
            least = least.min(start.elapsed().as_secs_f64());
        }
        Ok(*self.overhead.get_or_init(|| least))
    }

    fn timing_default(&self) -> Timing {
        if self.timestamps.is_some() {
            Timing::Timestamps
        } else {
            Timing::WallClock
        }
    }
}

/// The median of `times` (the upper one of an even count; `times` is not empty).
fn median(times: &[f64]) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted[sorted.len() / 2]
}

/// Whether timestamps that make `stamped` seconds of a batch (median run x runs) with `work`
/// seconds of wall clock from submit to read-back, less the batch overhead, can be believed.
fn timestamps_believable(stamped: f64, work: f64) -> bool {
    work < CROSS_CHECK_MIN_SECONDS || stamped >= TIMESTAMP_MIN_SHARE * work
}

/// A CPU adapter's timed batch, its runs `stamped` and `work` wall-clock seconds in all
/// (see [`Timer::seconds`]): where the median stamp agrees with the wall clock, the stamps,
/// less any run stamped under [`STAMP_MIN_SHARE_OF_MEAN`] of the work per run, which counts
/// the work per run instead (one wrong stamp among right ones would be the fastest run);
/// else the work per run for every run, timed by the wall clock.
fn cross_checked(stamped: &[f64], work: f64) -> (Vec<f64>, Timing) {
    let per_run = work / stamped.len() as f64;
    // What the median makes of the batch: lavapipe can stamp most runs of a batch with
    // microseconds and one with the batch's whole time.
    if timestamps_believable(median(stamped) * stamped.len() as f64, work) {
        let floor = STAMP_MIN_SHARE_OF_MEAN * per_run;
        let runs = stamped.iter().map(|&s| if s < floor { per_run } else { s });
        (runs.collect(), Timing::Timestamps)
    } else {
        (vec![per_run; stamped.len()], Timing::WallClock)
    }
}

async fn read_u64(ctx: &GpuContext, buf: &wgpu::Buffer, len: usize) -> Result<Vec<u64>> {
    let bytes = ctx.read_bytes_async(buf, len * 8).await?;
    Ok(bytes
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
        .collect())
}

/// Standard normal weights for an `m x k` benchmark, generated on several threads (a few
/// seconds saved per large shape; each block of rows has its own fixed seed).
fn random_weights(m: usize, k: usize) -> Vec<f32> {
    const ROWS_PER_SEED: usize = 256;
    let mut weights = vec![0.0f32; m * k];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunks: Vec<(usize, &mut [f32])> =
        weights.chunks_mut(ROWS_PER_SEED * k).enumerate().collect();
    let per_thread = chunks.len().div_ceil(threads);
    let fill = |i: usize, chunk: &mut [f32]| {
        let seed = ((m * 31 + k) as u64) << 20 | i as u64;
        chunk.copy_from_slice(&Rng::new(seed).normal_vec(chunk.len()));
    };
    if threads <= 1 {
        // Inline (a web page has no threads).
        chunks.into_iter().for_each(|(i, c)| fill(i, c));
        return weights;
    }
    let mut chunks = chunks.into_iter();
    std::thread::scope(|scope| loop {
        let batch: Vec<_> = chunks.by_ref().take(per_thread).collect();
        if batch.is_empty() {
            break;
        }
        let fill = &fill;
        scope.spawn(move || batch.into_iter().for_each(|(i, c)| fill(i, c)));
    });
    weights
}

/// Bytes of weights a hardware GPU's benchmarks and tuning keep in flight by rotating copies:
/// far more than any last-level cache (an H100's L2 holds 50 MB), so each run reads its
/// weights from memory, as a model's decode does.
pub const GPU_BYTES_IN_FLIGHT: u64 = 512 << 20;

/// Bytes of weights a CPU adapter's benchmarks keep in flight: more than a server CPU's
/// last-level cache (32 MiB on the 2-core EPYC of the lavapipe figures in
/// `docs/BENCHMARKS.md`, up to 96 MiB per chiplet with stacked cache), so quantized weights
/// come from memory as f32 ones do (a q4_0 4096 x 4096 weight is 9.4 MB; f32 64 MB).
pub const CPU_BYTES_IN_FLIGHT: u64 = 256 << 20;

/// Upload `q` as many times as [`copies_for`] says keeps `bytes_in_flight` of weights in
/// flight (at least once), for timing runs that rotate through the copies.
pub fn upload_copies(
    ctx: &GpuContext,
    q: &QuantizedTensor,
    bytes_in_flight: u64,
) -> Result<Vec<GpuWeight>> {
    let first = GpuWeight::upload(ctx, q)?;
    let copies = copies_for(first.gpu_bytes(), bytes_in_flight);
    let mut weights = vec![first];
    for _ in 1..copies {
        weights.push(GpuWeight::upload(ctx, q)?);
    }
    Ok(weights)
}

/// Number of weight copies that keep `bytes_in_flight` of weights in flight.
pub fn copies_for(weight_bytes: u64, bytes_in_flight: u64) -> usize {
    if weight_bytes == 0 {
        return 1;
    }
    (bytes_in_flight.div_ceil(weight_bytes) as usize).clamp(1, 64)
}

/// Run the benchmark, calling `progress(done, total, row)` after each measurement (so a
/// caller can show or save rows as they come). The f32 baseline is always measured, first,
/// for every shape and batch.
pub fn run(
    ctx: &GpuContext,
    cfg: &BenchConfig,
    progress: impl FnMut(usize, usize, &BenchRow),
) -> Result<Vec<BenchRow>> {
    block_on("bench::run_async", run_async(ctx, cfg, progress))
}

/// [`run`] as a future (what a web page awaits).
pub async fn run_async(
    ctx: &GpuContext,
    cfg: &BenchConfig,
    mut progress: impl FnMut(usize, usize, &BenchRow),
) -> Result<Vec<BenchRow>> {
    let mut formats = vec![Format::F32];
    formats.extend(cfg.formats.iter().copied().filter(|f| *f != Format::F32));
    for f in &formats {
        for &(_, k) in &cfg.shapes {
            f.check_k(k)?;
        }
    }
    let a8 = formats
        .iter()
        .filter(|f| cfg.int8_activations && supports_int8_activations(**f))
        .count();
    let f16 = cfg.f16_activations && ActType::F16.supported_by(&ctx.device);
    let f16_rows = if f16 { formats.len() } else { 0 };
    let total = (formats.len() + a8 + f16_rows) * cfg.shapes.len() * cfg.batches.len();
    let timer = Timer::new(ctx, cfg.iterations.max(1) as u32);
    let adapter = ctx.describe();
    let mut rows = Vec::new();
    let mut done = 0;
    for &(m, k) in &cfg.shapes {
        let weights = random_weights(m, k);
        let max_n = cfg.batches.iter().copied().max().unwrap_or(1);
        let x = ctx.storage_buffer("bench x", &Rng::new(5).normal_vec(max_n * k));
        let y = ctx.output_buffer("bench y", max_n * m);
        let (x16, y16) = if f16 {
            let x: Vec<half::f16> = Rng::new(5)
                .normal_vec(max_n * k)
                .iter()
                .map(|&v| half::f16::from_f32(v))
                .collect();
            (
                Some(ctx.storage_buffer_f16("bench x f16", &x)),
                Some(ctx.output_buffer("bench y f16", (max_n * m).div_ceil(2))),
            )
        } else {
            (None, None)
        };
        let mut f32_time = std::collections::HashMap::new();
        // On CPU adapters every other row's runs alternate with the f32 GEMV's of its batch,
        // which it is compared with (Timer::time_paired); these are those f32 dispatches.
        let mut baseline: std::collections::HashMap<usize, Vec<Dispatch>> = Default::default();
        let paired = ctx.is_cpu();
        for &format in &formats {
            let q = QuantizedTensor::quantize(format, &weights, m, k)?;
            let kernels = Kernels::with_config(&ctx.device, format, cfg.kernels)?;
            let gpu = upload_copies(ctx, &q, cfg.bytes_in_flight)?;
            let copies = gpu.len();
            drop(q);
            let weight_bytes = gpu[0].gpu_bytes();
            let row = |n: usize,
                       name: &'static str,
                       seconds: f64,
                       f32_seconds: f64,
                       int8_activations: bool,
                       act: ActType| {
                let bytes = weight_bytes + (act.bytes() * (n * k + n * m)) as u64;
                BenchRow {
                    kernel: kernel_for_batch(n),
                    name,
                    format,
                    m,
                    k,
                    n,
                    seconds,
                    bytes,
                    gbps: bytes as f64 / seconds / 1e9,
                    gflops: 2.0 * (m * k * n) as f64 / seconds / 1e9,
                    ratio_to_f32: seconds / f32_seconds,
                    copies,
                    timing: timer.timing(),
                    statistic: timer.statistic(),
                    adapter: adapter.clone(),
                    int8_activations,
                    act,
                }
            };
            for &n in &cfg.batches {
                let ops = gpu
                    .iter()
                    .map(|w| kernels.matmul(w, &x, &y, n))
                    .collect::<Result<Vec<_>>>()?;
                let (seconds, f32_seconds) =
                    time_against_f32(&timer, cfg, &ops, baseline.get(&n), f32_time.get(&n)).await?;
                let name = ops[0].kernel_name();
                if format == Format::F32 {
                    f32_time.insert(n, seconds);
                    if paired {
                        baseline.insert(n, ops);
                    }
                }
                rows.push(row(n, name, seconds, f32_seconds, false, ActType::F32));
                done += 1;
                progress(done, total, &rows[rows.len() - 1]);
            }
            if let (Some(x16), Some(y16)) = (&x16, &y16) {
                for &n in &cfg.batches {
                    let ops = gpu
                        .iter()
                        .map(|w| kernels.matmul_f16(w, x16, y16, n))
                        .collect::<Result<Vec<_>>>()?;
                    let (seconds, f32_seconds) =
                        time_against_f32(&timer, cfg, &ops, baseline.get(&n), f32_time.get(&n))
                            .await?;
                    let name = ops[0].kernel_name();
                    rows.push(row(n, name, seconds, f32_seconds, false, ActType::F16));
                    done += 1;
                    progress(done, total, &rows[rows.len() - 1]);
                }
            }
            if cfg.int8_activations && supports_int8_activations(format) {
                let kernels = Int8Kernels::new(&ctx.device, format)?;
                for &n in &cfg.batches {
                    let ops = gpu
                        .iter()
                        .map(|w| kernels.matmul(w, &x, &y, n, &ActQuant::Dynamic))
                        .collect::<Result<Vec<_>>>()?;
                    let (seconds, f32_seconds) =
                        time_against_f32(&timer, cfg, &ops, baseline.get(&n), f32_time.get(&n))
                            .await?;
                    rows.push(row(n, "gemv_a8", seconds, f32_seconds, true, ActType::F32));
                    done += 1;
                    progress(done, total, &rows[rows.len() - 1]);
                }
            }
        }
    }
    Ok(rows)
}

/// Seconds of `ops` and of the f32 kernel they compare with: timed alternately with the f32
/// dispatches `baseline` where given (CPU adapters, [`Timer::time_paired`]), else alone and
/// against `f32_seconds` measured before (or themselves, for the f32 rows).
async fn time_against_f32<T: Timed>(
    timer: &Timer<'_>,
    cfg: &BenchConfig,
    ops: &[T],
    baseline: Option<&Vec<Dispatch>>,
    f32_seconds: Option<&f64>,
) -> Result<(f64, f64)> {
    match baseline {
        Some(base) => {
            timer
                .time_paired_async(ops, base, cfg.warmup, cfg.iterations)
                .await
        }
        None => {
            let seconds = timer
                .time_per_run_async(ops, cfg.warmup, cfg.iterations)
                .await?;
            Ok((seconds, f32_seconds.copied().unwrap_or(seconds)))
        }
    }
}

/// Whether warm-up submissions (wall-clock seconds per run, oldest first) have stopped
/// getting faster: the last of at least four is no more than 2% faster than the one three
/// before it.
fn warmed_up(per_run: &[f64]) -> bool {
    match per_run {
        [.., before, _, _, last] => *last >= 0.98 * before,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_waits_until_runs_stop_getting_faster() {
        assert!(!warmed_up(&[]));
        assert!(!warmed_up(&[1.0, 1.0, 1.0]));
        // Clocks ramping: each submission faster than the last.
        assert!(!warmed_up(&[8.0, 4.0, 2.0, 1.0]));
        assert!(!warmed_up(&[3.0, 1.0, 1.0, 1.0, 1.0, 0.5]));
        // Settled, with noise either way.
        assert!(warmed_up(&[8.0, 4.0, 1.0, 1.01, 0.99, 0.995]));
        assert!(warmed_up(&[1.0, 1.1, 1.2, 1.3]));
    }

    #[test]
    fn random_weights_are_deterministic_and_distinct_per_block() {
        let a = random_weights(600, 33);
        assert_eq!(a, random_weights(600, 33));
        assert_eq!(a.len(), 600 * 33);
        // Blocks of rows have different seeds: no repeated block.
        assert_ne!(a[..256 * 33], a[256 * 33..512 * 33]);
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "mean {mean} var {var}"
        );
    }

    #[test]
    fn timestamps_far_below_the_wall_clock_are_not_believed() {
        // lavapipe's case: 60 us of timestamps for a 22 ms batch.
        assert!(!timestamps_believable(60e-6, 0.022));
        assert!(timestamps_believable(0.020, 0.022));
        assert!(timestamps_believable(0.011, 0.022));
        // Its f16 GEMV: three runs stamped 28, 208 and 121 us (median 121) in a batch with
        // 7.1 ms of work.
        assert!(!timestamps_believable(
            3.0 * median(&[28e-6, 208e-6, 121e-6]),
            0.0071
        ));
        // Batches with little work are mostly the overhead's jitter: not cross-checked.
        assert!(timestamps_believable(10e-6, 0.0009));
    }

    #[test]
    fn a_cpu_batch_keeps_its_stamps_but_not_one_far_below_the_wall_clock() {
        // Two runs on both cores, one on one core, one stamped 50x short: the wall clock
        // saw 2.7 + 5.3 + 2.7 + 2.7 ms of work.
        let (runs, how) = cross_checked(&[2.7e-3, 5.3e-3, 2.7e-3, 54e-6], 13.4e-3);
        assert_eq!(how, Timing::Timestamps);
        assert_eq!(runs[..3], [2.7e-3, 5.3e-3, 2.7e-3]);
        assert!((runs[3] - 13.4e-3 / 4.0).abs() < 1e-12, "{runs:?}");
        assert_eq!(Statistic::Fastest.of(&runs), 2.7e-3);
        // Most runs stamped short: the wall clock times them all.
        let (runs, how) = cross_checked(&[30e-6, 30e-6, 5e-3], 15e-3);
        assert_eq!((runs, how), (vec![5e-3; 3], Timing::WallClock));
    }

    #[test]
    fn statistics_take_the_middle_or_the_fastest_run() {
        assert_eq!(Statistic::Median.of(&[9.0, 4.5, 9.1]), 9.0);
        assert_eq!(Statistic::Fastest.of(&[9.0, 4.5, 9.1]), 4.5);
        assert_eq!(Statistic::for_adapter(true), Statistic::Fastest);
        assert_eq!(Statistic::for_adapter(false), Statistic::Median);
    }

    #[test]
    fn median_takes_the_middle_run() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 3.0);
        assert_eq!(median(&[5.0]), 5.0);
    }
}
