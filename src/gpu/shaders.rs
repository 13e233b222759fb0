//! Shader composition: a kernel module is `common.wgsl`, then where its operands live
//! (`weights_buffer.wgsl` and the activation type's file, `act_f32.wgsl` or `act_f16.wgsl`,
//! which declare x and y and define `load_x4` and `store_y`; for the texture GEMV
//! `io_texture.wgsl` and `x_texture.wgsl` or `x_uniform.wgsl`), then the format's WGSL file,
//! then the entry point's files, concatenated in that order; an f16 module starts with
//! `enable f16;`. Variants differ by pipeline override
//! constants: the format's layout constants from its codec, plus the GEMV column and row
//! counts.

use crate::format::Format;

const COMMON: &str = include_str!("../../shaders/common.wgsl");
const WEIGHTS_BUFFER: &str = include_str!("../../shaders/weights_buffer.wgsl");
const IO_TEXTURE: &str = include_str!("../../shaders/io_texture.wgsl");
const X_TEXTURE: &str = include_str!("../../shaders/x_texture.wgsl");
const X_UNIFORM: &str = include_str!("../../shaders/x_uniform.wgsl");
const X_STORAGE: &str = include_str!("../../shaders/x_storage.wgsl");
const X_COPY: &str = include_str!("../../shaders/x_copy.wgsl");
/// Texels per row of the folded textures (`TEXTURE_WIDTH` in `shaders/io_texture.wgsl` and
/// `shaders/x_copy.wgsl`): plane element i sits at (i % width, i / width).
pub const TEXTURE_WIDTH: u32 = 4096;
const ACT_F32: &str = include_str!("../../shaders/act_f32.wgsl");
const ACT_F16: &str = include_str!("../../shaders/act_f16.wgsl");
const GEMV_CORE: &str = include_str!("../../shaders/gemv.wgsl");
const GEMM_SLICES: &str = include_str!("../../shaders/gemm_slices.wgsl");
const WORKGROUP_SUM: &str = include_str!("../../shaders/workgroup_sum.wgsl");
const GEMM_COOP: &str = include_str!("../../shaders/gemm_coop.wgsl");
// The tensor-core GEMM's fragment shape (gemm_coop.wgsl uses FRAG and these types).
const COOP_FRAGMENT_16: &str = "const FRAG: u32 = 16u;
alias FragA = coop_mat16x16<f16, A>;
alias FragB = coop_mat16x16<f16, B>;
alias FragC = coop_mat16x16<f32, C>;
";
const COOP_FRAGMENT_8: &str = "const FRAG: u32 = 8u;
alias FragA = coop_mat8x8<f16, A>;
alias FragB = coop_mat8x8<f16, B>;
alias FragC = coop_mat8x8<f32, C>;
";

/// A kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelKind {
    /// Matrix-vector product for batches of 1..=8 activation rows.
    Gemv,
    /// Matrix-matrix product for larger batches.
    Gemm,
    /// Weights to f32.
    Dequantize,
}

impl KernelKind {
    pub const ALL: [KernelKind; 3] = [KernelKind::Gemv, KernelKind::Gemm, KernelKind::Dequantize];

    /// The family's name (the entry point of its portable variant).
    pub fn entry_point(self) -> &'static str {
        match self {
            KernelKind::Gemv => "gemv",
            KernelKind::Gemm => "gemm",
            KernelKind::Dequantize => "dequantize",
        }
    }

    /// The portable entry (no optional features) of this family.
    pub fn entry(self) -> Entry {
        match self {
            KernelKind::Gemv => Entry::Gemv,
            KernelKind::Gemm => Entry::Gemm,
            KernelKind::Dequantize => Entry::Dequantize,
        }
    }

    /// The most workgroup memory any of the family's entry points declares, in bytes, not
    /// counting the cooperative-matrix GEMM (built only where the device offers it, and
    /// checked against the device on its own).
    pub fn workgroup_memory_bytes(self) -> u32 {
        Entry::ALL
            .iter()
            .filter(|e| e.kind() == self && !e.needs_cooperative_matrix())
            .map(|e| e.workgroup_memory_bytes())
            .max()
            .unwrap_or(0)
    }

    /// Invocations per workgroup (kept in step with its WGSL).
    pub fn invocations(self) -> u32 {
        match self {
            KernelKind::Gemv | KernelKind::Dequantize => 64,
            KernelKind::Gemm => 256,
        }
    }
}

/// One compiled entry point: a module of its own (subgroup builtins only appear in modules
/// built for devices with `Features::SUBGROUP`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Entry {
    /// GEMV reduced through workgroup memory (any device).
    Gemv,
    /// GEMV reduced with subgroupAdd, no workgroup memory or barriers (`Features::SUBGROUP`).
    GemvSubgroup,
    /// GEMV with one invocation per row group, reading weights and x from textures
    /// (CPU adapters).
    GemvLanes,
    /// The texture GEMV with x in a uniform buffer ([`X_UNIFORM_BYTES`]), for rows of x
    /// short enough: [`KernelConfig::gemv_entry`] names [`Entry::GemvLanes`] and the kernels
    /// pick this variant per matmul.
    GemvLanesUniformX,
    /// The texture GEMV with x in a storage buffer, for rows of x too long for the uniform
    /// buffer where [`KernelConfig::texture_x_storage`] says so (else x goes into a texture).
    GemvLanesStorageX,
    /// Workgroup-memory tiled GEMM.
    Gemm,
    /// Tensor-core GEMM: f16 tiles in workgroup memory, 16x16x16 cooperative-matrix
    /// multiply-accumulate in f32 (`Features::EXPERIMENTAL_COOPERATIVE_MATRIX` and
    /// `SHADER_F16`, subgroups of one size: see [`coop_entry`](super::coop_entry)).
    GemmCoop16,
    /// The tensor-core GEMM with 8x8x8 fragments (lavapipe, subgroups of 8).
    GemmCoop8,
    /// Weights to f32.
    Dequantize,
    /// Selected rows to f32 (embedding lookup); shares the dequantize module's source.
    GatherRows,
}

impl Entry {
    pub const ALL: [Entry; 10] = [
        Entry::Gemv,
        Entry::GemvSubgroup,
        Entry::GemvLanes,
        Entry::GemvLanesUniformX,
        Entry::GemvLanesStorageX,
        Entry::Gemm,
        Entry::GemmCoop16,
        Entry::GemmCoop8,
        Entry::Dequantize,
        Entry::GatherRows,
    ];

