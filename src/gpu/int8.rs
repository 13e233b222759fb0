//! W8A8 / W4A8: int8 activation quantization and int8 x int8 GEMV on the GPU.
//!
//! [`Int8Kernels::matmul`] prepares two kernels chained in one compute pass: `act_quant`
//! turns the f32 activations into int8 codes (4 per `u32`) and one f32 scale per row and
//! group of 32 ([`ActQuant::Dynamic`]: per token; [`ActQuant::Static`]: fixed scales from
//! [`crate::quantize::activation::observe`]), then `gemv_i8` sums `dot4I8Packed` products in
//! `i32` per group of 32 and scales each group sum by `s_w * s_x`. Batches above 8 run the
//! GEMV in blocks of 8 columns. Weights: Q8_0 and symmetric int8 / int4 (any group size).
//! The CPU reference is [`crate::quantize::activation`].
//!
//! ```no_run
//! use wgquant::{Format, QuantizedTensor};
//! use wgquant::gpu::{ActQuant, GpuContext, GpuWeight, Int8Kernels};
//! # fn main() -> wgquant::Result<()> {
//! let ctx = GpuContext::from_env()?;
//! let (rows, k, n) = (256, 512, 2);
//! let w = QuantizedTensor::quantize(Format::Q8_0, &vec![0.5; rows * k], rows, k)?;
//! let weight = GpuWeight::upload(&ctx, &w)?;
//! let kernels = Int8Kernels::new(&ctx.device, Format::Q8_0)?;
//! let y = kernels.run_matmul(&ctx, &weight, &vec![1.0; n * k], n, &ActQuant::Dynamic)?;
//! assert_eq!(y.len(), n * rows);
//! # Ok(()) }
//! ```

use super::device::GpuContext;
use super::kernels::{
    check_grid, entry, grid_1d, storage_entry, uniform_entry, Dims, Dispatch, Operand, Step,
};
use super::plan::{check_fits, GEMV_MAX_N};
use super::shaders::{self, Int8Entry, KernelKind, GEMV_I8_ROWS};
use super::tensor::GpuWeight;
use crate::error::{Error, Result};
use crate::format::Format;
use crate::quantize::activation::{
    check_act_k, supports_int8_activations, StaticScales, ACT_GROUP,
};
use std::sync::Mutex;
use wgpu::util::DeviceExt;

/// How activations are quantized before the integer GEMV.
#[derive(Clone, Debug, PartialEq)]
pub enum ActQuant {
    /// Per token: `s = max |x_row| / 127`, computed on the GPU.
    Dynamic,
    /// Fixed scales (per tensor or per group of 32 channels).
    Static(StaticScales),
}

/// The int8-activation kernels for one weight format.
#[derive(Debug)]
pub struct Int8Kernels {
    format: Format,
    device: wgpu::Device,
    quant_layout: wgpu::BindGroupLayout,
    gemv_layout: wgpu::BindGroupLayout,
    act_dynamic: wgpu::ComputePipeline,
    act_static: wgpu::ComputePipeline,
    /// GEMV pipelines by (debug, cols - 1), built on first use.
    gemv: Mutex<[[Option<wgpu::ComputePipeline>; GEMV_MAX_N]; 2]>,
    /// Bound where a kernel declares a buffer this dispatch does not use.
    dummy: wgpu::Buffer,
}

/// Check the int8-activation kernels' workgroup memory and size against the device.
pub fn check_int8_kernels_fit(limits: &wgpu::Limits) -> Result<()> {
    for e in Int8Entry::ALL {
        check_fits(
            limits,
            e.entry_point(),
            e.workgroup_memory_bytes(),
            e.invocations(),
        )?;
    }
    Ok(())
}

fn pipeline(
    device: &wgpu::Device,
    e: Int8Entry,
    layout: &wgpu::BindGroupLayout,
    constants: &[(&str, f64)],
) -> wgpu::ComputePipeline {
    let module = super::kernels::shader_module(device, e.entry_point(), e.compose(), false);
    super::kernels::compute_pipeline(device, &module, e.entry_point(), layout, constants)
}

