//! The GEMV's settings and the per-adapter and per-format rules that pick them: which
//! entry, how many weight rows per lane group and columns per invocation, how lanes split a
//! chunk of codes, how many chunks a lane loads ahead. Each rule sits beside its measured
//! reason. [`KernelConfig`] holds an adapter's choices; [`super::plan_matmul`] applies them
//! to one matmul.

use super::adapter::AdapterProfile;
use super::coop::coop_gemm;
use crate::format::Format;
use crate::gpu::shaders::{
    param_texel_chunks, ActType, Entry, KernelKind, GEMV_LANES_MAX_ROWS, GEMV_MAX_COLS,
    GEMV_MAX_LOADS, GEMV_MAX_ROWS, GEMV_MAX_STEPS, GEMV_MAX_UNROLL, GEMV_SHARED_MAX_ROWS,
    GEMV_WG_SIZE,
};

/// Batches of at most this many activation rows use the GEMV kernel; larger ones GEMM.
pub const GEMV_MAX_N: usize = GEMV_MAX_COLS as usize;

/// Which kernel family a matmul of batch `n` uses.
pub fn kernel_for_batch(n: usize) -> KernelKind {
    if n <= GEMV_MAX_N {
        KernelKind::Gemv
    } else {
        KernelKind::Gemm
    }
}

/// Whether wgpu's loop bounding stays on for a module on a CPU adapter (`cpu`) or a
/// hardware GPU. By default naga gives every loop an extra iteration counter, so that a
/// driver may not assume the loop ends, and with it NVIDIA's compiler does not unroll the
/// loops over rows and columns whose bounds are override constants, so their register
/// arrays fall to local memory (on an H200, GEMVs ran 2.6x (f32) to 5x (Q8_0) slower with
/// it): off on hardware GPUs. On CPU adapters it stays on except where `unroll_on_cpu` (the
/// texture GEMV, which lavapipe then runs about twice as fast), since elsewhere lavapipe
/// then unrolls far more and compiles many times slower (the int8 test suite went from 2
/// to 41 s).
pub fn force_loop_bounding(cpu: bool, unroll_on_cpu: bool) -> bool {
    cpu && !unroll_on_cpu
}

impl Entry {
    /// Weight rows per GEMV lane group. Each lane loads its slice of x once for all of them,
    /// so more rows means fewer loads per weight (on lavapipe, where every load is a
    /// per-lane loop, 8 rows run GEMV about 1.3x and 8 columns 1.8x faster than 4); the
    /// workgroup-memory reduction holds at most GEMV_SHARED_MAX_ROWS. The texture GEMV keeps
    /// rows x columns accumulators per invocation: above 2 columns 4 rows keep them in
    /// registers (at 8 columns, 4 rows ran 2.1x faster than 8 on lavapipe); it runs more
    /// than the setting at one column and at 3-4 for most formats, nf4 at most 4
    /// ([`texture_gemv_rows`]).
    ///
    /// These are the fixed defaults (the only place that defines them); a tuned
    /// [`GemvRows`] in [`KernelConfig::gemv_rows`] replaces them.
    pub fn default_gemv_rows(self, cols: usize) -> u32 {
        match self {
            Entry::Gemv => GEMV_SHARED_MAX_ROWS,
            e if e.reads_textures() && cols > 2 => GEMV_MAX_ROWS / 2,
            _ => GEMV_MAX_ROWS,
        }
    }
}

impl ActType {
    /// The activation type that suits `device`: f16 where it has `Features::SHADER_F16` and is
    /// not a CPU adapter, f32 everywhere else. CPU adapters (lavapipe) offer the feature but
    /// emulate f16 arithmetic, so the conversions cost more than the halved traffic saves.
    pub fn preferred_for(device: &wgpu::Device) -> Self {
        Self::preferred_on(&AdapterProfile::of(device))
    }

    /// [`Self::preferred_for`] on an adapter profile.
    pub fn preferred_on(adapter: &AdapterProfile) -> Self {
        if !adapter.is_cpu() && adapter.has(wgpu::Features::SHADER_F16) {
            ActType::F16
        } else {
            ActType::F32
        }
    }
}

