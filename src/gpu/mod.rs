//! GPU side: device acquisition, tensors, kernels.