impl Int8Kernels {
    /// Build the activation quantizers for `format` (Q8_0 or symmetric int8 / int4); the
    /// GEMV pipelines are built on first use.
    pub fn new(device: &wgpu::Device, format: Format) -> Result<Self> {
        if !supports_int8_activations(format) {
            return Err(Error::UnsupportedFormat(format!(
                "{format} has no int8-activation kernel (use q8_0 or a symmetric int8/int4 format)"
            )));
        }
        check_int8_kernels_fit(&device.limits())?;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let quant_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("wgquant act_quant"),
            entries: &[
                storage_entry(2, true),
                uniform_entry(4),
                storage_entry(5, false),
                storage_entry(6, false),
                storage_entry(7, true),
            ],
        });
        let gemv_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("wgquant gemv_i8"),
            entries: &[
                storage_entry(0, true),
                storage_entry(1, true),
                storage_entry(3, false),
                uniform_entry(4),
                storage_entry(5, true),
                storage_entry(6, true),
                storage_entry(7, false),
            ],
        });
        let act = |st| {
            pipeline(
                device,
                Int8Entry::ActQuant,
                &quant_layout,
                &shaders::act_quant_constants(st),
            )
        };
        let (act_dynamic, act_static) = (act(false), act(true));
        let dummy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgquant int8 unused binding"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        if let Some(e) = crate::gpu::pop_scope(scope) {
            return Err(Error::Gpu(format!(
                "building the int8 activation kernels failed: {e}"
            )));
        }
        Ok(Int8Kernels {
            format,
            device: device.clone(),
            quant_layout,
            gemv_layout,
            act_dynamic,
            act_static,
            gemv: Mutex::new(Default::default()),
            dummy,
        })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    fn gemv_pipeline(&self, cols: usize, debug: bool) -> Result<wgpu::ComputePipeline> {
        let mut cache = self.gemv.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = &cache[debug as usize][cols - 1] {
            return Ok(p.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let p = pipeline(
            &self.device,
            Int8Entry::GemvI8,
            &self.gemv_layout,
            &shaders::gemv_i8_constants(self.format, cols as u32, debug),
        );
        if let Some(e) = crate::gpu::pop_scope(scope) {
            return Err(Error::Gpu(format!(
                "building the {} int8 GEMV for {cols} columns failed: {e}",
                self.format
            )));
        }
        cache[debug as usize][cols - 1] = Some(p.clone());
        Ok(p)
    }

    fn storage(&self, label: &str, bytes: u64, copy_src: bool) -> wgpu::Buffer {
        let mut usage = wgpu::BufferUsages::STORAGE;
        if copy_src {
            usage |= wgpu::BufferUsages::COPY_SRC;
        }
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4),
            usage,
            mapped_at_creation: false,
        })
    }

    /// Prepare `y = quant(x) w^T`: `x` holds `n` rows of `k` f32, `y` receives `n` rows of
    /// `w.rows()` f32. The quantized activations live in buffers of the dispatch.
    pub fn matmul<'a>(
        &self,
        w: &GpuWeight,
        x: impl Into<Operand<'a>>,
        y: impl Into<Operand<'a>>,
        n: usize,
        act: &ActQuant,
    ) -> Result<Int8Dispatch> {
        self.prepare(w, x.into(), y.into(), n, act, false)
    }

    /// [`matmul`](Self::matmul) that also writes every `i32` group accumulator (for tests):
    /// see [`Int8Dispatch::accumulators`].
    pub fn matmul_debug<'a>(
        &self,
        w: &GpuWeight,
        x: impl Into<Operand<'a>>,
        y: impl Into<Operand<'a>>,
        n: usize,
        act: &ActQuant,
    ) -> Result<Int8Dispatch> {
        self.prepare(w, x.into(), y.into(), n, act, true)
    }

    fn prepare(
        &self,
        w: &GpuWeight,
        x: Operand<'_>,
        y: Operand<'_>,
        n: usize,
        act: &ActQuant,
        debug: bool,
    ) -> Result<Int8Dispatch> {
        if w.format() != self.format {
            return Err(Error::InvalidArgument(format!(
                "int8 kernels for {} given a {} weight",
                self.format,
                w.format()
            )));
        }
        if n == 0 {
            return Err(Error::Shape(
                "a matmul needs at least one activation row".into(),
            ));
        }
        let (k, m) = (w.k(), w.rows());
        check_act_k(k)?;
        let groups = k / ACT_GROUP;
        let limits = self.device.limits();
        let max_binding = limits.max_storage_buffer_binding_size;
        let too_big = |v: usize| v > u32::MAX as usize;
        if too_big(m) || too_big(k) || too_big(n) || too_big(n * m * groups) {
            return Err(Error::Shape("dimensions must fit in 32 bits".into()));
        }
        let x_bytes = (n * k * 4) as u64;
        let y_bytes = (n * m * 4) as u64;
        let q_bytes = (n * k) as u64;
        let s_bytes = (n * groups * 4) as u64;
        let a_bytes = if debug {
            (n * m * groups * 4) as u64
        } else {
            0
        };
        x.check("x", x_bytes, &limits)?;
        y.check("y", y_bytes, &limits)?;
        for (what, need) in [("x", x_bytes), ("y", y_bytes), ("accumulators", a_bytes)] {
            if need > max_binding {
                return Err(Error::DeviceLimit(format!(
                    "{what} ({need} bytes) exceeds the {max_binding}-byte storage binding limit; \
                     split the batch"
                )));
            }
        }
        let codes = self.storage("wgquant int8 activations", q_bytes, true);
        let scales = self.storage("wgquant int8 activation scales", s_bytes, true);
        let accumulators = debug.then(|| self.storage("wgquant i32 accumulators", a_bytes, true));
        let (static_buf, act_pipeline) = match act {
            ActQuant::Dynamic => (None, self.act_dynamic.clone()),
            ActQuant::Static(s) => {
                let v = s.group_scales(k)?;
                if let Some(bad) = v.iter().find(|s| !s.is_finite() || **s < 0.0) {
                    return Err(Error::InvalidArgument(format!(
                        "static activation scale {bad} must be finite and >= 0"
                    )));
                }
                let b = self
                    .device
                    .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                        label: Some("wgquant static activation scales"),
                        contents: bytemuck::cast_slice(&v),
                        usage: wgpu::BufferUsages::STORAGE,
                    });
                (Some(b), self.act_static.clone())
            }
        };
        let mut steps = Vec::new();
        let uniform = |dims: Dims| {
            self.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("wgquant dims"),
                    contents: bytemuck::bytes_of(&dims),
                    usage: wgpu::BufferUsages::UNIFORM,
                })
        };
        let blocks_per_row = (k / self.format.codec().block_values()) as u32;
        let qdims = Dims {
            k: k as u32,
            rows: 0,
            n: n as u32,
            row_offset: 0,
            y_stride: 0,
            blocks_per_row,
            _pad: [0; 2],
        };
        let u = uniform(qdims);
        let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("wgquant act_quant"),
            layout: &self.quant_layout,
            entries: &[
                entry(2, x.binding(x_bytes)),
                entry(4, u.as_entire_binding()),
                entry(5, codes.as_entire_binding()),
                entry(6, scales.as_entire_binding()),
                entry(
                    7,
                    static_buf
                        .as_ref()
                        .unwrap_or(&self.dummy)
                        .as_entire_binding(),
                ),
            ],
        });
        steps.push(Step {
            entry: "act_quant",
            pipeline: act_pipeline,
            bind_group: bg,
            groups: grid_1d(n, &limits)?,
            _uniform: u,
        });
        let cols = n.min(GEMV_MAX_N);
        let gemv = self.gemv_pipeline(cols, debug)?;
        for chunk in w.chunks() {
            let u = uniform(Dims::for_chunk(self.format, k, chunk, n, m));
            let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("wgquant gemv_i8"),
                layout: &self.gemv_layout,
                entries: &[
                    entry(0, chunk.codes.as_entire_binding()),
                    entry(1, chunk.params.as_entire_binding()),
                    entry(3, y.binding(y_bytes)),
                    entry(4, u.as_entire_binding()),
                    entry(5, codes.as_entire_binding()),
                    entry(6, scales.as_entire_binding()),
                    entry(
                        7,
                        accumulators
                            .as_ref()
                            .unwrap_or(&self.dummy)
                            .as_entire_binding(),
                    ),
                ],
            });
            let [gx, gy, _] = grid_1d(chunk.rows.div_ceil(GEMV_I8_ROWS as usize), &limits)?;
            let gz = n.div_ceil(cols);
            check_grid(gz, 1, &limits)?;
            steps.push(Step {
                entry: "gemv_i8",
                pipeline: gemv.clone(),
                bind_group: bg,
                groups: [gx, gy, gz as u32],
                _uniform: u,
            });
        }
        Ok(Int8Dispatch {
            dispatch: Dispatch::from_steps(KernelKind::Gemv, steps),
            codes,
            scales,
            accumulators,
            _static_scales: static_buf,
        })
    }

    /// One line: upload `x` (`n` x `k`), quantize it, run the integer GEMV, wait, return `y`.
    pub fn run_matmul(
        &self,
        ctx: &GpuContext,
        w: &GpuWeight,
        x: &[f32],
        n: usize,
        act: &ActQuant,
    ) -> Result<Vec<f32>> {
        crate::format::check_len("x", x.len(), n, w.k())?;
        let xb = ctx.storage_buffer("wgquant x", x);
        let yb = ctx.output_buffer("wgquant y", n * w.rows());
        let op = self.matmul(w, &xb, &yb, n, act)?;
        ctx.submit_checked(|enc| op.encode(enc))?;
        ctx.read_f32(&yb, n * w.rows())
    }
}

/// A prepared activation quantization + integer GEMV, reusable across frames. It encodes
/// like any [`Dispatch`] (`encode`, `encode_in_pass`, ... through `Deref`).
#[derive(Debug)]
pub struct Int8Dispatch {
    dispatch: Dispatch,
    codes: wgpu::Buffer,
    scales: wgpu::Buffer,
    accumulators: Option<wgpu::Buffer>,
    _static_scales: Option<wgpu::Buffer>,
}

impl std::ops::Deref for Int8Dispatch {
    type Target = Dispatch;
    fn deref(&self) -> &Dispatch {
        &self.dispatch
    }
}

impl Int8Dispatch {
    /// The int8 activation codes: `n * k` bytes, row-major, two's complement.
    pub fn activation_codes(&self) -> &wgpu::Buffer {
        &self.codes
    }

    /// The activation scales: `n * k / 32` f32, row-major.
    pub fn activation_scales(&self) -> &wgpu::Buffer {
        &self.scales
    }

    /// The `i32` group accumulators (debug dispatches only): `n * rows * k / 32` values
    /// laid out as [`crate::quantize::activation::int_accumulators`].
    pub fn accumulators(&self) -> Option<&wgpu::Buffer> {
        self.accumulators.as_ref()
    }
}