    /// The entry point's name.
    pub fn entry_point(self) -> &'static str {
        match self {
            Entry::Gemv => "gemv",
            Entry::GemvSubgroup => "gemv_subgroup",
            Entry::GemvLanes | Entry::GemvLanesUniformX | Entry::GemvLanesStorageX => "gemv_lanes",
            Entry::Gemm => "gemm",
            Entry::GemmCoop16 | Entry::GemmCoop8 => "gemm_coop",
            Entry::Dequantize => "dequantize",
            Entry::GatherRows => "gather_rows",
        }
    }

    /// The family it belongs to.
    pub fn kind(self) -> KernelKind {
        match self {
            Entry::Gemv | Entry::GemvSubgroup => KernelKind::Gemv,
            Entry::GemvLanes | Entry::GemvLanesUniformX | Entry::GemvLanesStorageX => {
                KernelKind::Gemv
            }
            Entry::Gemm | Entry::GemmCoop16 | Entry::GemmCoop8 => KernelKind::Gemm,
            Entry::Dequantize | Entry::GatherRows => KernelKind::Dequantize,
        }
    }

    /// Whether the module uses subgroup builtins.
    pub fn needs_subgroups(self) -> bool {
        matches!(self, Entry::GemvSubgroup)
    }

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

    /// The most weight rows per lane group the entry accepts: GEMV_SHARED_MAX_ROWS for the
    /// workgroup-memory GEMV, GEMV_MAX_ROWS for the others (and for non-GEMV entries,
    /// which ignore it).
    pub fn max_gemv_rows(self) -> u32 {
        match self {
            Entry::Gemv => GEMV_SHARED_MAX_ROWS,
            _ => GEMV_MAX_ROWS,
        }
    }

    /// Whether the module reads its weights from textures (`io_texture.wgsl`; x from a
    /// texture, a uniform buffer or a storage buffer) rather than storage buffers: the
    /// texture GEMV.
    pub fn reads_textures(self) -> bool {
        matches!(
            self,
            Entry::GemvLanes | Entry::GemvLanesUniformX | Entry::GemvLanesStorageX
        )
    }

    /// Whether the module uses cooperative matrices and f16 (its source starts with their
    /// `enable` directives).
    pub fn needs_cooperative_matrix(self) -> bool {
        self.coop_fragment().is_some()
    }

    /// The edge of the tensor-core GEMM's square cooperative-matrix fragments, `None` for
    /// other entries.
    pub fn coop_fragment(self) -> Option<u32> {
        match self {
            Entry::GemmCoop16 => Some(16),
            Entry::GemmCoop8 => Some(8),
            _ => None,
        }
    }

    /// Whether the GEMV overrides (`N_COLS`, `ROWS`) apply.
    pub fn is_gemv(self) -> bool {
        self.kind() == KernelKind::Gemv
    }

    fn sources(self) -> &'static [&'static str] {
        match self {
            Entry::Gemv => &[
                GEMV_CORE,
                WORKGROUP_SUM,
                include_str!("../../shaders/gemv_shared.wgsl"),
            ],
            Entry::GemvSubgroup => &[GEMV_CORE, include_str!("../../shaders/gemv_subgroup.wgsl")],
            Entry::GemvLanes | Entry::GemvLanesUniformX | Entry::GemvLanesStorageX => {
                &[GEMV_CORE, include_str!("../../shaders/gemv_lanes.wgsl")]
            }
            Entry::Gemm => &[GEMM_SLICES, include_str!("../../shaders/gemm.wgsl")],
            Entry::GemmCoop16 => &[GEMM_SLICES, COOP_FRAGMENT_16, GEMM_COOP],
            Entry::GemmCoop8 => &[GEMM_SLICES, COOP_FRAGMENT_8, GEMM_COOP],
            Entry::Dequantize | Entry::GatherRows => {
                &[include_str!("../../shaders/dequantize.wgsl")]
            }
        }
    }

    /// Workgroup memory the entry declares, in bytes (kept in step with its WGSL).
    pub fn workgroup_memory_bytes(self) -> u32 {
        match self {
            Entry::Gemv => GEMV_WG_SIZE * WORKGROUP_SUM_VALUES * 4,
            Entry::GemvSubgroup
            | Entry::GemvLanes
            | Entry::GemvLanesUniformX
            | Entry::GemvLanesStorageX => 0,
            Entry::Dequantize | Entry::GatherRows => 0,
            Entry::Gemm => 2 * 32 * 64 * 4,
            // f16 weight and activation tiles (rows padded to 40; the activations' sized for
            // the wide tile), one f32 fragment per subgroup.
            Entry::GemmCoop16 | Entry::GemmCoop8 => {
                let f = self.coop_fragment().unwrap_or(0);
                let (m, n) = super::coop_tile(f, true);
                (m + n) as u32 * 40 * 2 + super::COOP_WARPS * f * f * 4
            }
        }
    }
}

/// The element type of a matmul's activations `x` and outputs `y`. Either way the kernels
/// widen x to f32 and accumulate in f32; f16 halves the activation traffic and rounds each
/// output to f16 once (see `docs/ACCURACY.md` for the error bound).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ActType {
    /// IEEE binary32 (any device).
    #[default]
    F32,
    /// IEEE binary16, little-endian (needs `Features::SHADER_F16`).
    F16,
}

