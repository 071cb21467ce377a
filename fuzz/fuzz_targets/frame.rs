#![no_main]
//! A TCP byte stream: the first byte chooses the context, the rest is cut into messages with
//! `frame_len` and each one is decoded and checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, stream)) = data.split_first() else { return };
    tortie_fuzz::check_stream(stream, &tortie_fuzz::ctx_from_byte(selector));
});
