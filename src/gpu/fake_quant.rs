//! GPU fake quantization for quantization-aware training: the rules of
//! [`crate::quantize::fake_quant`] (forward, straight-through backward, LSQ scale gradient)
//! in `shaders/fake_quant.wgsl`. Pipelines are built once in [`FakeQuant::new`]; each
//! [`FakeQuant::forward`] / [`FakeQuant::backward`] prepares a [`FakeQuantDispatch`] (bind
//! group and uniform) for one set of buffers, to encode into the caller's encoder or pass as
//! often as wanted (e.g. every training step, after `queue.write_buffer` of new weights).
//!
//! Buffers: `x`, `y`, `grad_y`, `grad_x` hold `len` f32 (a whole number of groups); `params`
//! holds `(s, z)` as two f32 per group ([`params_to_f32`]); `grad_s` one f32 per group.
//!
//! Accuracy against the CPU reference: the forward output and derived parameters are the
//! same bits where the device's f32 division is correctly rounded (lavapipe; WGSL allows
//! 2.5 ulp), otherwise a value whose `x / s` lies within a few ulp of a rounding tie or of
//! the max/min may land one step `s` away. The straight-through gradient is the same mask.
//! The LSQ gradient is an f32 sequential sum per group (the CPU sums in f64).

use super::device::GpuContext;
use super::kernels::Operand;
use super::kernels::{compute_pipeline, entry, grid_1d, storage_entry, uniform_entry};
use crate::error::{Error, Result};
use crate::quantize::fake_quant::{Backward, FakeQuantConfig, GroupParams};
use wgpu::util::DeviceExt;

/// The WGSL of the fake-quantization kernels.
pub const FAKE_QUANT_WGSL: &str = include_str!("../../shaders/fake_quant.wgsl");
/// Entry points in [`FAKE_QUANT_WGSL`].
pub const FAKE_QUANT_ENTRIES: [&str; 2] = ["fake_quant_forward", "fake_quant_backward"];
const WG_SIZE: usize = 64;

/// Mirrors `struct FqDims` in `shaders/fake_quant.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
struct FqDims {
    groups: u32,
    group: u32,
    asym: u32,
    flag: u32,
    qmin: f32,
    qmax: f32,
    gscale: f32,
    _pad: u32,
}

/// Where the forward's group parameters come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamsMode {
    /// Derived from `x` as the int formats do (f16 scale), and written to the params buffer
    /// (for the backward pass and for inspection).
    Derive,
    /// Read from the params buffer (e.g. learned LSQ scales).
    Given,
}

/// A prepared fake-quantization launch, reusable across frames.
#[derive(Debug)]
pub struct FakeQuantDispatch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
    _uniform: wgpu::Buffer,
}

impl FakeQuantDispatch {
    /// Encode into a new compute pass of `encoder`.
    pub fn encode(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("wgquant fake quant"),
            timestamp_writes: None,
        });
        self.encode_in_pass(&mut pass);
    }

    /// Encode into a compute pass the caller already has open.
    pub fn encode_in_pass(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.groups[0], self.groups[1], self.groups[2]);
    }
}

/// The compiled fake-quantization kernels of one [`FakeQuantConfig`].
#[derive(Debug)]
pub struct FakeQuant {
    device: wgpu::Device,
    config: FakeQuantConfig,
    forward_layout: wgpu::BindGroupLayout,
    backward_layout: wgpu::BindGroupLayout,
    forward: wgpu::ComputePipeline,
    backward: wgpu::ComputePipeline,
    /// Bound as `grad_s` when the caller wants no LSQ gradient (never written then).
    dummy: wgpu::Buffer,
}

/// `(s, z)` pairs as the f32 the params buffer holds.
pub fn params_to_f32(params: &[GroupParams]) -> Vec<f32> {
    params.iter().flat_map(|p| [p.s, p.z]).collect()
}

/// The inverse of [`params_to_f32`].
pub fn params_from_f32(v: &[f32]) -> Vec<GroupParams> {
    v.chunks_exact(2)
        .map(|p| GroupParams { s: p[0], z: p[1] })
        .collect()
}