impl ActType {
    pub const ALL: [ActType; 2] = [ActType::F32, ActType::F16];

    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            ActType::F32 => 4,
            ActType::F16 => 2,
        }
    }

    /// `"f32"` or `"f16"`.
    pub fn name(self) -> &'static str {
        match self {
            ActType::F32 => "f32",
            ActType::F16 => "f16",
        }
    }

    /// Whether kernels with this activation type can run on `device`.
    pub fn supported_by(self, device: &wgpu::Device) -> bool {
        match self {
            ActType::F32 => true,
            ActType::F16 => device.features().contains(wgpu::Features::SHADER_F16),
        }
    }

    /// The activation type that suits `device`: f16 where it has `Features::SHADER_F16` and is
    /// not a CPU adapter, f32 everywhere else. CPU adapters (lavapipe) offer the feature but
    /// emulate f16 arithmetic, so the conversions cost more than the halved traffic saves.
    pub fn preferred_for(device: &wgpu::Device) -> Self {
        let cpu = device.adapter_info().device_type == wgpu::DeviceType::Cpu;
        if !cpu && ActType::F16.supported_by(device) {
            ActType::F16
        } else {
            ActType::F32
        }
    }

    fn source(self) -> &'static str {
        match self {
            ActType::F32 => ACT_F32,
            ActType::F16 => ACT_F16,
        }
    }

    /// The texture GEMV's outputs of this type (`y` and `store_y`).
    fn texture_y_source(self) -> &'static str {
        match self {
            ActType::F32 => include_str!("../../shaders/y_f32.wgsl"),
            ActType::F16 => include_str!("../../shaders/y_f16.wgsl"),
        }
    }

    /// The WGSL module that copies x of this type to where the texture GEMV reads it, as
    /// f32 (entry points `x_to_texture` and `x_to_buffer`).
    pub fn x_copy_wgsl(self) -> String {
        let x_in = match self {
            ActType::F32 => include_str!("../../shaders/x_in_f32.wgsl"),
            ActType::F16 => include_str!("../../shaders/x_in_f16.wgsl"),
        };
        format!("{x_in}\n{X_COPY}")
    }
}

impl std::fmt::Display for ActType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which implementation of each kernel family a [`Kernels`](super::Kernels) builds. [`Kernels::new`](super::Kernels::new) picks
/// it from the device; [`Kernels::with_config`](super::Kernels::with_config) lets tests and benchmarks force one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelConfig {
    /// GEMV lane groups are subgroups reduced with subgroupAdd (needs `Features::SUBGROUP`)
    /// rather than workgroups reduced in workgroup memory (for 3-8 columns see
    /// `gemv_wide_workgroup`).
    pub subgroups: bool,
    /// Batches above [`GEMV_MAX_N`](super::GEMV_MAX_N) use the workgroup-memory tiled GEMM; otherwise the GEMV
    /// kernel in blocks of 8 columns (better where workgroup memory and barriers are slow:
    /// CPU adapters such as lavapipe).
    pub tiled_gemm: bool,
    /// Batches of at least [`COOP_MIN_N`](super::COOP_MIN_N) use the tensor-core GEMM
    /// (cooperative matrices: needs `Features::EXPERIMENTAL_COOPERATIVE_MATRIX`, `SHADER_F16`
    /// and subgroups of one size, see [`check_coop_gemm`](super::check_coop_gemm)). Its products
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
    /// The texture GEMV reads x too long for its uniform buffer ([`X_UNIFORM_BYTES`]) from
    /// a storage buffer ([`Entry::GemvLanesStorageX`]) rather than a texture. Which is
    /// faster depends on the driver: on lavapipe with Mesa 26.1 the storage buffer (q4_0
    /// 4096x14336, 4 columns: 49.6 -> 30.6 ms; f32 4096x4096, 8 columns: 72.6 -> 30.1), with
    /// Mesa 22.3 the texture (q4_0 35.6 -> 40.5-43.2 ms). With it the GEMV also keeps up
    /// to 8 columns per invocation instead of [`texture_gemv_cols`]' fours, which paid with
    /// long x in textures only (Mesa 26.1, 8 columns: q4_0 4096x4096 17.5 -> 13.2 ms,
    /// 8192x2048 17.6 -> 13.1; q8_0 4096x14336 78 -> 52). [`KernelConfig::untuned`] sets
    /// it on llvmpipe from Mesa 26 on ([`mesa_major`]); the versions in between are
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
    /// It changes no kernel: [`Kernels::matmul`](super::Kernels::matmul) always takes f32
    /// buffers and [`Kernels::matmul_f16`](super::Kernels::matmul_f16) f16 ones; callers that
    /// can produce either (the benchmark) pick by this.
    pub act: ActType,
}

/// Tuned weight rows per GEMV lane group (the `ROWS` override constant), by batch width:
/// `narrow` for 1-2 activation columns, `wide` for 3-8. `None` keeps the entry's fixed
/// default ([`Entry::default_gemv_rows`]). Values must lie in 1..=[`GEMV_MAX_ROWS`]
/// ([`Kernels::with_config`](super::Kernels::with_config) refuses others with
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
/// ([`Kernels::with_config`](super::Kernels::with_config) refuses others with
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

/// Whether weights on `device` get a texture copy for the texture GEMV: on CPU adapters
/// (lavapipe), where a storage-buffer load is a per-lane loop and a texel fetch one gather,
/// so the texture GEMV runs several times faster. Costs a second copy of each weight in
/// (system) memory there.
pub fn uses_textures(device: &wgpu::Device) -> bool {
    device.adapter_info().device_type == wgpu::DeviceType::Cpu
}

impl KernelConfig {
    /// The best configuration for `device`: [`KernelConfig::untuned`] with the GEMV rows
    /// from the autotuner's cache (`wgquant tune`, [`crate::gpu::tune::load`]) where it
    /// holds a valid entry for this adapter, driver and wgquant version and the same GEMV
    /// entry; the fixed defaults otherwise.
    pub fn for_device(device: &wgpu::Device) -> Self {
        let config = Self::untuned(device);
        match super::tune::load(&device.adapter_info()) {
            Some(t) => config.with_tuning(&t),
            None => config,
        }
    }

    /// This configuration with the GEMV choices of `t` (rows, steps where it has them, the
    /// wide bucket's lane group), if `t` tuned the GEMV entry this one runs for one column;
    /// unchanged otherwise.
    pub fn with_tuning(self, t: &super::tune::Tuning) -> Self {
        let mut config = self;
        if t.entry == config.gemv_entry(1) && t.rows.validate().is_ok() {
            config.gemv_rows = t.rows;
            // The cache's steps are validated on loading.
            if let Some(steps) = t.steps {
                config.gemv_steps = steps;
            }
            if t.entry == Entry::GemvSubgroup {
                config.gemv_wide_workgroup = t.wide_entry == Entry::Gemv;
            }
        }
        config
    }

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
        let subgroups = device.features().contains(wgpu::Features::SUBGROUP);
        let cpu = device.adapter_info().device_type == wgpu::DeviceType::Cpu;
        let texture_gemv = uses_textures(device);
        let info = device.adapter_info();
        let texture_x_storage = texture_gemv && mesa_major(&info).is_some_and(|v| v >= 26);
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
            coop_matrix: !cpu && super::check_coop_gemm(device).is_ok(),
            coop_wide_tile: false,
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
            act: ActType::preferred_for(device),
        }
    }
}

