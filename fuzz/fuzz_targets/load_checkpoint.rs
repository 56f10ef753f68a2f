//! Any bytes given to the checkpoint reader load or fail, never panic; what
//! loads saves and loads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ndprune::io::{Checkpoint, SafetensorsView};
use ndprune::Module;

fuzz_target!(|data: &[u8]| {
    let _ = SafetensorsView::parse(data);
    if let Ok(ckpt) = Checkpoint::<f32>::from_bytes(data) {
        let bytes = ckpt.to_bytes().expect("a loaded checkpoint saves");
        let again = Checkpoint::<f32>::from_bytes(&bytes).expect("a saved checkpoint loads");
        assert_eq!(again.tensor_names(), ckpt.tensor_names());
        assert_eq!(again.raw_tensors(), ckpt.raw_tensors());
        for (name, t) in ckpt.state_dict() {
            let u = again.tensor(&name).expect("same names");
            // Bitwise: NaN payloads too.
            assert!(t.iter().zip(u.iter()).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }
    let _ = Checkpoint::<f64>::from_bytes(data);
    let _ = Checkpoint::<half::bf16>::from_bytes(data);
});
