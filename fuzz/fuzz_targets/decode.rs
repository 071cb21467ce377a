#![no_main]
//! One message: the first byte chooses the context, the rest goes to `frame_len` and `decode`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    tortie_fuzz::check_message(bytes, &tortie_fuzz::ctx_from_byte(selector));
});