/// Which implementation of each kernel family a [`Kernels`](crate::gpu::Kernels) builds. [`Kernels::new`](crate::gpu::Kernels::new) picks
/// it from the device; [`Kernels::with_config`](crate::gpu::Kernels::with_config) lets tests and benchmarks force one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelConfig {
    /// GEMV lane groups are subgroups reduced with subgroupAdd (needs `Features::SUBGROUP`)
    /// rather than workgroups reduced in workgroup memory (for 3-8 columns see
    /// `gemv_wide_workgroup`).
    pub subgroups: bool,
    /// Batches above [`GEMV_MAX_N`] use the workgroup-memory tiled GEMM; otherwise the GEMV
    /// kernel in blocks of 8 columns (better where workgroup memory and barriers are slow:
    /// CPU adapters such as lavapipe).
    pub tiled_gemm: bool,
    /// Batches of at least [`COOP_MIN_N`](super::coop::COOP_MIN_N) use the tensor-core GEMM
    /// (cooperative matrices: needs `Features::EXPERIMENTAL_COOPERATIVE_MATRIX`, `SHADER_F16`
    /// and subgroups of one size, see [`check_coop_gemm`](super::coop::check_coop_gemm)). Its products
    /// are f16 x f16 (x and the dequantized weights rounded to f16), accumulated in f32.
    pub coop_matrix: bool,
    /// The tensor-core GEMM's wide batch tile: 128 activation rows per workgroup instead of
    /// 64 (each subgroup 2 x 4 fragments, not 2 x 2), so each weight slice is dequantized
    /// once per 128 columns, for twice the accumulators per invocation. Off by default until
    /// a GPU shows it faster (`wgquant bench --coop-wide-tile`).
    pub coop_wide_tile: bool,
    /// GEMV reads weights and x from textures, one invocation per row group
    /// (`shaders/gemv_lanes.wgsl`), for weights uploaded with textures (see
    /// [`uses_textures`]); others use the buffer GEMV.
    pub texture_gemv: bool,
    /// The texture GEMV reads x too long for its uniform buffer ([`X_UNIFORM_BYTES`](crate::gpu::shaders::X_UNIFORM_BYTES)) from
    /// a storage buffer ([`Entry::GemvLanesStorageX`]) rather than a texture. Which is
    /// faster depends on the driver: on lavapipe with Mesa 26.1 the storage buffer (q4_0
    /// 4096x14336, 4 columns: 49.6 -> 30.6 ms; f32 4096x4096, 8 columns: 72.6 -> 30.1), with
    /// Mesa 22.3 the texture (q4_0 35.6 -> 40.5-43.2 ms). With it the GEMV also keeps up
    /// to 8 columns per invocation instead of [`texture_gemv_cols`]' fours, which paid with
    /// long x in textures only (Mesa 26.1, 8 columns: q4_0 4096x4096 17.5 -> 13.2 ms,
    /// 8192x2048 17.6 -> 13.1; q8_0 4096x14336 78 -> 52). [`KernelConfig::untuned`] sets
    /// it on llvmpipe from Mesa 26 on ([`mesa_major`](super::adapter::mesa_major)); the versions in between are
    /// unmeasured.
    pub texture_x_storage: bool,
    /// Weight rows per GEMV lane group (the `ROWS` override). The default keeps each
    /// entry's fixed value ([`Entry::default_gemv_rows`]); [`KernelConfig::for_device`]
    /// fills it from the autotuner's cache ([`crate::gpu::tune`]) when that has an entry
    /// for this adapter and driver.
    pub gemv_rows: GemvRows,
    /// 4-value steps of each 16-byte chunk of codes one lane of the buffer GEMVs takes, by
    /// batch width ([`GemvSteps`]): `WORD_VALUES / steps` lanes share a chunk (the `SPLIT`
    /// override, see `shaders/gemv.wgsl`), so each lane reads `steps` consecutive x vec4s
    /// per chunk, in any format. A kernel caps the lanes per chunk at the lane group's
    /// smallest size ([`gemv_split`]); the texture GEMV, one invocation per row group,
    /// ignores it. [`KernelConfig::untuned`] sets [`GPU_GEMV_STEPS`] on hardware GPUs; the
    /// tuner's cache may replace it.
    pub gemv_steps: GemvSteps,
    /// Chunks per row each lane of the buffer GEMVs loads before computing (the `UNROLL`
    /// override), 1..=[`GEMV_MAX_UNROLL`], capped so that rows x chunks stays within
    /// [`GEMV_MAX_LOADS`]; `None` picks [`gemv_unroll`]'s default for the device and rows.
    /// The texture GEMV ignores it.
    pub gemv_unroll: Option<u32>,
    /// Where `subgroups` is set, batches of 3-8 columns ([`GemvRows::wide`]) still run the
    /// workgroup-memory GEMV ([`Entry::Gemv`]: one 64-lane lane group per workgroup, reduced
    /// in workgroup memory); 1-2 columns keep a lane group per subgroup. Twice the lanes
    /// per row group put twice the invocations to work (4096 rows in groups of 4: 32K as
    /// 32-lane subgroups, 64K as workgroups, on an H100 with room for 270K), while the
    /// reduction through workgroup memory costs more than subgroupAdd: 8 columns' longer
    /// work per lane hides that, 1 column's does not. On an H100 at 4096x14336, 8 columns ran
    /// 1.4x (q4_0, 168 -> 119 us) and 1.7x (f32) faster this way, 1 column 1.3x slower
    /// (q4_0, 36.7 -> 47.0 us), measured while the workgroup sums still had 32-way bank
    /// conflicts (`shaders/workgroup_sum.wgsl`). [`KernelConfig::untuned`] sets it on
    /// hardware GPUs; the tuner's cache may clear it. Without `subgroups` every batch runs
    /// the workgroup-memory GEMV anyway.
    pub gemv_wide_workgroup: bool,
    /// The activation type callers should prefer on this device ([`ActType::preferred_for`]).
    /// It changes no kernel: [`Kernels::matmul`](crate::gpu::Kernels::matmul) always takes f32
    /// buffers and [`Kernels::matmul_f16`](crate::gpu::Kernels::matmul_f16) f16 ones; callers that
    /// can produce either (the benchmark) pick by this.
    pub act: ActType,
}

