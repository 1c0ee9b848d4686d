//! libxmlsec1 prints its errors to stderr, past postern's logging: a
//! failed signature check (an attacker's forged response) would write
//! unformatted lines into the journal. This routes them to `tracing` at
//! DEBUG instead (the refusal itself is the audit event).

use std::ffi::{CStr, c_char, c_int};

type Callback = unsafe extern "C" fn(
    file: *const c_char,
    line: c_int,
    func: *const c_char,
    object: *const c_char,
    subject: *const c_char,
    reason: c_int,
    msg: *const c_char,
);

unsafe extern "C" {
    // libxmlsec1 (linked by samael): replaces the global error callback.
    fn xmlSecErrorsSetCallback(callback: Option<Callback>);
    // Whether the default callback (the one xmlsec's OpenSSL backend
    // installs when samael initializes it) prints; a plain global flag.
    fn xmlSecErrorsDefaultCallbackEnableOutput(enabled: c_int);
}

/// Text of a C string from libxmlsec1, or "" for NULL.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string valid for this call.
unsafe fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-NULL and NUL-terminated (the caller's contract).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

unsafe extern "C" fn to_tracing(
    _file: *const c_char,
    _line: c_int,
    func: *const c_char,
    object: *const c_char,
    _subject: *const c_char,
    reason: c_int,
    msg: *const c_char,
) {
    // SAFETY: libxmlsec1 passes NULL or NUL-terminated strings that live
    // for the duration of the callback.
    let (func, object, msg) = unsafe { (text(func), text(object), text(msg)) };
    tracing::debug!(func, object, reason, msg, "xmlsec");
}

/// Silences the default callback: samael initializes libxmlsec1 lazily,
/// at the first verification, and that installs the default (stderr)
/// callback again.
pub fn silence_stderr() {
    // SAFETY: sets one global int.
    unsafe { xmlSecErrorsDefaultCallbackEnableOutput(0) }
}

/// Installs the `tracing` callback; called after each verification (by
/// then samael has initialized libxmlsec1, so it stays).
pub fn route_to_tracing() {
    // SAFETY: sets one global function pointer; `to_tracing` has the
    // exact signature of xmlSecErrorsCallback and does not unwind.
    unsafe { xmlSecErrorsSetCallback(Some(to_tracing)) }
}