impl FakeQuant {
    /// Build the forward and backward pipelines for `config` on `device`.
    pub fn new(device: &wgpu::Device, config: FakeQuantConfig) -> Result<Self> {
        config.validate()?;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = super::kernels::shader_module(
            device,
            "wgquant fake quant",
            FAKE_QUANT_WGSL.into(),
            false,
        );
        let forward_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("wgquant fake quant forward"),
            entries: &[
                storage_entry(0, true),
                storage_entry(1, false),
                storage_entry(2, false),
                uniform_entry(6),
            ],
        });
        let backward_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("wgquant fake quant backward"),
            entries: &[
                storage_entry(0, true),
                storage_entry(1, false),
                storage_entry(3, true),
                storage_entry(4, false),
                storage_entry(5, false),
                uniform_entry(6),
            ],
        });
        let forward =
            compute_pipeline(device, &module, FAKE_QUANT_ENTRIES[0], &forward_layout, &[]);
        let backward = compute_pipeline(
            device,
            &module,
            FAKE_QUANT_ENTRIES[1],
            &backward_layout,
            &[],
        );
        let dummy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgquant fake quant no grad_s"),
            size: 4,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        if let Some(e) = crate::gpu::pop_scope(scope) {
            return Err(Error::Gpu(format!(
                "building the fake-quantization kernels failed: {e}"
            )));
        }
        Ok(FakeQuant {
            device: device.clone(),
            config,
            forward_layout,
            backward_layout,
            forward,
            backward,
            dummy,
        })
    }

    pub fn config(&self) -> FakeQuantConfig {
        self.config
    }

    /// Groups of `len` values, checked against the device's limits.
    fn groups(&self, len: usize, limits: &wgpu::Limits) -> Result<usize> {
        let groups = self.config.groups(len)?;
        if len == 0 {
            return Err(Error::Shape("fake quantization of no values".into()));
        }
        let bytes = len as u64 * 4;
        if len > u32::MAX as usize || bytes > limits.max_storage_buffer_binding_size {
            return Err(Error::DeviceLimit(format!(
                "{len} values ({bytes} bytes) exceed the {}-byte storage binding limit; split them",
                limits.max_storage_buffer_binding_size
            )));
        }
        Ok(groups)
    }

    fn uniform(&self, groups: usize, flag: bool) -> wgpu::Buffer {
        let (qmin, qmax) = self.config.qrange();
        let dims = FqDims {
            groups: groups as u32,
            group: self.config.group as u32,
            asym: self.config.asym as u32,
            flag: flag as u32,
            qmin,
            qmax,
            gscale: self.config.lsq_grad_scale(),
            _pad: 0,
        };
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgquant fake quant dims"),
                contents: bytemuck::bytes_of(&dims),
                usage: wgpu::BufferUsages::UNIFORM,
            })
    }

    /// Prepare `y = fake_quant(x)` over `len` values. With [`ParamsMode::Derive`] the group
    /// parameters are computed from `x` and written to `params`; with
    /// [`ParamsMode::Given`] they are read from it.
    pub fn forward<'a>(
        &self,
        x: impl Into<Operand<'a>>,
        params: impl Into<Operand<'a>>,
        y: impl Into<Operand<'a>>,
        len: usize,
        mode: ParamsMode,
    ) -> Result<FakeQuantDispatch> {
        let (x, params, y) = (x.into(), params.into(), y.into());
        let limits = self.device.limits();
        let groups = self.groups(len, &limits)?;
        let (vb, pb) = (len as u64 * 4, groups as u64 * 8);
        x.check("x", vb, &limits)?;
        params.check("params", pb, &limits)?;
        y.check("y", vb, &limits)?;
        let uniform = self.uniform(groups, mode == ParamsMode::Derive);
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("wgquant fake quant forward"),
            layout: &self.forward_layout,
            entries: &[
                entry(0, x.binding(vb)),
                entry(1, params.binding(pb)),
                entry(2, y.binding(vb)),
                entry(6, uniform.as_entire_binding()),
            ],
        });
        Ok(FakeQuantDispatch {
            pipeline: self.forward.clone(),
            bind_group,
            groups: grid_1d(groups.div_ceil(WG_SIZE), &limits)?,
            _uniform: uniform,
        })
    }

    /// Prepare the backward pass over `len` values: `grad_x` (straight-through) from
    /// `grad_y`, `x` and the group `params` (as the forward derived or was given them), and,
    /// if `grad_s` is given, the LSQ scale gradient per group.
    pub fn backward<'a>(
        &self,
        x: impl Into<Operand<'a>>,
        params: impl Into<Operand<'a>>,
        grad_y: impl Into<Operand<'a>>,
        grad_x: impl Into<Operand<'a>>,
        grad_s: Option<Operand<'a>>,
        len: usize,
    ) -> Result<FakeQuantDispatch> {
        let (x, params, grad_y, grad_x) = (x.into(), params.into(), grad_y.into(), grad_x.into());
        let limits = self.device.limits();
        let groups = self.groups(len, &limits)?;
        let (vb, pb, sb) = (len as u64 * 4, groups as u64 * 8, groups as u64 * 4);
        x.check("x", vb, &limits)?;
        params.check("params", pb, &limits)?;
        grad_y.check("grad_y", vb, &limits)?;
        grad_x.check("grad_x", vb, &limits)?;
        if let Some(gs) = &grad_s {
            gs.check("grad_s", sb, &limits)?;
        }
        let uniform = self.uniform(groups, grad_s.is_some());
        let gs = match grad_s {
            Some(gs) => gs.binding(sb),
            None => self.dummy.as_entire_binding(),
        };
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("wgquant fake quant backward"),
            layout: &self.backward_layout,
            entries: &[
                entry(0, x.binding(vb)),
                entry(1, params.binding(pb)),
                entry(3, grad_y.binding(vb)),
                entry(4, grad_x.binding(vb)),
                entry(5, gs),
                entry(6, uniform.as_entire_binding()),
            ],
        });
        Ok(FakeQuantDispatch {
            pipeline: self.backward.clone(),
            bind_group,
            groups: grid_1d(groups.div_ceil(WG_SIZE), &limits)?,
            _uniform: uniform,
        })
    }

    fn submit(&self, ctx: &GpuContext, op: &FakeQuantDispatch) -> Result<()> {
        ctx.submit_checked(|enc| op.encode(enc))
    }

    /// One line: fake-quantize `x` on the GPU with derived (`None`) or given parameters and
    /// return `(x', params)`.
    pub fn run_forward(
        &self,
        ctx: &GpuContext,
        x: &[f32],
        params: Option<&[GroupParams]>,
    ) -> Result<(Vec<f32>, Vec<GroupParams>)> {
        let groups = self.config.groups(x.len())?;
        let xb = ctx.storage_buffer("wgquant fq x", x);
        let pb = match params {
            Some(p) => {
                crate::format::check_len("params", p.len(), groups, 1)?;
                ctx.storage_buffer("wgquant fq params", &params_to_f32(p))
            }
            None => ctx.output_buffer("wgquant fq params", 2 * groups),
        };
        let yb = ctx.output_buffer("wgquant fq y", x.len());
        let mode = match params {
            Some(_) => ParamsMode::Given,
            None => ParamsMode::Derive,
        };
        let op = self.forward(&xb, &pb, &yb, x.len(), mode)?;
        self.submit(ctx, &op)?;
        let y = ctx.read_f32(&yb, x.len())?;
        let p = params_from_f32(&ctx.read_f32(&pb, 2 * groups)?);
        Ok((y, p))
    }

    /// One line: the backward pass on the GPU (LSQ scale gradient if `lsq`).
    pub fn run_backward(
        &self,
        ctx: &GpuContext,
        x: &[f32],
        params: &[GroupParams],
        grad_y: &[f32],
        lsq: bool,
    ) -> Result<Backward> {
        let groups = self.config.groups(x.len())?;
        crate::format::check_len("params", params.len(), groups, 1)?;
        crate::format::check_len("grad_y", grad_y.len(), x.len(), 1)?;
        let xb = ctx.storage_buffer("wgquant fq x", x);
        let pb = ctx.storage_buffer("wgquant fq params", &params_to_f32(params));
        let gyb = ctx.storage_buffer("wgquant fq grad_y", grad_y);
        let gxb = ctx.output_buffer("wgquant fq grad_x", x.len());
        let gsb = ctx.output_buffer("wgquant fq grad_s", groups);
        let op = self.backward(&xb, &pb, &gyb, &gxb, lsq.then(|| (&gsb).into()), x.len())?;
        self.submit(ctx, &op)?;
        Ok(Backward {
            grad_x: ctx.read_f32(&gxb, x.len())?,
            grad_s: if lsq {
                Some(ctx.read_f32(&gsb, groups)?)
            } else {
                None
            },
        })
    }
}