/// Tuned weight rows per GEMV lane group (the `ROWS` override constant), by batch width:
/// `narrow` for 1-2 activation columns, `wide` for 3-8. `None` keeps the entry's fixed
/// default ([`Entry::default_gemv_rows`]). Values must lie in 1..=[`GEMV_MAX_ROWS`]
/// ([`Kernels::with_config`](crate::gpu::Kernels::with_config) refuses others with
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument)); the workgroup-memory GEMV
/// ([`Entry::Gemv`]) holds at most [`GEMV_SHARED_MAX_ROWS`] and runs larger values clamped
/// to that, so a configuration toggled between GEMV entries stays valid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GemvRows {
    pub narrow: Option<u32>,
    pub wide: Option<u32>,
}

impl GemvRows {
    /// The values the autotuner tries.
    pub const CANDIDATES: [u32; 4] = [1, 2, 4, 8];

    /// Both buckets set to `rows`.
    pub fn fixed(rows: u32) -> Self {
        GemvRows {
            narrow: Some(rows),
            wide: Some(rows),
        }
    }

    /// Whether `cols` activation columns fall in the wide bucket (3-8) rather than the
    /// narrow one (1-2).
    pub fn is_wide(cols: usize) -> bool {
        cols > 2
    }

    /// The bucket's setting for `cols` activation columns.
    pub fn for_cols(self, cols: usize) -> Option<u32> {
        if Self::is_wide(cols) {
            self.wide
        } else {
            self.narrow
        }
    }

    /// The rows setting `entry` runs with for `cols` columns: the setting (clamped to the
    /// entry's maximum) or the entry's default.
    pub fn rows(self, entry: Entry, cols: usize) -> u32 {
        self.for_cols(cols).map_or_else(
            || entry.default_gemv_rows(cols),
            |r| r.clamp(1, entry.max_gemv_rows()),
        )
    }

    /// The rows per lane group (the `ROWS` override) `entry` runs with for `format` and
    /// `cols` columns: [`GemvRows::rows`], for the texture GEMV through
    /// [`texture_gemv_rows`].
    pub fn rows_for(self, entry: Entry, format: Format, cols: usize) -> u32 {
        let rows = self.rows(entry, cols);
        if entry.reads_textures() {
            texture_gemv_rows(format, cols, rows)
        } else {
            rows
        }
    }