/// The major version of the Mesa driver behind `info` (from its driver info, such as "Mesa
/// 26.1.0 (LLVM 19.1.7)"), if it is Mesa.
pub fn mesa_major(info: &wgpu::AdapterInfo) -> Option<u32> {
    mesa_major_in(&format!("{} {}", info.driver, info.driver_info))
}

fn mesa_major_in(driver: &str) -> Option<u32> {
    let (_, rest) = driver.split_once("Mesa ")?;
    rest.split('.').next()?.trim().parse().ok()
}

/// A shader module from wgquant's own WGSL (every module is built here). wgpu's loop bounding
/// is off on hardware GPUs: by default naga gives every loop an extra iteration counter, so
/// that a driver may not assume the loop ends, and with it NVIDIA's compiler does not unroll
/// the loops over rows and columns whose bounds are override constants, so their register
/// arrays fall to local memory (on an H200, GEMVs ran 2.6x (f32) to 5x (Q8_0) slower with
/// it). On CPU adapters it stays on except where `unroll_on_cpu` (the texture GEMV, which
/// lavapipe then runs about twice as fast), since elsewhere lavapipe then unrolls far more
/// and compiles many times slower (the int8 test suite went from 2 to 41 s).
/// Bounds checks and the other runtime checks stay on everywhere.
pub(crate) fn shader_module(
    device: &wgpu::Device,
    label: &str,
    wgsl: String,
    unroll_on_cpu: bool,
) -> wgpu::ShaderModule {
    let cpu = device.adapter_info().device_type == wgpu::DeviceType::Cpu;
    let checks = wgpu::ShaderRuntimeChecks {
        force_loop_bounding: cpu && !unroll_on_cpu,
        ..wgpu::ShaderRuntimeChecks::checked()
    };
    // SAFETY: the one check turned off guards against infinite loops, and every loop in
    // wgquant's shaders ends: each advances its counter by a positive constant or stride
    // (a lane count, subgroup count or grid size, all at least 1) toward a bound from the
    // dims uniform or an override constant, or halves a positive stride down to zero. The
    // dims describe buffers of at most 2^32 bytes, so no counter can wrap past its bound.
    unsafe {
        device.create_shader_module_trusted(
            wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(wgsl.into()),
            },
            checks,
        )
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
/// Most 4-value steps per lane per chunk ([`KernelConfig::gemv_steps`]): a whole chunk of
/// 4-bit codes.
pub const GEMV_MAX_STEPS: u32 = 8;

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

/// Most activation rows one GEMV pipeline handles (`MAX_N` in `shaders/gemv.wgsl`).
pub const GEMV_MAX_COLS: u32 = 8;
/// Most weight rows per GEMV lane group (`MAX_ROWS` in `shaders/gemv.wgsl`), and the most a
/// setting ([`GemvRows`]) may ask for.
pub const GEMV_MAX_ROWS: u32 = 8;
/// Most weight rows per invocation of the texture GEMV (`LANES_MAX_ROWS` in
/// `shaders/gemv_lanes.wgsl`), where it fetches params once per texel
/// ([`param_texel_chunks`] > 0); [`GEMV_MAX_ROWS`] otherwise.
pub const GEMV_LANES_MAX_ROWS: u32 = 16;

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
    if format == Format::NF4 {
        let raised = if cols == 1 { 2 * rows } else { rows };
        return raised.min(NF4_TEXTURE_GEMV_ROWS);
    }
    let light = matches!(
        format,
        Format::Q8_0
            | Format::Q4_0
            | Format::Q4_1
            | Format::Q4_K
            | Format::TQ1_0
            | Format::TQ2_0
            | Format::Int(_)
    );
    let table = matches!(format, Format::IQ4_NL | Format::MXFP4);
    let most = match cols {
        1 if light && param_texel_chunks(format) > 0 => GEMV_LANES_MAX_ROWS,
        3..=4 if !table => GEMV_MAX_ROWS,
        _ => return rows,
    };
    (2 * rows).min(most).max(rows)
}

/// Most rows per invocation of the texture GEMV for nf4 ([`texture_gemv_rows`]).
pub const NF4_TEXTURE_GEMV_ROWS: u32 = 4;

/// Columns per invocation of the texture GEMV for a batch of `n` columns of `format`:
/// at most 4 where two dispatches of 4 columns (8 rows per invocation, see
/// [`texture_gemv_rows`]) beat one of 8 (4 rows), else up to [`GEMV_MAX_COLS`].
/// `x8_uniform`: 8 columns of x fit the uniform buffer ([`X_UNIFORM_BYTES`]), else a
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
    let narrow = match format {
        Format::Q4_0 | Format::Q4_1 | Format::Q4_K | Format::TQ1_0 | Format::TQ2_0 => true,
        Format::Binary(_) => true,
        Format::Int(f) if f.bits <= 4 => true,
        Format::Q8_0
        | Format::Q5_0
        | Format::Q5_1
        | Format::Q5_K
        | Format::Q2_K
        | Format::Q6_K
        | Format::Int(_) => !x8_uniform,
        _ => false,
    };
    n.min(if narrow { 4 } else { GEMV_MAX_COLS as usize })
}

/// The most weight rows per lane group `entry` can run for `format`: [`GEMV_LANES_MAX_ROWS`]
/// for the texture GEMV where it fetches params per texel, else [`Entry::max_gemv_rows`].
pub fn gemv_rows_limit(entry: Entry, format: Format) -> u32 {
    if entry.reads_textures() && param_texel_chunks(format) > 0 {
        GEMV_LANES_MAX_ROWS
    } else {
        entry.max_gemv_rows()
    }
}

/// Bytes of x the texture GEMV reads from a uniform buffer ([`Entry::GemvLanesUniformX`],
/// `X_UNIFORM_VEC4S` vec4s in `shaders/x_uniform.wgsl`), on devices whose uniform bindings
/// take it: a batch runs one dispatch per block of as many columns as fit (whole groups of
/// the GEMV's columns per invocation, [`texture_gemv_cols`], k x 4 bytes each; the columns
/// after the last whole group in a block of their own); where not even one group fits, x
/// goes into a texture.
pub const X_UNIFORM_BYTES: u64 = 64 << 10;

