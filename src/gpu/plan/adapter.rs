//! What the plan knows of an adapter: its description, features and limits, taken from a
//! device or from a named preset (to show what runs on hardware this machine does not have).

use crate::error::{Error, Result};

/// The facts about a device that the kernel plan reads: what `wgpu::Device` reports.
#[derive(Clone, Debug)]
pub struct AdapterProfile {
    pub info: wgpu::AdapterInfo,
    pub features: wgpu::Features,
    pub limits: wgpu::Limits,
}

impl AdapterProfile {
    /// The profile of `device` (its adapter's description, the features and limits it was
    /// created with).
    pub fn of(device: &wgpu::Device) -> Self {
        AdapterProfile {
            info: device.adapter_info(),
            features: device.features(),
            limits: device.limits(),
        }
    }

    /// Whether it is a CPU adapter (lavapipe, WARP, SwiftShader).
    pub fn is_cpu(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Whether it offers all of `features`.
    pub fn has(&self, features: wgpu::Features) -> bool {
        self.features.contains(features)
    }

    /// The major version of its Mesa driver, if it is Mesa ([`mesa_major`]).
    pub fn mesa_major(&self) -> Option<u32> {
        mesa_major(&self.info)
    }

    /// The presets `wgquant plan --adapter` knows: (name, what it stands for).
    pub const PRESETS: [(&'static str, &'static str); 6] = [
        ("lavapipe-mesa22", "lavapipe, Mesa 22.3 (Debian 12), Vulkan"),
        (
            "lavapipe-mesa26",
            "lavapipe, Mesa 26.1 (Debian 13 backports), Vulkan, cooperative matrices",
        ),
        (
            "lavapipe-gl",
            "llvmpipe through OpenGL: no subgroups, no f16",
        ),
        (
            "h100",
            "NVIDIA H100 80GB HBM3, Vulkan, driver 580 (../shared/device/README.md)",
        ),
        (
            "amd-rdna",
            "an AMD RDNA3 GPU on RADV: subgroups of 32 to 64, no cooperative matrices",
        ),
        (
            "gpu-baseline",
            "a GPU without subgroups or f16, with WebGPU's default limits",
        ),
    ];

    /// A preset by name ([`Self::PRESETS`]): the features and limits those adapters report
    /// (lavapipe's measured here, the H100's on the lent machine; the AMD and baseline ones
    /// stand for their classes).
    pub fn preset(name: &str) -> Result<Self> {
        use wgpu::DeviceType::{Cpu, DiscreteGpu, IntegratedGpu};
        let sg_f16 = wgpu::Features::SUBGROUP | wgpu::Features::SHADER_F16;
        let coop = wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
        let lavapipe = wgpu::Limits {
            max_storage_buffer_binding_size: 134217728,
            max_buffer_size: 2147483647,
            max_compute_workgroup_storage_size: 32768,
            max_compute_invocations_per_workgroup: 1024,
            max_compute_workgroups_per_dimension: 65535,
            max_uniform_buffer_binding_size: 65536,
            max_texture_dimension_2d: 16384,
            ..wgpu::Limits::default()
        };
        let gpu = |storage, buffer, workgroup, texture| wgpu::Limits {
            max_storage_buffer_binding_size: storage,
            max_buffer_size: buffer,
            max_compute_workgroup_storage_size: workgroup,
            max_compute_invocations_per_workgroup: 1024,
            max_compute_workgroups_per_dimension: 65535,
            max_uniform_buffer_binding_size: 65536,
            max_texture_dimension_2d: texture,
            ..wgpu::Limits::default()
        };
        let (info, features, limits) = match name {
            "lavapipe-mesa22" => (
                info(
                    "llvmpipe (LLVM 15.0.6, 256 bits)",
                    Cpu,
                    "llvmpipe",
                    "Mesa 22.3.6 (LLVM 15.0.6)",
                    8,
                    8,
                ),
                sg_f16,
                lavapipe,
            ),
            "lavapipe-mesa26" => (
                info(
                    "llvmpipe (LLVM 19.1.7, 256 bits)",
                    Cpu,
                    "llvmpipe",
                    "Mesa 26.1.0 (LLVM 19.1.7)",
                    8,
                    8,
                ),
                sg_f16 | coop,
                lavapipe,
            ),
            "lavapipe-gl" => (
                info(
                    "llvmpipe (LLVM 15.0.6, 256 bits)",
                    Cpu,
                    "",
                    "4.5 (Core Profile) Mesa 22.3.6",
                    0,
                    0,
                ),
                wgpu::Features::empty(),
                lavapipe,
            ),
            "h100" => (
                info(
                    "NVIDIA H100 80GB HBM3",
                    DiscreteGpu,
                    "NVIDIA",
                    "580.159.04",
                    32,
                    32,
                ),
                sg_f16 | coop,
                gpu(2147483644, 4292870144, 49152, 32768),
            ),
            "amd-rdna" => (
                info(
                    "AMD Radeon RX 7900 XTX (RADV NAVI31)",
                    DiscreteGpu,
                    "radv",
                    "Mesa 25.0.7",
                    32,
                    64,
                ),
                sg_f16 | coop,
                gpu(2147483647, 4294967292, 65536, 16384),
            ),
            "gpu-baseline" => (
                info(
                    "a GPU without subgroups or f16",
                    IntegratedGpu,
                    "",
                    "",
                    0,
                    0,
                ),
                wgpu::Features::empty(),
                wgpu::Limits::default(),
            ),
            _ => {
                let names: Vec<&str> = Self::PRESETS.iter().map(|p| p.0).collect();
                return Err(Error::InvalidArgument(format!(
                    "no adapter preset named {name:?}; presets: {}",
                    names.join(", ")
                )));
            }
        };
        Ok(AdapterProfile {
            info,
            features,
            limits,
        })
    }
}

fn info(
    name: &str,
    device_type: wgpu::DeviceType,
    driver: &str,
    driver_info: &str,
    subgroup_min_size: u32,
    subgroup_max_size: u32,
) -> wgpu::AdapterInfo {
    wgpu::AdapterInfo {
        name: name.into(),
        driver: driver.into(),
        driver_info: driver_info.into(),
        subgroup_min_size,
        subgroup_max_size,
        ..wgpu::AdapterInfo::new(device_type, wgpu::Backend::Vulkan)
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

/// Check that a kernel declaring `memory` bytes of workgroup memory and `invocations` per
/// workgroup fits the device (wgpu does not check workgroup memory).
pub(crate) fn check_fits(
    limits: &wgpu::Limits,
    name: &str,
    memory: u32,
    invocations: u32,
) -> Result<()> {
    if memory > limits.max_compute_workgroup_storage_size {
        return Err(Error::DeviceLimit(format!(
            "the {name} kernel needs {memory} bytes of workgroup memory; this device offers {}",
            limits.max_compute_workgroup_storage_size
        )));
    }
    if invocations > limits.max_compute_invocations_per_workgroup {
        return Err(Error::DeviceLimit(format!(
            "the {name} kernel needs {invocations} invocations per workgroup; this device \
             offers {}",
            limits.max_compute_invocations_per_workgroup
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mesa_major_reads_the_driver_info() {
        assert_eq!(
            mesa_major_in("llvmpipe Mesa 26.1.0 (LLVM 19.1.7)"),
            Some(26)
        );
        assert_eq!(
            mesa_major_in("llvmpipe Mesa 22.3.6 (LLVM 15.0.6)"),
            Some(22)
        );
        assert_eq!(mesa_major_in("4.5 (Core Profile) Mesa 22.3.6"), Some(22));
        assert_eq!(mesa_major_in("NVIDIA 580.159.04"), None);
    }

    #[test]
    fn every_preset_builds_and_unknown_names_are_an_error() {
        for (name, _) in AdapterProfile::PRESETS {
            AdapterProfile::preset(name).unwrap();
        }
        let e = AdapterProfile::preset("h200x").unwrap_err().to_string();
        assert!(e.contains("h200x") && e.contains("lavapipe-mesa22"), "{e}");
    }
}