    /// Check that every setting lies in 1..=[`GEMV_MAX_ROWS`].
    pub fn validate(self) -> crate::Result<()> {
        for (what, v) in [("narrow", self.narrow), ("wide", self.wide)] {
            if let Some(r) = v {
                if !(1..=GEMV_MAX_ROWS).contains(&r) {
                    return Err(crate::Error::InvalidArgument(format!(
                        "GEMV rows ({what}) = {r} is outside 1..={GEMV_MAX_ROWS}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// x steps per lane per chunk of codes of the buffer GEMVs ([`KernelConfig::gemv_steps`]),
/// by batch width like [`GemvRows`]: `narrow` for 1-2 activation columns, `wide` for 3-8.
/// Each is a power of two in 1..=[`GEMV_MAX_STEPS`]
/// ([`Kernels::with_config`](crate::gpu::Kernels::with_config) refuses others with
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument)); `None` is a whole chunk per
/// lane. Fewer steps spread a chunk over more lanes, so a subgroup's x loads lie closer
/// together, for the price of loading each chunk and its params once per lane: with eight
/// columns the x loads are eight times as many per chunk, so the best value can differ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GemvSteps {
    pub narrow: Option<u32>,
    pub wide: Option<u32>,
}

impl GemvSteps {
    /// Both buckets set to `steps`.
    pub fn fixed(steps: u32) -> Self {
        GemvSteps {
            narrow: Some(steps),
            wide: Some(steps),
        }
    }

    /// The bucket's setting for `cols` activation columns ([`GemvRows::is_wide`]).
    pub fn for_cols(self, cols: usize) -> Option<u32> {
        if GemvRows::is_wide(cols) {
            self.wide
        } else {
            self.narrow
        }
    }

    /// Check both settings with [`validate_gemv_steps`].
    pub fn validate(self) -> crate::Result<()> {
        validate_gemv_steps(self.narrow)?;
        validate_gemv_steps(self.wide)
    }
}

/// Whether weights on `device` get a texture copy for the texture GEMV
/// ([`uses_textures_on`]).
pub fn uses_textures(device: &wgpu::Device) -> bool {
    uses_textures_on(&AdapterProfile::of(device))
}

/// Whether weights on `adapter` get a texture copy for the texture GEMV: on CPU adapters
/// (lavapipe), where a storage-buffer load is a per-lane loop and a texel fetch one gather,
/// so the texture GEMV runs several times faster. Costs a second copy of each weight in
/// (system) memory there.
pub fn uses_textures_on(adapter: &AdapterProfile) -> bool {
    adapter.is_cpu()
}

impl KernelConfig {
    /// The GEMV entry this configuration uses for `cols` activation columns per dispatch
    /// and weights that fit it (the texture GEMV falls back to [`Self::buffer_gemv_entry`]
    /// for weights too large for textures).
    pub fn gemv_entry(&self, cols: usize) -> Entry {
        if self.texture_gemv {
            Entry::GemvLanes
        } else {
            self.buffer_gemv_entry(cols)
        }
    }

    /// One line naming the GEMV entries and settings this configuration runs (for logs
    /// such as `wgquant bench`'s).
    pub fn gemv_summary(&self) -> String {
        let bucket = |cols: usize| {
            let e = self.gemv_entry(cols);
            let rows = self.gemv_rows.rows(e, cols);
            let mut s = format!("{} with {rows} rows", e.entry_point());
            // Where the texture GEMV raises them (texture_gemv_rows), q4_0 for an example.
            let (more, at) = if cols == 1 {
                (1, "one column for light formats such as q4_0")
            } else {
                (4, "3-4 columns for all but the table formats")
            };
            let raised = self.gemv_rows.rows_for(e, Format::Q4_0, more);
            if raised != rows {
                s += &format!(" ({raised} at {at})");
            }
            s
        };
        let mut line = format!(
            "GEMV 1-2 columns: {}; 3-8 columns: {}",
            bucket(1),
            bucket(8)
        );
        if self.texture_gemv {
            // texture_gemv_cols: q4_0 takes 4 columns per invocation whatever k.
            if self.texture_x_storage {
                line += "; x too long for the uniform buffer in a storage buffer";
            } else {
                line += "; 5 columns or more: 4 per invocation for formats such as q4_0";
                line += "; x too long for the uniform buffer in a texture";
            }
        } else {
            let name = |s: Option<u32>| s.map_or("a whole chunk".into(), |s| s.to_string());
            let mut steps = name(self.gemv_steps.narrow);
            if self.gemv_steps.wide != self.gemv_steps.narrow {
                steps += &format!(" (3-8 columns: {})", name(self.gemv_steps.wide));
            }
            let unroll = self.gemv_unroll.map_or("default".into(), |u| u.to_string());
            line += &format!("; x steps per lane: {steps}; chunks loaded ahead: {unroll}");
        }
        line
    }

    /// The GEMV entry over storage buffers this configuration uses for `cols` columns:
    /// subgroup lane groups where `subgroups` is set, except for wide batches with
    /// `gemv_wide_workgroup`; else the workgroup-memory GEMV.
    pub fn buffer_gemv_entry(&self, cols: usize) -> Entry {
        if self.subgroups && !(self.gemv_wide_workgroup && GemvRows::is_wide(cols)) {
            Entry::GemvSubgroup
        } else {
            Entry::Gemv
        }
    }

    /// The best configuration for `device` with the fixed GEMV rows (no tuning applied).
    pub fn untuned(device: &wgpu::Device) -> Self {
        Self::untuned_for(&AdapterProfile::of(device))
    }

    /// [`Self::untuned`] for an adapter profile: every per-adapter default lives here.
    pub fn untuned_for(adapter: &AdapterProfile) -> Self {
        let subgroups = adapter.has(wgpu::Features::SUBGROUP);
        let cpu = adapter.is_cpu();
        let texture_gemv = uses_textures_on(adapter);
        // Long x in a storage buffer from Mesa 26 (see `texture_x_storage`); 23-25 unmeasured.
        let texture_x_storage = texture_gemv && adapter.mesa_major().is_some_and(|v| v >= 26);
        KernelConfig {
            subgroups,
            // GEMV blocks beat the tiled GEMM on CPU adapters with the texture GEMV or with
            // subgroup reductions; the workgroup-memory GEMV alone is ~8x slower than the
            // tiled kernel on lavapipe.
            tiled_gemm: !(cpu && (subgroups || texture_gemv)),
            texture_gemv,
            texture_x_storage,
            // lavapipe's cooperative matrices (Mesa 25.1+) run the tensor-core GEMM about
            // 2x slower than its GEMV blocks (q4_0 1024x4096, 64 columns: 105 vs 48 ms).
            coop_matrix: !cpu && coop_gemm(adapter).is_ok(),
            coop_wide_tile: false,
            // Hardware GPUs hide latency with many lane groups in flight (GPU_GEMV_ROWS);
            // CPU adapters keep the entries' fixed rows.
            gemv_rows: if cpu {
                GemvRows::default()
            } else {
                GPU_GEMV_ROWS
            },
            gemv_steps: if cpu {
                GemvSteps::default()
            } else {
                GemvSteps::fixed(GPU_GEMV_STEPS)
            },
            gemv_unroll: None,
            gemv_wide_workgroup: !cpu,
            act: ActType::preferred_on(adapter),
        }
    }
}

/// Weight rows per GEMV lane group on hardware GPUs when the tuner has not run. A GPU hides
/// memory latency with many subgroups in flight: few rows per subgroup give more of them
/// (CPU adapters keep [`Entry::default_gemv_rows`]: fewer, longer invocations suit them).
/// The tuner on an H100 (q4_0, 4096 x 4096): 2 and 4 rows tie at one column, 4 is best at
/// eight (121 us against 137 for 2 and 178 for 1).
pub const GPU_GEMV_ROWS: GemvRows = GemvRows {
    narrow: Some(2),
    wide: Some(4),
};

/// x vec4s per lane per chunk of codes in the buffer GEMVs on hardware GPUs when the tuner
/// has not run ([`KernelConfig::gemv_steps`]). With a whole chunk per lane, the x loads of
/// a 32-lane subgroup each touch 32 cache lines for 4-bit codes (a chunk covers 128 bytes of
/// f32 x), and those loads bound the 4-bit GEMVs. Measured on an H100 (16384 x 8192,
/// n = 1): Q4_0 took 88.0 us with 8 steps per lane (one lane per chunk), 55.7 with 4 and
/// 77.9 with 2; Q8_0, whose chunks hold 4 steps, slowed when split further: 67.9 us with 4,
/// 75.2 with 2, 88.5 with 1.
pub const GPU_GEMV_STEPS: u32 = 4;

/// Check one [`GemvSteps`] setting: a power of two in 1..=[`GEMV_MAX_STEPS`].
pub fn validate_gemv_steps(steps: Option<u32>) -> crate::Result<()> {
    match steps {
        Some(s) if !(s.is_power_of_two() && s <= GEMV_MAX_STEPS) => {
            Err(crate::Error::InvalidArgument(format!(
                "GEMV steps per lane = {s} is not a power of two in 1..={GEMV_MAX_STEPS}"
            )))
        }
        _ => Ok(()),
    }
}

/// The fewest lanes a lane group of GEMV `entry` has on the adapter `info`: its smallest
/// subgroup size for the subgroup GEMV (4, WebGPU's minimum, where the adapter does not
/// say; at most the workgroup size), one for the texture GEMV, the workgroup for the other.
pub fn gemv_min_lanes(entry: Entry, info: &wgpu::AdapterInfo) -> u32 {
    match entry {
        Entry::GemvSubgroup => info.subgroup_min_size.clamp(4, GEMV_WG_SIZE),
        e if e.reads_textures() => 1,
        _ => GEMV_WG_SIZE,
    }
}

/// The lanes per chunk (`SPLIT`) a GEMV `entry` for `format` runs with, given the steps per
/// lane setting and the fewest lanes a lane group of the entry can have (`min_lanes`: the
/// device's smallest subgroup size for the subgroup GEMV): the format's steps per chunk
/// (`WORD_VALUES`) over the setting, at least 1 and at most `min_lanes`. The split must
/// divide both the chunk's steps and every lane group's size; all are powers of two, so
/// the caps suffice. The texture GEMV's lane groups are single invocations: always 1.
pub fn gemv_split(entry: Entry, format: Format, steps: Option<u32>, min_lanes: u32) -> u32 {
    let Some(steps) = steps.filter(|_| !entry.reads_textures()) else {
        return 1;
    };
    let chunk_steps = format.codec().word_values() as u32;
    (chunk_steps / steps.max(1)).clamp(1, min_lanes.max(1))
}

/// The rows per invocation the texture GEMV runs for `format` and `cols` columns, given the
/// rows setting `rows` ([`GemvRows::rows`]): twice that where the format's decoding leaves
/// room, at most 16 at one column (the light formats, with texel-shared params) and 8 at
/// 3-4 columns (all but the table formats); else the setting.
///
/// Each invocation fetches x once for all its rows, and on lavapipe every texel fetch is a
/// gather of its own (q4_0 at 4096 x 4096 on one thread: 5.1 ms, 4.1 without any x fetch),
/// so more rows mean fewer x fetches per weight, until the rows' codes, params and
/// accumulators no longer unroll into registers and the kernel runs 2-3x slower. One
/// thread, 4096 x 4096 (BENCHMARKS, "lavapipe: more rows per invocation"):
/// - one column, 8 -> 16 rows: q4_0 5.15 -> 4.52 ms, q4_1 5.52 -> 4.81, q8_0 6.96 -> 6.02,
///   q4_k 5.40 -> 4.84, int4 g128 4.98 -> 4.33, int8 g128 7.53 -> 5.98, tq2_0 3.85 -> 3.24,
///   (nf4 28.2 -> 24.5, but 10.0 at 4 rows, below); the others 1.2-3x slower (iq4_nl 7.5
///   -> 22.4, q6_k 10.6 -> 28.6, b1 g128 3.3 -> 3.9), and every format at two columns (q4_0
///   6.8 -> 23.0 ms);
/// - 3-4 columns, 4 -> 8 rows: 4 columns q4_0 11.8 -> 9.0 ms, q8_0 14.1 -> 11.0, q6_k 17.1
///   -> 14.1, f32 17.6 -> 15.3, 3 columns q4_0 9.9 -> 7.6, f32 16.1 -> 14.2, every format but
///   the table ones (iq4_nl, mxfp4, nf4 at 4 columns: 14-16 -> 37-39 ms); at 5 columns all
///   but q5_k were faster (q5_k 20.1 -> 49.1), at 6 q5_0 and q6_k 2-3x slower, at 8 nearly
///   all.
///
/// nf4 runs at most [`NF4_TEXTURE_GEMV_ROWS`] at any width: its table lookups (vec4
/// selects) of more rows do not fit registers (one thread, 4096 x 4096, one column: 2 rows
/// 12.3 ms, 4 rows 10.0, 8 rows 27.9, 16 rows 24.7; two columns: 4 rows 12.2, 8 rows 29.2).
///
/// Only `lanes_partial` (formats with [`param_texel_chunks`] > 0) holds more than
/// [`GEMV_MAX_ROWS`] rows.
pub fn texture_gemv_rows(format: Format, cols: usize, rows: u32) -> u32 {
    let t = TextureGemvFormat::of(format);
    if let Some(cap) = t.max_rows {
        let raised = if cols == 1 { 2 * rows } else { rows };
        return raised.min(cap);
    }
    let most = match cols {
        1 if t.light && param_texel_chunks(format) > 0 => GEMV_LANES_MAX_ROWS,
        3..=4 if !t.table_lookup => GEMV_MAX_ROWS,
        _ => return rows,
    };
    (2 * rows).min(most).max(rows)
}

/// When the texture GEMV (CPU adapters) splits a batch into dispatches of 4 columns
/// ([`texture_gemv_cols`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FourColumns {
    /// Whatever the row length: the format decodes cheaply enough that reading its weights
    /// twice costs less than the 4 extra rows per invocation gain.
    Always,
    /// Only where 8 columns of x miss the uniform buffer (x would otherwise come from a
    /// texture).
    WhereXMissesUniform,
    /// Never: up to 8 columns per invocation.
    Never,
}

/// How the texture GEMV treats one format: the measured per-format exceptions of
/// [`texture_gemv_rows`] and [`texture_gemv_cols`], as one table ([`TextureGemvFormat::of`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextureGemvFormat {
    /// Decoding light enough for 16 rows per invocation at one column (where its params
    /// come a texel for several chunks).
    pub light: bool,
    /// Decoded through table lookups: no 8 rows at 3-4 columns.
    pub table_lookup: bool,
    /// Rows per invocation at most, at any width, raised only at one column (nf4).
    pub max_rows: Option<u32>,
    pub four_columns: FourColumns,
}

impl TextureGemvFormat {
    /// The row of `format` (measurements beside [`texture_gemv_rows`] and
    /// [`texture_gemv_cols`]).
    pub fn of(format: Format) -> Self {
        use FourColumns::{Always, Never, WhereXMissesUniform as XMisses};
        let row = |light, table_lookup, four_columns| TextureGemvFormat {
            light,
            table_lookup,
            max_rows: None,
            four_columns,
        };
        match format {
            Format::Q4_0 | Format::Q4_1 | Format::Q4_K | Format::TQ1_0 | Format::TQ2_0 => {
                row(true, false, Always)
            }
            Format::Int(f) if f.bits <= 4 => row(true, false, Always),
            Format::Int(_) | Format::Q8_0 => row(true, false, XMisses),
            Format::Binary(_) => row(false, false, Always),
            // Measured like the int formats of their code width (BENCHMARKS, 2:4 sparse).
            Format::Sparse24(f) if f.bits <= 4 => row(false, false, Always),
            Format::Sparse24(_) => row(false, false, XMisses),
            Format::Q5_0 | Format::Q5_1 | Format::Q5_K | Format::Q2_K | Format::Q6_K => {
                row(false, false, XMisses)
            }
            Format::IQ4_NL | Format::MXFP4 => row(false, true, Never),
            Format::NF4 => TextureGemvFormat {
                max_rows: Some(NF4_TEXTURE_GEMV_ROWS),
                ..row(false, true, Never)
            },
            Format::F32 => row(false, false, Never),
        }
    }
}

/// Most rows per invocation of the texture GEMV for nf4 ([`texture_gemv_rows`]).
pub const NF4_TEXTURE_GEMV_ROWS: u32 = 4;

/// Columns per invocation of the texture GEMV for a batch of `n` columns of `format`:
/// at most 4 where two dispatches of 4 columns (8 rows per invocation, see
/// [`texture_gemv_rows`]) beat one of 8 (4 rows), else up to [`GEMV_MAX_COLS`].
/// `x8_uniform`: 8 columns of x fit the uniform buffer ([`X_UNIFORM_BYTES`](crate::gpu::shaders::X_UNIFORM_BYTES)), else a
/// batch of 5-8 columns would read x from a texture, which 4 columns at a time avoid up
/// to k = 4096. Used where long x goes into a texture; with
/// [`KernelConfig::texture_x_storage`] the kernels keep up to 8 columns instead.
///
/// Each narrower dispatch reads the weights again, so only formats that decode cheaply
/// gain. One thread, Mesa 22.3, 4-column split against one dispatch (BENCHMARKS, "lavapipe:
/// four columns per dispatch"):
/// - 4096 x 4096 (x of 5-8 columns in a texture): n = 8 q4_0 24.9 -> 18.0 ms, q8_0 28.4 ->
///   22.1, int4 g128 24.5 -> 17.7, q5_k 27.8 -> 23.4; n = 5 q4_0 16.9 -> 13.3; slower for
///   f32 (n = 5 22.3 -> 28.5, the weights stream twice) and the table formats; q6_k, slower
///   too until its params came a texel per chunk, since then n = 8 26.6 -> 20.5-20.8, n = 5
///   18.1-19.2 -> 16.4-16.7;
/// - 8192 x 2048 (x of 8 columns in a uniform): n = 8 q4_0 20.6 -> 18.0, int4 g128 20.4 ->
///   17.6, tq2_0 19.3 -> 15.5, but q8_0 and int8 about even (n = 5 3% slower) and q5_0, q5_k,
///   q6_k, the table formats and f32 slower (f32 n = 5 19.4 -> 29.4; since q5_0, q5_k and
///   q6_k fetch a params texel per chunk, n = 8 about 5% faster, n = 5 slower: kept).
pub fn texture_gemv_cols(format: Format, n: usize, x8_uniform: bool) -> usize {
    let narrow = match TextureGemvFormat::of(format).four_columns {
        FourColumns::Always => true,
        FourColumns::WhereXMissesUniform => !x8_uniform,
        FourColumns::Never => false,
    };
    n.min(if narrow { 4 } else { GEMV_MAX_COLS as usize })
}

/// The chunks per row each lane of GEMV `entry` loads before computing (`UNROLL`) on a
/// hardware GPU (`gpu`) or CPU adapter, for `rows` rows per lane group and the setting
/// [`KernelConfig::gemv_unroll`], at most [`GEMV_MAX_LOADS`] / rows. The default on GPUs
/// keeps 8 chunk loads in flight per lane (at most 4 chunks per row): a lane group keeps
/// 16 bytes x rows x UNROLL x lanes / split of loads in flight and there are m / rows of
/// them, so a whole GEMV keeps 512 bytes x m x UNROLL / split in flight on 32-lane
/// subgroups, whatever the rows. On an H100 it helped little at m = 4096 (Q4_0 39.6 -> 36.7
/// us at 4096x14336; f32 95.9 -> 91.9): that shape is bound by its few, long lane groups.
/// CPU adapters default to 1: memory parallelism is not what limits lavapipe, and it
/// compiles the general loop several times slower (see `shaders/gemv.wgsl`). The texture
/// GEMV (one invocation per row group) always runs 1.
pub fn gemv_unroll(entry: Entry, rows: u32, setting: Option<u32>, gpu: bool) -> u32 {
    if entry.reads_textures() {
        return 1;
    }
    let most = (GEMV_MAX_LOADS / rows.max(1)).clamp(1, GEMV_MAX_UNROLL);
    let default = if gpu { most } else { 1 };
    setting.unwrap_or(default).clamp(1, most)
}

/// Check a [`KernelConfig::gemv_unroll`] setting: 1..=[`GEMV_MAX_UNROLL`].
pub fn validate_gemv_unroll(unroll: Option<u32>) -> crate::Result<()> {
    match unroll {
        Some(u) if !(1..=GEMV_MAX_UNROLL).contains(&u) => Err(crate::Error::InvalidArgument(
            format!("GEMV chunks loaded ahead = {u} is outside 1..={GEMV_MAX_UNROLL}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::shaders::gemv_rows_limit;

    #[test]
    fn gemv_split_divides_steps_and_lanes() {
        let q4 = Format::Q4_0;
        assert_eq!(gemv_split(Entry::GemvSubgroup, q4, None, 32), 1);
        assert_eq!(gemv_split(Entry::GemvSubgroup, q4, Some(4), 32), 2);
        assert_eq!(gemv_split(Entry::GemvSubgroup, q4, Some(1), 32), 8);
        assert_eq!(gemv_split(Entry::GemvSubgroup, q4, Some(1), 4), 4);
        assert_eq!(gemv_split(Entry::Gemv, Format::Q8_0, Some(4), 64), 1);
        assert_eq!(gemv_split(Entry::Gemv, Format::Q8_0, Some(1), 64), 4);
        assert_eq!(gemv_split(Entry::Gemv, Format::F32, Some(1), 64), 1);
        assert_eq!(gemv_split(Entry::Gemv, Format::Q2_K, Some(4), 64), 4);
        assert_eq!(gemv_split(Entry::GemvLanes, q4, Some(1), 64), 1);
        for s in [1, 2, 4, 8] {
            assert!(validate_gemv_steps(Some(s)).is_ok());
        }
        for s in [0, 3, 16] {
            assert!(validate_gemv_steps(Some(s)).is_err());
        }
    }

    #[test]
    fn texture_gemv_rows_stay_within_the_kernels_limits() {
        let mut raised = Vec::new();
        for format in Format::all() {
            for entry in Entry::ALL.into_iter().filter(|e| e.is_gemv()) {
                for cols in 1..=GEMV_MAX_COLS as usize {
                    for setting in [None].into_iter().chain((1..=GEMV_MAX_ROWS).map(Some)) {
                        let rows = GemvRows {
                            narrow: setting,
                            wide: setting,
                        };
                        let (r, set) = (rows.rows_for(entry, format, cols), rows.rows(entry, cols));
                        assert!(r <= gemv_rows_limit(entry, format), "{format} {entry:?}");
                        if format == Format::NF4 && entry.reads_textures() {
                            assert!(r <= NF4_TEXTURE_GEMV_ROWS, "{cols} {setting:?}");
                            assert!(r >= set.min(NF4_TEXTURE_GEMV_ROWS), "{cols} {setting:?}");
                            continue;
                        }
                        assert!(r >= set && r <= 2 * set, "{format} {entry:?} {cols}");
                        if r > set {
                            assert!(entry.reads_textures(), "{format} {entry:?}");
                            assert!(cols == 1 || (3..=4).contains(&cols), "{format} {cols}");
                            assert!(cols == 1 || r <= GEMV_MAX_ROWS, "{format} {cols}");
                            raised.push(format);
                        }
                    }
                }
            }
        }
        // The defaults: 16 rows at one column for q4_0, 8 for q6_k (no texel-shared params)
        // and iq4_nl (its table lookups do not fit 16 rows' registers); 8 at two columns;
        // 8 at 3-4 columns but for the table formats, 4 above.
        let rows = |f, cols| GemvRows::default().rows_for(Entry::GemvLanes, f, cols);
        let (q4, q6, iq4) = (Format::Q4_0, Format::Q6_K, Format::IQ4_NL);
        assert_eq!((rows(q4, 1), rows(q6, 1), rows(iq4, 1)), (16, 8, 8));
        assert_eq!((rows(q4, 2), rows(q6, 2), rows(iq4, 2)), (8, 8, 8));
        assert_eq!((rows(q4, 4), rows(q6, 3), rows(iq4, 4)), (8, 8, 4));
        assert_eq!((rows(q4, 5), rows(q6, 8), rows(Format::F32, 8)), (4, 4, 4));
        assert!(raised.contains(&Format::F32) && raised.contains(&Format::Q6_K));
        // nf4: 4 rows at every width by default, 2 from a setting of 1 at one column.
        let nf4 = |cols| rows(Format::NF4, cols);
        assert_eq!([1, 2, 3, 4, 8].map(nf4), [4; 5]);
        let one = GemvRows {
            narrow: Some(1),
            wide: Some(1),
        };
        assert_eq!(one.rows_for(Entry::GemvLanes, Format::NF4, 1), 2);
    }
}