/// Most weight rows per workgroup of the workgroup-memory GEMV (`SHARED_MAX_ROWS`).
pub const GEMV_SHARED_MAX_ROWS: u32 = 4;
/// Values per lane the workgroup-memory lane sums hold (`SUM_VALUES` in
/// `shaders/workgroup_sum.wgsl`): columns x rows of [`Entry::Gemv`] and the int8 GEMV.
pub const WORKGROUP_SUM_VALUES: u32 = 32;
const _: () = assert!(
    GEMV_MAX_COLS * GEMV_SHARED_MAX_ROWS <= WORKGROUP_SUM_VALUES
        && GEMV_MAX_COLS * GEMV_I8_ROWS <= WORKGROUP_SUM_VALUES
);
/// Invocations per workgroup of the texture GEMV (`LANES_WG` in `shaders/gemv_lanes.wgsl`).
pub const GEMV_LANES_WG: u32 = 16;
/// Invocations per GEMV workgroup (`WG_SIZE` in `shaders/gemv.wgsl`).
pub const GEMV_WG_SIZE: u32 = 64;

/// The WGSL source of the portable variant of `kernel` for `format`.
pub fn compose(format: Format, kernel: KernelKind) -> String {
    compose_entry(format, kernel.entry())
}

/// The WGSL source of `entry` for `format` with f32 activations.
pub fn compose_entry(format: Format, entry: Entry) -> String {
    compose_variant(format, entry, ActType::F32)
}

/// The WGSL source of `entry` for `format` with `act` activations and outputs.
pub fn compose_variant(format: Format, entry: Entry, act: ActType) -> String {
    let mut s = String::with_capacity(8192);
    if act == ActType::F16 || entry.needs_cooperative_matrix() {
        // Enable directives must come before any declaration.
        s.push_str("enable f16;\n");
    }
    if entry.needs_cooperative_matrix() {
        s.push_str("enable wgpu_cooperative_matrix;\n");
    }
    s.push_str(COMMON);
    // Each further part under a comment line naming it.
    let mut part = |label: &str, src: &str| {
        s.push_str("\n// ---- ");
        s.push_str(label);
        s.push_str(" ----\n");
        s.push_str(src);
    };
    if entry.reads_textures() {
        part("operands: textures", IO_TEXTURE);
        let (x_name, x_source) = match entry {
            Entry::GemvLanesUniformX => ("uniform buffer", X_UNIFORM),
            Entry::GemvLanesStorageX => ("storage buffer", X_STORAGE),
            _ => ("texture", X_TEXTURE),
        };
        part(&format!("x: {x_name}"), x_source);
        part(&format!("y: {}", act.name()), act.texture_y_source());
    } else {
        part("weights: buffers", WEIGHTS_BUFFER);
        part(&format!("activations: {}", act.name()), act.source());
    }
    part(&format!("format: {format}"), format.codec().wgsl());
    for src in entry.sources() {
        part("kernel", src);
    }
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

/// Chunks of a weight row whose params lie in one 16-byte texel of the params texture
/// (`PARAM_TEXEL_CHUNKS` in `shaders/io_texture.wgsl`), where no chunk's params straddle two
/// texels: the texture GEMV then fetches each row's params once per texel instead of once per
/// chunk (on lavapipe q4_0's per-chunk scale fetch was a third of its GEMV's time). 0 for the
/// formats whose chunks' params straddle texels (q5_0, the k-quants but Q4_K: their textures
/// hold a texel per chunk instead, [`Format::chunk_param_texels`]) or that have none (f32).
/// It assumes what every format's `chunk_params` does: a chunk reads the params of
/// its own block, or of the blocks it spans; `verify` and the kernel tests (every format
/// through the texture GEMV on lavapipe) catch a format that reads others.
pub fn param_texel_chunks(format: Format) -> u32 {
    const TEXEL_HALVES: usize = 8;
    let c = format.codec();
    let (halves, block, chunk) = (c.param_halves(), c.block_values(), 4 * c.word_values());
    // Halves a chunk's params span: its block's (a chunk within a block) or its blocks'.
    let span = if chunk <= block {
        halves
    } else {
        halves * chunk / block
    };
    if span == 0 || !TEXEL_HALVES.is_multiple_of(span) {
        return 0;
    }
    (TEXEL_HALVES * block / (halves * chunk)) as u32
}

/// [`constants`] plus the GEMV overrides: `cols` activation rows per dispatch (1..=8),
/// `rows` weight rows per lane group (1..=8), `split` lanes per chunk ([`gemv_split`]) and
/// the chunks each lane loads ahead ([`gemv_unroll`]), and for the texture GEMV
/// ([`Entry::reads_textures`]) the chunks per params texel ([`param_texel_chunks`]) and
/// whether the params texture holds a texel per chunk (`CHUNK_PARAM_TEXELS`,
/// [`Format::chunk_param_texels`]).
pub fn gemv_constants(
    entry: Entry,
    format: Format,
    cols: u32,
    rows: u32,
    split: u32,
    unroll: u32,
) -> Vec<(&'static str, f64)> {
    assert!((1..=GEMV_MAX_COLS).contains(&cols));
    assert!((1..=gemv_rows_limit(entry, format)).contains(&rows));
    assert!(split.is_power_of_two() && split <= format.codec().word_values() as u32);
    // The texture GEMV loads one chunk per row at a time (UNROLL = 1, gemv_unroll).
    let loads = if entry.reads_textures() { 1 } else { rows };
    assert!((1..=GEMV_MAX_UNROLL).contains(&unroll) && loads * unroll <= GEMV_MAX_LOADS);
    let mut v = constants(format);
    v.push(("N_COLS", cols as f64));
    v.push(("ROWS", rows as f64));
    v.push(("SPLIT", split as f64));
    v.push(("UNROLL", unroll as f64));
    if entry.reads_textures() {
        v.push(("PARAM_TEXEL_CHUNKS", param_texel_chunks(format) as f64));
        let chunk_texels = format.codec().chunk_param_texel().is_some();
        v.push(("CHUNK_PARAM_TEXELS", f64::from(u8::from(chunk_texels))));
    }
    v
}

/// Most chunks per row a GEMV lane loads ahead ([`KernelConfig::gemv_unroll`]).
pub const GEMV_MAX_UNROLL: u32 = 4;
/// Most chunk loads a GEMV lane issues before computing, rows x chunks per row (`MAX_LOADS`
/// in `shaders/gemv.wgsl`).
pub const GEMV_MAX_LOADS: u32 = 8;

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

/// The int8-activation kernels (`shaders/act_quant.wgsl`, `shaders/gemv_i8.wgsl`): modules of
/// `common.wgsl` plus the kernel, without the format's WGSL (they read integer codes directly).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Int8Entry {
    /// Activations to int8 codes and per-group scales (dynamic or static).
    ActQuant,
    /// Int8 x int8 GEMV with i32 accumulation per group of 32.
    GemvI8,
}

