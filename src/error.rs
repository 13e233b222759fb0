//! One error type for the whole crate: every failure a caller can cause is a variant here,
//! with a message that says what was wrong and what to do.

use std::path::PathBuf;

/// Result alias used across wgquant.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in wgquant.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor or operand has the wrong shape for the operation.
    #[error("shape error: {0}")]
    Shape(String),

    /// The row length does not fit the format's block size.
    #[error(
        "row length {k} is not a multiple of {multiple}, which format {format} requires{}",
        match .nearest { Some(f) => format!("; the nearest format that fits is {f}"), None => String::new() }
    )]
    BlockMismatch {
        format: String,
        k: usize,
        multiple: usize,
        /// The quantized format closest in bits per weight whose block fits `k`, if any.
        nearest: Option<String>,
    },

    /// A format name or GGUF type that wgquant does not know.
    #[error("unsupported format: {0}")]
    UnsupportedFormat(String),

    /// A file whose contents are not what its format requires.
    #[error("malformed {kind} file{}: {reason}", path_suffix(.path))]
    Malformed {
        kind: &'static str,
        path: Option<PathBuf>,
        reason: String,
    },

    /// Reading or writing a file failed.
    #[error("I/O error on {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// No GPU adapter matched, including no software adapter.
    #[error("{0}")]
    NoAdapter(String),

    /// The adapter lacks a feature or limit the operation needs.
    #[error("device limit: {0}")]
    DeviceLimit(String),

    /// wgpu refused to create the device.
    #[error("could not create a device on {adapter}: {reason}")]
    RequestDevice { adapter: String, reason: String },

    /// A GPU operation failed (validation error, lost device, failed map).
    #[error("GPU error: {0}")]
    Gpu(String),

    /// A blocking call where waiting is impossible (a browser's page cannot block on the
    /// GPU); names the async function to await instead.
    #[error(
        "this call waits for the GPU, which a web page cannot do by blocking: await {0} instead"
    )]
    NeedsAsync(String),

    /// A caller-supplied argument is invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A data-dependent quantization method was asked for without calibration activations.
    #[error(
        "method {method} needs calibration activations: pass --calib CALIB.npy \
         ([samples, K], used for every weight with rows of length K) or --calib \
         CALIB.safetensors (tensor name -> [samples, K]), or for a llama GGUF model \
         --calib-text FILE (the model runs over the text)"
    )]
    MissingCalibration { method: String },

    /// A language model the llama module cannot run (missing tensors, inconsistent metadata,
    /// an unsupported architecture).
    #[error("model: {0}")]
    Model(String),

    /// Calibration activations that cannot be used (non-finite values, wrong K or rank).
    #[error("calibration: {0}")]
    Calibration(String),
}

fn path_suffix(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(" {}", p.display()),
        None => String::new(),
    }
}

impl Error {
    /// A malformed-file error without a path (the caller may add it with [`Error::at_path`]).
    pub fn malformed(kind: &'static str, reason: impl Into<String>) -> Self {
        Error::Malformed {
            kind,
            path: None,
            reason: reason.into(),
        }
    }

    /// Attach a file path to a malformed-file error that lacks one.
    pub fn at_path(self, p: impl Into<PathBuf>) -> Self {
        match self {
            Error::Malformed {
                kind,
                path: None,
                reason,
            } => Error::Malformed {
                kind,
                path: Some(p.into()),
                reason,
            },
            other => other,
        }
    }

    /// An I/O error on a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
