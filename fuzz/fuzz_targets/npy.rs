//! The .npy reader on arbitrary bytes; arrays that read are written back and reread.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wgquant::io::npy;

fuzz_target!(|data: &[u8]| {
    let Ok(a) = npy::read_npy_bytes(data) else {
        return;
    };
    let w = npy::npy_bytes(&a.shape, &a.data).expect("a read array can be written");
    let back = npy::read_npy_bytes(&w).expect("wgquant's own output reads back");
    assert_eq!(back.shape, a.shape);
    assert_eq!(back.data.len(), a.data.len());
});