impl Int8Entry {
    pub const ALL: [Int8Entry; 2] = [Int8Entry::ActQuant, Int8Entry::GemvI8];

    pub fn entry_point(self) -> &'static str {
        match self {
            Int8Entry::ActQuant => "act_quant",
            Int8Entry::GemvI8 => "gemv_i8",
        }
    }

    /// Workgroup memory the entry declares, in bytes (kept in step with its WGSL).
    pub fn workgroup_memory_bytes(self) -> u32 {
        match self {
            Int8Entry::ActQuant => 64 * 4,
            Int8Entry::GemvI8 => GEMV_WG_SIZE * WORKGROUP_SUM_VALUES * 4,
        }
    }

    /// Invocations per workgroup.
    pub fn invocations(self) -> u32 {
        64
    }

    /// The module's WGSL source.
    pub fn compose(self) -> String {
        let (src, sums) = match self {
            Int8Entry::ActQuant => (include_str!("../../shaders/act_quant.wgsl"), ""),
            Int8Entry::GemvI8 => (include_str!("../../shaders/gemv_i8.wgsl"), WORKGROUP_SUM),
        };
        format!(
            "{COMMON}\n// ---- weights: buffers ----\n{WEIGHTS_BUFFER}\n// ---- activations: f32 ----\n{ACT_F32}\n// ---- kernel ----\n{src}\n{sums}"
        )
    }
}

/// Weight rows per workgroup of the int8-activation GEMV (`ROWS_I8`).
pub const GEMV_I8_ROWS: u32 = 4;

/// Override constants of the int8-activation GEMV for `format` (Q8_0 or symmetric int8 /
/// int4), `cols` activation rows per dispatch, and whether it writes its accumulators.
pub fn gemv_i8_constants(format: Format, cols: u32, debug_acc: bool) -> Vec<(&'static str, f64)> {
    assert!((1..=GEMV_MAX_COLS).contains(&cols));
    let c = format.codec();
    let w_kind = match format {
        Format::Q8_0 => 0,
        Format::Int(f) if f.bits == 8 && !f.asym => 1,
        Format::Int(f) if f.bits == 4 && !f.asym => 2,
        _ => panic!("{format} has no int8-activation kernel"),
    };
    vec![
        ("WORD_VALUES", c.word_values() as f64),
        ("BLOCK_VALUES", c.block_values() as f64),
        ("PARAM_HALVES", c.param_halves() as f64),
        ("W_KIND", w_kind as f64),
        ("N_COLS", cols as f64),
        ("DEBUG_ACC", debug_acc as u32 as f64),
    ]
}

/// Override constants of the activation quantizer.
pub fn act_quant_constants(static_scales: bool) -> Vec<(&'static str, f64)> {
    vec![("STATIC_SCALES", static_scales as u32 as f64)]
}

/// Validate `src` with naga and translate `entry_point` to SPIR-V with `consts` applied (tests).
#[cfg(test)]
pub(crate) fn validate_src(src: &str, entry_point: &str, consts: &[(&'static str, f64)]) {
    let what = format!("{entry_point} {consts:?}");
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(src)));
    let caps = naga::valid::Capabilities::all()
        - naga::valid::Capabilities::SUBGROUP
        - naga::valid::Capabilities::SUBGROUP_BARRIER
        - naga::valid::Capabilities::SUBGROUP_VERTEX_STAGE;
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
        .validate(&module)
        .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(src)));
    let consts: naga::back::PipelineConstants =
        consts.iter().map(|&(k, v)| (k.to_string(), v)).collect();
    let (module, info) =
        naga::back::pipeline_constants::process_overrides(&module, &info, None, &consts)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    let pipeline = naga::back::spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: entry_point.to_string(),
    };
    naga::back::spv::write_vec(&module, &info, &Default::default(), Some(&pipeline))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The naga capabilities a device offering exactly what `entry` with `act` activations
    /// needs would have: subgroups only for subgroup entries, f16 only for f16 activations
    /// and the tensor-core GEMM, cooperative matrices only for the latter.
    fn capabilities(entry: Entry, act: ActType) -> naga::valid::Capabilities {
        use naga::valid::Capabilities as C;
        let mut caps = C::all() - C::COOPERATIVE_MATRIX - C::SHADER_FLOAT16;
        if !entry.needs_subgroups() {
            caps -= C::SUBGROUP | C::SUBGROUP_BARRIER | C::SUBGROUP_VERTEX_STAGE;
        }
        if act == ActType::F16 {
            caps |= C::SHADER_FLOAT16;
        }
        if entry.needs_cooperative_matrix() {
            caps |= C::COOPERATIVE_MATRIX | C::SHADER_FLOAT16;
        }
        caps
    }

    /// Parse, validate (with `caps`), specialise and write SPIR-V: with naga's default
    /// options and with the bounds-check policies wgpu's Vulkan backend uses.
    fn validate_with(
        src: &str,
        entry_point: &str,
        caps: naga::valid::Capabilities,
        consts: &[(&'static str, f64)],
    ) -> Result<(), String> {
        let module = naga::front::wgsl::parse_str(src).map_err(|e| e.emit_to_string(src))?;
        let mut validator = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps);
        if caps.contains(naga::valid::Capabilities::SUBGROUP) {
            validator.subgroup_stages(naga::valid::ShaderStages::COMPUTE);
            validator.subgroup_operations(naga::valid::SubgroupOperationSet::all());
        }
        let info = validator
            .validate(&module)
            .map_err(|e| e.emit_to_string(src))?;
        let consts: naga::back::PipelineConstants =
            consts.iter().map(|&(k, v)| (k.to_string(), v)).collect();
        let (module, info) =
            naga::back::pipeline_constants::process_overrides(&module, &info, None, &consts)
                .map_err(|e| e.to_string())?;
        let pipeline = naga::back::spv::PipelineOptions {
            shader_stage: naga::ShaderStage::Compute,
            entry_point: entry_point.to_string(),
        };
        let restrict = naga::back::spv::Options {
            bounds_check_policies: naga::proc::BoundsCheckPolicies {
                index: naga::proc::BoundsCheckPolicy::Restrict,
                buffer: naga::proc::BoundsCheckPolicy::Restrict,
                image_load: naga::proc::BoundsCheckPolicy::Restrict,
                binding_array: naga::proc::BoundsCheckPolicy::Unchecked,
            },
            ..Default::default()
        };
        for opts in [naga::back::spv::Options::default(), restrict] {
            naga::back::spv::write_vec(&module, &info, &opts, Some(&pipeline))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn validate(format: Format, entry: Entry, act: ActType, consts: &[(&'static str, f64)]) {
        let src = compose_variant(format, entry, act);
        validate_with(&src, entry.entry_point(), capabilities(entry, act), consts)
            .unwrap_or_else(|e| panic!("{format} {entry:?} {act} {consts:?}: {e}"));
    }

    /// Every variant parses, validates, specialises and compiles to SPIR-V with naga: every
    /// format, entry point and activation type, and the GEMV column / row counts and lanes
    /// per chunk at their ends and between.
    #[test]
    fn every_variant_validates_with_naga() {
        for format in Format::all() {
            for entry in Entry::ALL {
                for act in ActType::ALL {
                    if entry.is_gemv() {
                        let settings = [(1, 1, 1), (3, 2, 2), (8, 4, 4), (1, 8, 8), (8, 8, 1)];
                        // The texture GEMV's most rows, where the format allows them.
                        let most = (1, gemv_rows_limit(entry, format), 1);
                        for (cols, rows, steps) in settings.into_iter().chain([(5, 3, 4), most]) {
                            if entry == Entry::Gemv && rows > GEMV_SHARED_MAX_ROWS {
                                continue;
                            }
                            let split = gemv_split(entry, format, Some(steps), GEMV_WG_SIZE);
                            let unroll = gemv_unroll(entry, rows, None, true);
                            let consts = gemv_constants(entry, format, cols, rows, split, unroll);
                            validate(format, entry, act, &consts);
                        }
                    } else {
                        validate(format, entry, act, &constants(format));
                    }
                }
            }
        }
    }

    #[test]
    fn mesa_major_reads_the_driver_info() {
        let major = |driver: &str, info: &str| mesa_major_in(&format!("{driver} {info}"));
        assert_eq!(major("llvmpipe", "Mesa 26.1.0 (LLVM 19.1.7)"), Some(26));
        assert_eq!(major("llvmpipe", "Mesa 22.3.6 (LLVM 15.0.6)"), Some(22));
        assert_eq!(major("NVIDIA", "580.159.04"), None);
        assert_eq!(major("llvmpipe", "Mesa x"), None);
    }

    /// The copies of x to the texture GEMV, for each activation type.
    #[test]
    fn x_copies_validate_with_naga() {
        for act in ActType::ALL {
            let src = act.x_copy_wgsl();
            let enables = src.lines().any(|l| l.starts_with("enable"));
            assert!(!enables, "f16 x is unpacked, not an f16 type");
            for entry_point in ["x_to_texture", "x_to_buffer"] {
                validate_src(&src, entry_point, &[]);
            }
        }
    }

    /// The f16 module starts with its directive and needs the f16 capability.
    #[test]
    fn f16_modules_enable_f16() {
        let src = compose_variant(Format::Q4_0, Entry::Gemv, ActType::F16);
        assert!(src.starts_with("enable f16;"));
        assert!(!compose_entry(Format::Q4_0, Entry::Gemv)
            .lines()
            .any(|l| l.starts_with("enable")));
        let module = naga::front::wgsl::parse_str(&src).unwrap();
        let caps = naga::valid::Capabilities::all() - naga::valid::Capabilities::SHADER_FLOAT16;
        assert!(
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
                .validate(&module)
                .is_err()
        );
    }

    #[test]
    fn int8_activation_kernels_validate_with_naga() {
        use crate::format::IntFormat;
        for st in [false, true] {
            let src = Int8Entry::ActQuant.compose();
            validate_src(&src, "act_quant", &act_quant_constants(st));
        }
        let src = Int8Entry::GemvI8.compose();
        for format in [
            Format::Q8_0,
            Format::Int(IntFormat::new(8, 32, false)),
            Format::Int(IntFormat::new(4, 128, false)),
        ] {
            for (cols, debug) in [(1, false), (3, true), (8, false), (8, true)] {
                validate_src(&src, "gemv_i8", &gemv_i8_constants(format, cols, debug));
            }
        }
        for e in Int8Entry::ALL {
            let module = naga::front::wgsl::parse_str(&e.compose()).unwrap();
            let bytes: u32 = module
                .global_variables
                .iter()
                .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
                .map(|(_, g)| module.types[g.ty].inner.size(module.to_ctx()))
                .sum();
            assert_eq!(bytes, e.workgroup_memory_bytes(), "{e:?}");
        }
        assert!(src.contains(&format!("const ROWS_I8: u32 = {GEMV_I8_ROWS}u;")));
    }

    /// The fake-quantization shader (QAT) parses, validates and compiles to SPIR-V for both
    /// entry points, without subgroups or workgroup memory.
    #[test]
    fn fake_quant_validates_with_naga() {
        use crate::gpu::{FAKE_QUANT_ENTRIES, FAKE_QUANT_WGSL};
        let module = naga::front::wgsl::parse_str(FAKE_QUANT_WGSL).unwrap();
        assert!(!module
            .global_variables
            .iter()
            .any(|(_, g)| g.space == naga::AddressSpace::WorkGroup));
        for name in FAKE_QUANT_ENTRIES {
            assert!(module.entry_points.iter().any(|e| e.name == name), "{name}");
            validate_src(FAKE_QUANT_WGSL, name, &[]);
        }
    }

    #[test]
    fn workgroup_memory_matches_the_wgsl() {
        for entry in Entry::ALL {
            let src = compose_entry(Format::Q4_0, entry);
            let module = naga::front::wgsl::parse_str(&src).unwrap();
            let bytes: u32 = module
                .global_variables
                .iter()
                .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
                .map(|(_, g)| module.types[g.ty].inner.size(module.to_ctx()))
                .sum();
            assert_eq!(bytes, entry.workgroup_memory_bytes(), "{entry:?}");
        }
        for kind in KernelKind::ALL {
            assert!(kind.workgroup_memory_bytes() <= 16 * 1024, "{kind:?}");
        }
    }

    /// The tensor-core GEMM, with either fragment shape, for every format parses, validates
    /// with the cooperative-matrix and f16 capabilities (and not without them), specialises
    /// for subgroups of 8 and 32 and both batch tiles, and compiles to SPIR-V. It declares no
    /// override beyond the format's (the same set as the FMA GEMM), the subgroup size and the
    /// batch tile: every coopLoad /
    /// coopStore stride is a module constant, so one pipeline per format serves every shape
    /// (m, n, k, rows not multiples of the tile included).
    #[test]
    fn gemm_coop_validates_with_naga() {
        let override_names = |src: &str| -> Vec<String> {
            let module = naga::front::wgsl::parse_str(src).unwrap();
            let mut v: Vec<String> = module
                .overrides
                .iter()
                .filter_map(|(_, o)| o.name.clone())
                .collect();
            v.sort();
            v
        };
        for entry in [Entry::GemmCoop16, Entry::GemmCoop8] {
            for format in Format::all() {
                for act in ActType::ALL {
                    for (subgroup, frags) in [(8.0, 2.0), (32.0, 2.0), (8.0, 4.0), (32.0, 4.0)] {
                        let mut consts = constants(format);
                        consts.push(("SUBGROUP", subgroup));
                        consts.push(("WARP_N_FRAGS", frags));
                        validate(format, entry, act, &consts);
                    }
                }
                let mut expected = override_names(&compose_entry(format, Entry::Gemm));
                // The subgroup size, the batch tile's fragments, and what follows from them.
                let coop = ["SUBGROUP", "THREADS", "WARP_N_FRAGS", "WARP_N", "TILE_N"];
                expected.extend(coop.map(String::from));
                expected.sort();
                assert_eq!(
                    override_names(&compose_entry(format, entry)),
                    expected,
                    "{format}"
                );
            }
            let src = compose_entry(Format::Q4_0, entry);
            assert!(src.starts_with("enable f16;\nenable wgpu_cooperative_matrix;\n"));
            let consts = constants(Format::Q4_0);
            assert!(validate_with(
                &src,
                "gemm_coop",
                capabilities(Entry::Gemm, ActType::F32),
                &consts
            )
            .is_err());
            assert!(entry.workgroup_memory_bytes() <= 32 * 1024);
        }
    }

    /// Why the strides are constants: naga 30's SPIR-V writer fails (panics with "Expression
    /// [N] is not cached") on a runtime coopStore stride, here the y row stride.
    #[test]
    fn gemm_coop_runtime_stride_does_not_compile() {
        let constant = "coopStore(c, &c_scratch[scratch], FRAG);";
        let src = compose_entry(Format::Q4_0, Entry::GemmCoop16);
        assert!(src.contains(constant));
        let runtime = src.replace(
            constant,
            "coopStore(c, &c_scratch[scratch], dims.y_stride);",
        );
        let consts = constants(Format::Q4_0);
        let caps = capabilities(Entry::GemmCoop16, ActType::F32);
        let outcome =
            std::panic::catch_unwind(|| validate_with(&runtime, "gemm_coop", caps, &consts));
        assert!(!matches!(outcome, Ok(Ok(()))), "a runtime stride compiled");
    }

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
    fn gemv_constants_match_the_wgsl() {
        let src = compose_entry(Format::Q4_0, Entry::Gemv);
        for (name, value) in [
            ("MAX_N", GEMV_MAX_COLS),
            ("MAX_ROWS", GEMV_MAX_ROWS),
            ("MAX_LOADS", GEMV_MAX_LOADS),
            ("MAX_UNROLL", GEMV_MAX_UNROLL),
            ("SHARED_MAX_ROWS", GEMV_SHARED_MAX_ROWS),
            ("WG_SIZE", GEMV_WG_SIZE),
            ("SUM_VALUES", WORKGROUP_SUM_VALUES),
        ] {
            let line = format!("const {name}: u32 = {value}u;");
            assert!(src.contains(&line), "expected `{line}` in the GEMV WGSL");
        }
        // The texture GEMV and the copy of x into its texture fold planes at the same width.
        let lanes = compose_entry(Format::Q4_0, Entry::GemvLanes);
        let width = format!("const TEXTURE_WIDTH: u32 = {TEXTURE_WIDTH}u;");
        for (what, src) in [("gemv_lanes", &lanes[..]), ("x_copy", X_COPY)] {
            assert!(src.contains(&width), "expected `{width}` in {what}");
        }
        for line in [
            format!("const LANES_WG: u32 = {GEMV_LANES_WG}u;"),
            format!("const LANES_MAX_ROWS: u32 = {GEMV_LANES_MAX_ROWS}u;"),
        ] {
            assert!(
                lanes.contains(&line),
                "expected `{line}` in the texture GEMV"
            );
        }
        // The uniform x binding holds X_UNIFORM_BYTES; the texture variant has no uniform x.
        let uniform_x = compose_entry(Format::Q4_0, Entry::GemvLanesUniformX);
        let line = format!("const X_UNIFORM_VEC4S: u32 = {}u;", X_UNIFORM_BYTES / 16);
        assert!(uniform_x.contains(&line), "expected `{line}`");
        assert!(uniform_x.contains("var<uniform> x_uniform") && !uniform_x.contains("var x_tex"));
        assert!(lanes.contains("var x_tex") && !lanes.contains("var<uniform> x_uniform"));
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

    #[test]
    fn param_texel_chunks_only_where_no_chunk_straddles_a_texel() {
        use crate::format::IntFormat;
        let int = |bits, group, asym| Format::Int(IntFormat::new(bits, group, asym));
        for (format, chunks) in [
            (Format::Q4_0, 8),  // a 16-bit scale per 32-weight chunk: 8 per texel
            (Format::Q8_0, 16), // a scale per 2 chunks of 16 weights
            (Format::Q4_1, 4),  // scale and min: one word per chunk
            (Format::Q5_1, 2),  // scale, min and 32 high bits: two words
            (Format::Q4_K, 8),  // a super-block's 4 words serve its 8 chunks
            (int(4, 128, true), 16),
            (int(8, 128, false), 32),
            (Format::Q5_0, 0), // 3 halves per chunk straddle texels
            (Format::Q5_K, 0),
            (Format::Q6_K, 0),
            (Format::Q2_K, 0),
            (Format::F32, 0), // no params
        ] {
            assert_eq!(param_texel_chunks(format), chunks, "{format}");
        }
    }
}
